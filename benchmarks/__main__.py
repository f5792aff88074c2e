"""The benchmark suite: layer, memory and model figures, with the targets.

Usage:
    python -m benchmarks [--quick] [--out benchmarks/results]

Writes `suite.json` (every figure, the ratios and the targets) and
`suite.md` (the same as tables) into `--out`, and prints the Markdown. Ratios
above 1 mean kbn is faster (or leaner); `kbn / floor` is how many times the
memory-traffic floor kbn takes. `--quick` runs every part at small size.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import (  # noqa: E402
    layer_benchmark,
    memory_benchmark,
    model_benchmark,
    tables,
    timing,
)

MEMORY_SHAPES = [(64, 32, 32, 64), (1024, 512), (8192, 1024)]


def run(quick=False):
    start = time.perf_counter()
    bandwidth = timing.copy_bandwidth_gbs()
    report = {**tables.environment(), "quick": quick}
    report["layer"] = layer_benchmark.run(quick=quick, bandwidth_gbs=bandwidth)
    report["memory"] = memory_benchmark.measure(
        MEMORY_SHAPES[:1] if quick else MEMORY_SHAPES
    )
    report["model"] = model_benchmark.measure(quick=quick)
    report["targets"] = tables.targets(report)
    report["seconds"] = time.perf_counter() - start
    return report


def markdown(report):
    bandwidth = report["layer"]["copy_bandwidth_gbs"]
    return "\n\n".join(
        [
            f"Measured {report['date']} on {report['machine']}, TensorFlow "
            f"{report['tensorflow']}, Keras {report['keras']}"
            f"{' (quick run)' if report['quick'] else ''}. Copy bandwidth "
            f"(np.copyto into a preallocated buffer): {bandwidth:.1f} GB/s.",
            "Layer, forward+backward (train) and forward only (infer):",
            tables.layer_table(report["layer"]["rows"]),
            "Peak memory of one training step above the live input:",
            tables.memory_table(report["memory"]),
            "`model.fit` step:",
            tables.model_table(report["model"]),
            "Targets:",
            tables.targets_table(report["targets"]),
        ]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every part, small")
    parser.add_argument(
        "--out",
        default=os.path.join("benchmarks", "results"),
        help="folder for suite.json and suite.md",
    )
    args = parser.parse_args(argv)
    report = run(quick=args.quick)
    text = markdown(report)
    tables.write(args.out, "suite", report, text)
    print(text)
    print(f"\nWritten to {args.out} in {report['seconds']:.0f} s.")


if __name__ == "__main__":
    main()
