"""Forward+backward time of batch normalization, side by side in one process.

Compares, on the same tensors and in one run (so ratios are meaningful on a
noisy machine):

- `kbn`:          kbn.BatchNormalization (compiled kernel), step in tf.function
- `stock`:        keras.layers.BatchNormalization, step in tf.function
- `stock_xla`:    the stock layer with the whole step under XLA (jit_compile)
- `fused`:        tf.compat.v1.nn.fused_batch_norm (4-D NHWC only)

Each step is a training-mode forward, the gradient for the input, gamma and
beta, and the moving-statistics update. Times are medians over repeats after
warm-up.

Usage:
    python -m benchmarks.layer_benchmark [--quick] [--out benchmarks/results]
"""

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kbn  # noqa: E402

SHAPES = [(64, 32, 32, 64), (1024, 512)]


def _layer_step(layer, jit):
    @tf.function(jit_compile=jit)
    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * dy)
        return tape.gradient(loss, [x, layer.gamma, layer.beta])

    return step


def _fused_step(channels):
    gamma = tf.Variable(tf.ones(channels))
    beta = tf.Variable(tf.zeros(channels))

    @tf.function
    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=1e-3, is_training=True
            )
            loss = tf.reduce_sum(y * dy)
        return tape.gradient(loss, [x, gamma, beta])

    return step


def candidates(shape):
    out = {
        "kbn": _layer_step(kbn.BatchNormalization(), jit=False),
        "stock": _layer_step(keras.layers.BatchNormalization(), jit=False),
        "stock_xla": _layer_step(keras.layers.BatchNormalization(), jit=True),
    }
    if len(shape) == 4:
        out["fused"] = _fused_step(shape[-1])
    return out


def median_ms(step, x, dy, repeats, warmup):
    for _ in range(warmup):
        _sync(step(x, dy))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _sync(step(x, dy))
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _sync(result):
    for t in result:
        t.numpy()


def run(quick=False):
    repeats, warmup, rounds = (5, 2, 1) if quick else (15, 5, 3)
    rng = np.random.default_rng(0)
    results = []
    for shape in SHAPES:
        x = tf.constant(rng.normal(size=shape).astype("float32"))
        dy = tf.constant(rng.normal(size=shape).astype("float32"))
        steps = candidates(shape)
        # Interleave rounds so slow phases of the machine hit every candidate.
        samples = {name: [] for name in steps}
        for _ in range(rounds):
            for name, step in steps.items():
                samples[name].append(median_ms(step, x, dy, repeats, warmup))
        row = {"shape": list(shape), "ms": {k: min(v) for k, v in samples.items()}}
        row["speedup_vs"] = {
            k: row["ms"][k] / row["ms"]["kbn"] for k in row["ms"] if k != "kbn"
        }
        results.append(row)
    return {
        "benchmark": "layer forward+backward, float32, training mode",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "quick": quick,
        "results": results,
    }


def markdown(report):
    names = ["kbn", "stock", "stock_xla", "fused"]
    lines = [
        "| shape | "
        + " | ".join(f"{n} (ms)" for n in names)
        + " | stock / kbn | stock_xla / kbn | fused / kbn |",
        "|---" * (len(names) + 4) + "|",
    ]
    for row in report["results"]:
        ms = [f"{row['ms'][n]:.2f}" if n in row["ms"] else "n/a" for n in names]
        ratios = [
            f"{row['speedup_vs'][n]:.2f}x" if n in row["speedup_vs"] else "n/a"
            for n in names[1:]
        ]
        shape = "x".join(map(str, row["shape"]))
        lines.append(f"| {shape} | " + " | ".join(ms + ratios) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats (smoke run)")
    parser.add_argument(
        "--out",
        default=os.path.join("benchmarks", "results"),
        help="folder for layer.json and layer.md",
    )
    args = parser.parse_args(argv)
    report = run(quick=args.quick)
    table = markdown(report)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "layer.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(args.out, "layer.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    print("Ratios > 1 mean kbn is faster. Written to", args.out)


if __name__ == "__main__":
    main()
