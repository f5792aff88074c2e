"""The benchmark suite: layer, memory and model figures, with the targets.

Usage:
    python -m benchmarks [--quick] [--runs N] [--out benchmarks/results]

Writes `suite.json` (every figure, the ratios and the targets) and
`suite.md` (the same as tables) into `--out`, and prints the Markdown. Every
figure is `median (min-max)` over `--runs` runs (at least 3), in both timing
modes of `benchmarks.timing`; ratios above 1 mean kbn is faster (or leaner);
`kbn / floor` is how many times the memory-traffic floor kbn takes; the
`fit` rows (`benchmarks.fit_benchmark`) are seconds per epoch. A target
is met when its whole range meets the bound. `--quick` runs every part at
small size.
"""

import argparse
import importlib.util
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import (  # noqa: E402
    fit_benchmark,
    layer_benchmark,
    memory_benchmark,
    model_benchmark,
    processes,
    tables,
    timing,
)

MEMORY_SHAPES = [(64, 32, 32, 64), (1024, 512), (8192, 1024)]


def run(quick=False, runs=3):
    start = time.perf_counter()
    bandwidth = timing.copy_bandwidth_gbs()
    report = {**tables.environment(), "quick": quick, "runs": runs}
    report["layer"] = layer_benchmark.run(quick, bandwidth, runs)
    report["memory"] = memory_benchmark.measure(
        MEMORY_SHAPES[:1] if quick else MEMORY_SHAPES
    )
    report["jax_layer"] = jax_rows(quick, bandwidth, runs)
    report["model"] = model_benchmark.run(quick, runs)
    report["fit"] = [] if quick else fit_rows(runs)
    report["targets"] = tables.targets(report)
    report["seconds"] = time.perf_counter() - start
    return report


def jax_rows(quick, bandwidth_gbs, runs):
    """`benchmarks.jax_benchmark`'s rows, from a fresh process on the JAX
    backend (none without JAX)."""
    if importlib.util.find_spec("jax") is None:
        return []
    args = ["--json", "--bandwidth", str(bandwidth_gbs), "--runs", str(runs)]
    return processes.run_json(
        "benchmarks.jax_benchmark",
        *args + (["--quick"] if quick else []),
        env={"KERAS_BACKEND": "jax"},
    )


def fit_rows(runs):
    """`benchmarks.fit_benchmark`'s rows, one fresh process per backend (not
    in a quick run: a few minutes of fits)."""
    backends = ["tensorflow"] + (["jax"] if importlib.util.find_spec("jax") else [])
    args = ["--json", "--rounds", str(runs)]
    return [
        row
        for backend in backends
        for row in processes.run_json(
            "benchmarks.fit_benchmark", *args, env={"KERAS_BACKEND": backend}
        )
    ]


def markdown(report):
    bandwidth = report["layer"]["copy_bandwidth_gbs"]
    versions = ", ".join(
        f"{name} {report[name]}"
        for name in ("tensorflow", "keras", "jax", "torch")
        if report.get(name)
    )
    parts = [
        f"Measured {report['date']} on {report['machine']}, {versions}"
        f"{' (quick run)' if report['quick'] else ''}; every figure is "
        f"median (min-max) over {report['runs']} runs. Copy bandwidth "
        f"(np.copyto into a preallocated buffer): {bandwidth:.1f} GB/s.",
        "TensorFlow layer, forward+backward (train) and forward only (infer):",
        tables.layer_table(report["layer"]["rows"]),
        "TensorFlow peak memory of one training step above the live input:",
        tables.memory_table(report["memory"]),
    ]
    if report["jax_layer"]:
        parts += [
            "JAX layer, jitted training and inference steps:",
            tables.layer_table(report["jax_layer"]),
            "JAX compiled temporary memory of the training step:",
            tables.jax_memory_table(report["jax_layer"]),
        ]
    parts += ["`model.fit` step:", tables.model_table(report["model"])]
    if report["fit"]:
        parts += [
            "`model.fit` of small models, first epoch and later epochs (seconds):",
            fit_benchmark.table(report["fit"]),
        ]
    parts += ["Targets:", tables.targets_table(report["targets"])]
    return "\n\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every part, small")
    parser.add_argument(
        "--out",
        default=os.path.join("benchmarks", "results"),
        help="folder for suite.json and suite.md",
    )
    parser.add_argument(
        "--runs", type=tables.at_least_3, default=3, help="runs per figure (>= 3)"
    )
    args = parser.parse_args(argv)
    report = run(quick=args.quick, runs=args.runs)
    text = markdown(report)
    tables.write(args.out, "suite", report, text)
    print(text)
    print(f"\nWritten to {args.out} in {report['seconds']:.0f} s.")


if __name__ == "__main__":
    main()
