"""Batch normalization alone: kbn against the stock layer and fused_batch_norm.

Candidates, timed side by side in one process on the same tensors:

- `kbn`:       kbn.BatchNormalization (compiled kernel), step in tf.function
- `stock`:     keras.layers.BatchNormalization, step in tf.function
- `stock_xla`: the stock layer with the whole step under XLA (jit_compile)
- `fused`:     tf.compat.v1.nn.fused_batch_norm (4-D NHWC only)
- `torch`:     PyTorch's BatchNorm (channels-last 2d, or 1d), float32, only
               where torch happens to be importable (a reference, not a
               dependency)

Modes:

- `train`: training-mode forward, then the gradients for the input, gamma and
  beta given an upstream gradient (the layers also update their moving
  statistics). The floor is 8 passes over the tensor.
- `infer`: forward with the moving statistics (training=False). The floor is
  2 passes (read x, write y).

Every figure is a range over runs in both timing modes (`benchmarks.timing`).

Usage:
    python -m benchmarks.layer_benchmark [--quick] [--out benchmarks/results]
"""

import argparse
import importlib.util
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kbn  # noqa: E402
from benchmarks import processes, tables, timing  # noqa: E402

CONV_SHAPES = [(64, 32, 32, 64), (32, 56, 56, 128), (8, 112, 112, 64)]
DENSE_SHAPES = [(1024, 512), (8192, 1024)]
# Where users start and the studies run: per-call overhead, not memory.
SMALL_SHAPES = [(60, 100), (256, 100), (60, 8, 8, 32), (32, 28, 28, 32)]
DTYPES = ["float32", "mixed_float16"]
QUICK_SHAPES = [(64, 32, 32, 64), (1024, 512)]
FLOOR_PASSES = {"train": 8, "infer": 2}


def _built(layer_class, shape, dtype):
    layer = layer_class(dtype=dtype)
    layer.build(shape)
    return layer


def _train_step(layer, jit):
    @tf.function(jit_compile=jit)
    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return tape.gradient(y, [x, layer.gamma, layer.beta], output_gradients=dy)

    return step


def _infer_step(layer, jit):
    @tf.function(jit_compile=jit)
    def step(x, dy):
        return layer(x, training=False)

    return step


def _fused_step(channels, mode):
    gamma = tf.Variable(tf.ones(channels))
    beta = tf.Variable(tf.zeros(channels))
    mean = tf.zeros(channels)
    variance = tf.ones(channels)

    @tf.function
    def train(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=1e-3, is_training=True
            )
        return tape.gradient(y, [x, gamma, beta], output_gradients=dy)

    @tf.function
    def infer(x, dy):
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, mean, variance, epsilon=1e-3, is_training=False
        )
        return y

    return train if mode == "train" else infer


def _torch_step(shape, mode):
    """PyTorch's own layer on the same data, or None without torch.

    The step ignores the TensorFlow tensors it is passed and uses torch
    copies of the same seeded data, made once.
    """
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    channels = shape[-1]
    if len(shape) == 4:
        layer = torch.nn.BatchNorm2d(channels, eps=1e-3)
    else:
        layer = torch.nn.BatchNorm1d(channels, eps=1e-3)
    layer.train(mode == "train")

    def as_torch(t):
        t = torch.from_numpy(np.array(t.numpy()))
        # NHWC data seen as NCHW in channels-last memory: no copy.
        return t.permute(0, 3, 1, 2) if t.dim() == 4 else t

    x, dy = (as_torch(t) for t in inputs(shape, "float32"))
    x.requires_grad_(mode == "train")

    def step(*_):
        if mode == "infer":
            with torch.no_grad():
                return layer(x)
        x.grad = None
        layer(x).backward(dy)
        return x.grad

    return step


def candidates(shape, dtype, mode, with_torch=True):
    """The timed steps for one shape, dtype policy and mode, by name."""
    make = _train_step if mode == "train" else _infer_step
    out = {
        "kbn": make(_built(kbn.BatchNormalization, shape, dtype), jit=False),
        "stock": make(_built(keras.layers.BatchNormalization, shape, dtype), False),
        "stock_xla": make(_built(keras.layers.BatchNormalization, shape, dtype), True),
    }
    if len(shape) == 4:
        out["fused"] = _fused_step(shape[-1], mode)
    use_torch = with_torch and dtype == "float32"
    torch_step = _torch_step(shape, mode) if use_torch else None
    if torch_step is not None:
        out["torch"] = torch_step
    return out


