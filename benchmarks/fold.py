"""Inference time of a ResNet before and after `kbn.fold`.

The model: `keras.applications.ResNet50` (weights=None, logits output) at a
small image size, its 53 batch normalization layers given random gamma, beta
and moving statistics so that folding has something to get wrong. Both
candidates, the original and the folded copy, run `predict_on_batch` (a
compiled `tf.function` on the TensorFlow backend) on the same batch, rotating
call by call (original then folded, then folded then original, ...) after a
warm-up that traces and compiles each. A run is `--calls` such pairs; the
figure of a run is the median milliseconds per batch, and the table gives
the median, min and max over `--runs` runs. `max |diff|` is the largest
absolute difference between the two models' logits, next to the largest
logit for scale.

Usage:
    python -m benchmarks.fold [--quick] [--runs N] [--calls N] [--out DIR]

Writes `fold.json` and `fold.md` into `--out` (default benchmarks/results)
and prints the Markdown.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import tables  # noqa: E402
from kbn import model_graph  # noqa: E402
from kbn.folding import fold  # noqa: E402

CANDIDATES = ("original", "folded")


def config(quick):
    if quick:
        return {"image": 32, "batch": 8, "runs": 3, "calls": 5}
    return {"image": 64, "batch": 16, "runs": 5, "calls": 10}


def build_model(image, seed=0):
    """ResNet50 with random BN parameters and statistics (logits output)."""
    keras.utils.set_random_seed(seed)
    model = keras.applications.ResNet50(
        weights=None,
        input_shape=(image, image, 3),
        classes=10,
        classifier_activation=None,
    )
    rng = np.random.default_rng(seed)
    for layer in model_graph.batch_norm_layers(model):
        n = layer.moving_mean.shape
        layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
        layer.beta.assign(rng.normal(0.0, 0.2, n).astype("float32"))
        layer.moving_mean.assign(rng.normal(0.0, 0.2, n).astype("float32"))
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
    return model


def rotated_ms(models, x, runs, calls):
    """Per-run median ms per batch of each model, calls rotated one by one."""
    for model in models.values():  # trace and compile
        model.predict_on_batch(x)
        model.predict_on_batch(x)
    names = list(models)
    medians = {name: [] for name in names}
    for _ in range(runs):
        samples = {name: [] for name in names}
        for i in range(calls):
            # Alternate which goes first, so neither always follows the other.
            for name in names if i % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                models[name].predict_on_batch(x)
                samples[name].append((time.perf_counter() - start) * 1e3)
        for name in names:
            medians[name].append(statistics.median(samples[name]))
    return medians


def run(quick=False, runs=None, calls=None):
    cfg = config(quick)
    cfg["runs"] = runs or cfg["runs"]
    cfg["calls"] = calls or cfg["calls"]
    start = time.perf_counter()
    original = build_model(cfg["image"])
    fold_start = time.perf_counter()
    folded = fold(original)
    fold_s = time.perf_counter() - fold_start
    rng = np.random.default_rng(1)
    x = rng.normal(size=(cfg["batch"], cfg["image"], cfg["image"], 3))
    x = x.astype("float32")
    models = {"original": original, "folded": folded}
    reference = original.predict_on_batch(x)
    diff = float(np.abs(folded.predict_on_batch(x) - reference).max())
    medians = rotated_ms(models, x, cfg["runs"], cfg["calls"])
    rows = {
        name: {
            "bn_layers": len(model_graph.batch_norm_layers(models[name])),
            "median_ms": statistics.median(medians[name]),
            "min_ms": min(medians[name]),
            "max_ms": max(medians[name]),
            "run_medians_ms": medians[name],
        }
        for name in CANDIDATES
    }
    return {
        **tables.environment(),
        **cfg,
        "model": f"ResNet50 ({cfg['image']}x{cfg['image']}x3), batch {cfg['batch']}",
        "quick": quick,
        "fold_seconds": fold_s,
        "rows": rows,
        "speedup": rows["original"]["median_ms"] / rows["folded"]["median_ms"],
        "max_abs_diff": diff,
        "max_abs_logit": float(np.abs(reference).max()),
        "seconds": time.perf_counter() - start,
    }


def markdown(report):
    lines = [
        f"Measured {report['date']} on {report['machine']}, TensorFlow "
        f"{report['tensorflow']}, Keras {report['keras']}"
        f"{' (quick run)' if report['quick'] else ''}: {report['model']}, "
        f"`predict_on_batch`, {report['runs']} runs of {report['calls']} calls "
        f"per model, rotated call by call; median, min and max of the runs' "
        f"medians. `kbn.fold` took {report['fold_seconds']:.1f} s.",
        "",
        "| model | BN layers | median (ms/batch) | min (ms/batch) | max (ms/batch) |",
        "|---|---|---|---|---|",
    ]
    for name in CANDIDATES:
        row = report["rows"][name]
        lines.append(
            f"| {name} | {row['bn_layers']} | {row['median_ms']:.2f} | "
            f"{row['min_ms']:.2f} | {row['max_ms']:.2f} |"
        )
    lines += [
        "",
        f"Speedup (original / folded, medians): {report['speedup']:.2f}x. "
        f"Outputs: max |diff| {report['max_abs_diff']:.2e} "
        f"(largest |logit| {report['max_abs_logit']:.2e}).",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32x32, batch 8")
    parser.add_argument("--runs", type=tables.positive_int, help="runs (default 5)")
    parser.add_argument(
        "--calls", type=tables.positive_int, help="calls per model per run (default 10)"
    )
    parser.add_argument(
        "--out",
        default=os.path.join("benchmarks", "results"),
        help="folder for fold.json and fold.md",
    )
    args = parser.parse_args(argv)
    report = run(args.quick, args.runs, args.calls)
    text = markdown(report)
    tables.write(args.out, "fold", report, text)
    print(text)
    print(f"\nWritten to {args.out} in {report['seconds']:.0f} s.")


if __name__ == "__main__":
    main()
