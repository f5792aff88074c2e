"""Where a small dense training step's time goes, kbn against whole-step XLA.

For a dense batch (default (1024, 512) float32), each candidate is one
training step called from Python (forward in training mode, then the
gradients for the input given an upstream gradient), timed in both modes of
`benchmarks.timing`:

- `call`:        an empty `tf.function` (the Python-to-graph call alone)
- `launch`:      a `tf.function` calling one tiny nested XLA function
- `kernel`:      kbn's two XLA kernels (forward, backward) on the layer's
                 view, without the layer around them
- `kbn`:         the layer (kernel plus its own bookkeeping: view reshapes,
                 the moving-statistic updates)
- `plain_xla`:   the same statistics and normalization written plainly, the
                 whole step one XLA function (what the layer emits under
                 `jit_compile=True`, without the layer)
- `stock_xla`:   the stock layer, the whole step under XLA

So `kernel - launch` is the kernels' own time and `kbn - kernel` the layer's
bookkeeping.

Usage:
    python -m benchmarks.overhead [--shape 1024x512] [--runs 5]
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import kbn  # noqa: E402
from benchmarks import tables, timing  # noqa: E402
from benchmarks.layer_benchmark import inputs  # noqa: E402
from kbn.kernels import tensorflow as tf_kernel  # noqa: E402


def candidates(shape):
    rows, channels = shape
    view = (rows, channels, 1)
    gamma, beta = tf.ones((1, channels, 1)), tf.zeros((1, channels, 1))
    settings = dict(axes=(0, 2), epsilon=1e-3, out_dtype="float32")

    @tf.function
    def call(x, dy):
        return x

    @tf.function(jit_compile=True)
    def tiny(x):
        return x[:1] * 2.0

    @tf.function
    def launch(x, dy):
        return tiny(x)

    @tf.function
    def kernel(x, dy):
        xv = tf.reshape(x, view)
        with tf.GradientTape() as tape:
            tape.watch(xv)
            y, _, _ = tf_kernel.batch_norm_train(xv, gamma, beta, **settings)
        return tape.gradient(y, xv, output_gradients=tf.reshape(dy, view))

    @tf.function(jit_compile=True)
    def plain_xla(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y, _, _ = tf_kernel.batch_norm_train(
                x,
                gamma[..., 0],
                beta[..., 0],
                axes=(0,),
                epsilon=1e-3,
                out_dtype="float32",
            )
        return tape.gradient(y, x, output_gradients=dy)

    def layer_step(layer_class, jit):
        layer = layer_class()
        layer.build(shape)

        @tf.function(jit_compile=jit)
        def step(x, dy):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
            return tape.gradient(y, x, output_gradients=dy)

        return step

    return {
        "kbn": layer_step(kbn.BatchNormalization, False),
        "call": call,
        "launch": launch,
        "kernel": kernel,
        "plain_xla": plain_xla,
        "stock_xla": layer_step(keras.layers.BatchNormalization, True),
    }


def measure(shape, runs, repeats=20, warmup=3):
    x, dy = inputs(shape, "float32")
    per_run = timing.measure_runs(candidates(shape), (x, dy), runs, repeats, warmup)
    return {
        "shape": list(shape),
        "timing": {mode: timing.summarize(v) for mode, v in per_run.items()},
    }


def table(result):
    names = list(result["timing"]["rotation"]["ms"])
    lines = [
        "| timing | " + " | ".join(f"{n} (ms)" for n in names) + " |",
        "|---" * (1 + len(names)) + "|",
    ]
    for mode, label in tables.TIMING_MODES.items():
        ms = result["timing"][mode]["ms"]
        lines.append(
            f"| {label} | " + " | ".join(tables._range(ms[n]) for n in names) + " |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="1024x512", help="ROWSxCHANNELS")
    parser.add_argument("--runs", type=tables.at_least_3, default=5)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        shape = tuple(int(n) for n in args.shape.split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 2 or min(shape) < 1:
        parser.error(f"--shape must be ROWSxCHANNELS, got {args.shape!r}")
    result = {**tables.environment(), **measure(shape, args.runs)}
    print(json.dumps(result) if args.json else table(result))


if __name__ == "__main__":
    main()
