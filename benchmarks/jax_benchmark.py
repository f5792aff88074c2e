"""The layer on the JAX backend: kbn's kernel against the stock layer.

Runs in a process whose Keras backend is JAX (`python -m benchmarks` starts
one). For each
shape, the layer's training step (forward in training mode, the gradients
for the input, gamma and beta given an upstream gradient, and the new moving
statistics, all in one `jax.jit`) and its inference step, timed in both modes
of `benchmarks.timing`, and the compiled training step's temporary memory as
XLA reports it (`jax.jit(...).lower(...).compile().memory_analysis()`).

Candidates: `kbn` (its `jax.custom_vjp` kernel), `kbn_portable`
(`compile_moments=False`, the `keras.ops` path differentiated by JAX) and
`stock` (`keras.layers.BatchNormalization`).

Usage:
    KERAS_BACKEND=jax python -m benchmarks.jax_benchmark [--quick]
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import kbn  # noqa: E402
from benchmarks import tables, timing  # noqa: E402

SHAPES = [(64, 32, 32, 64), (32, 56, 56, 128), (8, 112, 112, 64), (1024, 512)]
SHAPES += [(8192, 1024), (60, 100), (256, 100), (60, 8, 8, 32), (32, 28, 28, 32)]
QUICK_SHAPES = [(64, 32, 32, 64), (1024, 512)]
FLOOR_PASSES = {"train": 8, "infer": 2}
LAYERS = {
    "kbn": kbn.BatchNormalization,
    "kbn_portable": lambda: kbn.BatchNormalization(compile_moments=False),
    "stock": keras.layers.BatchNormalization,
}


def _step(make_layer, shape, mode):
    """A jitted step and its arguments, with the layer's state threaded."""
    layer = make_layer()
    layer.build(shape)
    trainable = [v.value for v in layer.trainable_variables]
    state = [v.value for v in layer.non_trainable_variables]

    def train(trainable, state, x, dy):
        def loss(trainable, x):
            y, new_state = layer.stateless_call(trainable, state, x, training=True)
            return (y * dy).sum(), new_state

        grad = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
        (_, new_state), grads = grad(trainable, x)
        return grads, new_state

    def infer(trainable, state, x, dy):
        return layer.stateless_call(trainable, state, x, training=False)[0]

    return jax.jit(train if mode == "train" else infer), (trainable, state)


def inputs(shape):
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.normal(size=shape).astype("float32"))
    dy = jax.numpy.asarray(rng.normal(size=shape).astype("float32"))
    return x, dy


def measure(shape, mode, bandwidth_gbs, runs, repeats, warmup):
    """One row, in the layout of `layer_benchmark.measure` (plus memory)."""
    x, dy = inputs(shape)
    steps, memory = {}, {}
    for name, make in LAYERS.items():
        fn, (trainable, state) = _step(make, shape, mode)
        steps[name] = lambda x, dy, fn=fn, t=trainable, s=state: fn(t, s, x, dy)
        if mode == "train":
            compiled = fn.lower(trainable, state, x, dy).compile()
            stats = compiled.memory_analysis()  # None where a backend has none
            if stats is not None:
                memory[name] = stats.temp_size_in_bytes / 2**20
    per_run = timing.measure_runs(steps, (x, dy), runs, repeats, warmup)
    floor = timing.floor_ms(x.nbytes, FLOOR_PASSES[mode], bandwidth_gbs)
    row = {
        "backend": "jax",
        "shape": list(shape),
        "dtype": "float32",
        "mode": mode,
        "floor_ms": floor,
        "timing": {},
    }
    for timing_mode, values in per_run.items():
        summary = timing.summarize(values)
        summary["kbn_over_floor"] = timing.spread(v["kbn"] / floor for v in values)
        row["timing"][timing_mode] = summary
    if memory:
        row["temp_mib"] = memory
    return row


def rows_here(quick, bandwidth_gbs, runs):
    shapes = QUICK_SHAPES if quick else SHAPES
    repeats = 3 if quick else 10
    return [
        measure(shape, mode, bandwidth_gbs, runs, repeats, warmup=2)
        for mode in ("train", "infer")
        for shape in shapes
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two shapes, few calls")
    parser.add_argument("--json", action="store_true", help="print rows as JSON")
    parser.add_argument("--bandwidth", type=float, help=argparse.SUPPRESS)
    parser.add_argument(
        "--runs", type=tables.at_least_3, default=3, help="runs per figure (>= 3)"
    )
    args = parser.parse_args(argv)
    if keras.backend.backend() != "jax":
        parser.error("needs the JAX backend: run it with KERAS_BACKEND=jax")
    bandwidth = args.bandwidth or timing.copy_bandwidth_gbs()
    rows = rows_here(args.quick, bandwidth, args.runs)
    if args.json:
        print(json.dumps(rows))
        return
    print(tables.layer_table(rows))
    print(tables.jax_memory_table(rows))


if __name__ == "__main__":
    main()