def inputs(shape, dtype):
    """The seeded input and upstream gradient, in the policy's activation dtype."""
    rng = np.random.default_rng(0)
    act = "float16" if dtype == "mixed_float16" else dtype
    x = tf.constant(rng.normal(size=shape).astype(act))
    dy = tf.constant(rng.normal(size=shape).astype(act))
    return x, dy


def measure(shape, dtype, mode, bandwidth_gbs, runs, repeats, warmup):
    """One table row: ranges of the times and ratios in both timing modes.

    Returns:
        `{"shape", "dtype", "mode", "floor_ms", "timing"}`; `timing[mode]` has
        `ms` and `ratio` (X / kbn: above 1, kbn is faster) as ranges over the
        runs, and `kbn_over_floor`, how many floors kbn takes.
    """
    x, dy = inputs(shape, dtype)
    per_run = timing.measure_runs(
        candidates(shape, dtype, mode), (x, dy), runs, repeats, warmup
    )
    floor = timing.floor_ms(x.numpy().nbytes, FLOOR_PASSES[mode], bandwidth_gbs)
    row = {"shape": list(shape), "dtype": dtype, "mode": mode, "floor_ms": floor}
    row["timing"] = {}
    for timing_mode, values in per_run.items():
        summary = timing.summarize(values)
        summary["kbn_over_floor"] = timing.spread(v["kbn"] / floor for v in values)
        row["timing"][timing_mode] = summary
    return row


def run(quick=False, bandwidth_gbs=None, runs=3):
    """All layer rows; quick: the two issue-2 shapes, float32, few repeats.

    A full run measures each row in a fresh process. Rows of 32 MiB and more
    make the C allocator map fresh pages for every output, and the heap a
    long run leaves behind changed later rows' times by up to 5x; a fresh
    process gives every row the same start (its candidates still share it).
    """
    bandwidth_gbs = bandwidth_gbs or timing.copy_bandwidth_gbs()
    shapes = QUICK_SHAPES if quick else CONV_SHAPES + DENSE_SHAPES + SMALL_SHAPES
    dtypes = ["float32"] if quick else DTYPES
    rows = []
    for mode in ("train", "infer"):
        for dtype in dtypes:
            for shape in shapes:
                config = (shape, dtype, mode, bandwidth_gbs, runs)
                if quick:
                    rows.append(measure(*config, repeats=3, warmup=2))
                else:
                    rows.append(_measure_in_fresh_process(*config))
    return {"copy_bandwidth_gbs": bandwidth_gbs, "runs": runs, "rows": rows}


def _measure_in_fresh_process(shape, dtype, mode, bandwidth_gbs, runs):
    row = ",".join(
        [mode, dtype, "x".join(map(str, shape)), str(bandwidth_gbs), str(runs)]
    )
    return processes.run_json("benchmarks.layer_benchmark", "--row", row)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few shapes and repeats")
    parser.add_argument(
        "--out",
        default=os.path.join("benchmarks", "results"),
        help="folder for layer.json and layer.md",
    )
    parser.add_argument("--row", help=argparse.SUPPRESS)  # one row, as JSON
    parser.add_argument(
        "--runs", type=tables.at_least_3, default=3, help="runs per figure (>= 3)"
    )
    args = parser.parse_args(argv)
    if args.row:
        mode, dtype, shape, bandwidth, runs = args.row.split(",")
        shape = tuple(int(n) for n in shape.split("x"))
        row = measure(shape, dtype, mode, float(bandwidth), int(runs), 10, 3)
        print(json.dumps(row))
        return
    report = {
        **tables.environment(),
        "quick": args.quick,
        **run(quick=args.quick, runs=args.runs),
    }
    table = tables.layer_table(report["rows"])
    tables.write(args.out, "layer", report, table)
    print(table)
    print("Ratios > 1 mean kbn is faster. Written to", args.out)


if __name__ == "__main__":
    main()
