"""Where the kernel beats the plain formulation: the rule behind "auto".

For each shape, a training step of one layer (forward, then the gradients
for the input, gamma and beta) with kbn's kernel, with kbn's plain
formulation (`kbn.kernels` explains both) and with the stock layer, timed in
rotation in one process (`benchmarks.timing`). On TensorFlow the step is a
`tf.function` traced with an unknown batch size, as `fit` traces it; on JAX a
jitted `stateless_call` gradient. `MIN_KERNEL_VALUES` in each backend module
is set from these figures.

Usage:
    KERAS_BACKEND=tensorflow python -m benchmarks.crossover [--runs 3]
    KERAS_BACKEND=jax python -m benchmarks.crossover [--runs 3]
"""

import argparse
import contextlib
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kbn  # noqa: E402
from benchmarks import tables, timing  # noqa: E402
from kbn import kernels  # noqa: E402

SHAPES = [
    (60, 100),
    (256, 100),
    (1024, 512),
    (60, 8, 8, 32),
    (32, 28, 28, 32),
    (64, 32, 32, 64),
]
# MIN_KERNEL_VALUES forcing each formulation under "auto" while a step traces.
FORCE = {"kernel": 0, "plain": float("inf")}


@contextlib.contextmanager
def forced(formulation):
    """`compile_moments="auto"` takes `formulation` while this is open."""
    module = kernels.for_backend(keras.backend.backend())
    saved = module.MIN_KERNEL_VALUES
    module.MIN_KERNEL_VALUES = FORCE[formulation]
    try:
        yield
    finally:
        module.MIN_KERNEL_VALUES = saved


def _layer(cls, shape):
    layer = cls()
    layer.build(shape)
    return layer


def _tf_step(layer, shape, formulation):
    import tensorflow as tf

    spec = tf.TensorSpec((None, *shape[1:]), "float32")

    @tf.function(input_signature=[spec, spec])
    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return tape.gradient(y, [x, *layer.trainable_weights], output_gradients=dy)

    with forced(formulation) if formulation else contextlib.nullcontext():
        step.get_concrete_function()
    return step


def _jax_step(layer, shape, formulation):
    import jax

    tv = [v.value for v in layer.trainable_variables]
    ntv = [v.value for v in layer.non_trainable_variables]

    def loss(tv, x, dy):
        y, state = layer.stateless_call(tv, ntv, x, training=True)
        return keras.ops.sum(y * dy), state

    grad = jax.jit(jax.grad(loss, (0, 1), has_aux=True))
    x = np.zeros(shape, "float32")
    with forced(formulation) if formulation else contextlib.nullcontext():
        grad.lower(tv, x, x)  # traces with the formulation forced
        compiled = grad.lower(tv, x, x).compile()
    return lambda x, dy: compiled(tv, x, dy)


def candidates(shape):
    make = _jax_step if keras.backend.backend() == "jax" else _tf_step
    return {
        "kernel": make(_layer(kbn.BatchNormalization, shape), shape, "kernel"),
        "plain": make(_layer(kbn.BatchNormalization, shape), shape, "plain"),
        "stock": make(_layer(keras.layers.BatchNormalization, shape), shape, None),
    }


def measure(shape, runs, repeats=20):
    rng = np.random.default_rng(0)
    x, dy = (rng.normal(size=shape).astype("float32") for _ in range(2))
    if keras.backend.backend() != "jax":
        import tensorflow as tf

        x, dy = tf.constant(x), tf.constant(dy)
    per_run = timing.measure_runs(candidates(shape), (x, dy), runs, repeats, 3)
    values = per_run["rotation"]
    return {
        "shape": list(shape),
        "values": int(np.prod(shape)),
        "ms": {n: timing.spread(v[n] for v in values) for n in values[0]},
        "plain_over_kernel": timing.spread(v["plain"] / v["kernel"] for v in values),
        "stock_over_best": timing.spread(
            v["stock"] / min(v["kernel"], v["plain"]) for v in values
        ),
    }


def table(rows):
    lines = [
        "| shape | values | kernel ms | plain ms | stock ms | plain / kernel "
        "| stock / faster kbn |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ms = [tables._range(r["ms"][n]) for n in ("kernel", "plain", "stock")]
        lines.append(
            f"| {tuple(r['shape'])} | {r['values']} | {' | '.join(ms)} | "
            f"{tables._range(r['plain_over_kernel'])} | "
            f"{tables._range(r['stock_over_best'])} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=tables.at_least_3, default=3)
    parser.add_argument("--shapes", help="e.g. 60x100,64x32x32x64")
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    args = parser.parse_args(argv)
    shapes = SHAPES
    if args.shapes:
        shapes = [tuple(map(int, s.split("x"))) for s in args.shapes.split(",")]
    rows = [measure(s, args.runs) for s in shapes]
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{keras.backend.backend()}, rotation, median (min-max) of {args.runs} runs")
    print(table(rows))
    print("plain / kernel > 1: the kernel is faster; stock / faster kbn > 1: kbn wins")


if __name__ == "__main__":
    main()
