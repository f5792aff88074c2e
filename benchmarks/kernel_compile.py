"""What the TensorFlow kernel's one-time compile costs, against what it saves.

The kernel is an XLA program of its own (`kbn.kernels.tensorflow`): the
first call at each input shape traces and compiles it (forward and backward
separately), every later call at that shape, in any layer or model of the
process, reuses it. For each shape: the forward and the backward of the first
call, a second batch size (the short last batch of a `fit` epoch compiles
again), and a cached call, median (min-max) over `--runs` fresh processes.
Set against the per-call saving in `benchmarks/results/crossover.md`, the
compile says after how many calls the kernel has paid for itself.

Usage:
    python -m benchmarks.kernel_compile [--runs 3] [--shapes 3840x32]
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import processes, tables, timing  # noqa: E402

SHAPES = [(3840, 32), (1024, 512)]


def _call(kernels, tf, shape):
    x = tf.random.normal(shape)
    gamma = tf.ones((1, shape[1]))
    beta = tf.zeros((1, shape[1]))
    start = time.perf_counter()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y, _, _ = kernels.batch_norm_train(
            x,
            gamma,
            beta,
            axes=(0,),
            epsilon=1e-3,
            out_dtype="float32",
            formulation="kernel",
        )
    y.numpy()  # the forward's work in its own column on any device
    forward = time.perf_counter()
    tape.gradient(y, x).numpy()
    return [(forward - start) * 1e3, (time.perf_counter() - forward) * 1e3]


def one_process(shape):
    """`[first fwd, first bwd, other batch fwd, bwd, cached fwd, bwd]` ms."""
    import tensorflow as tf

    from kbn.kernels import tensorflow as kernels

    rows, features = shape
    # XLA's one-time start-up in the process, so the first figures are the
    # compile of this shape alone (what a second model's new shape costs).
    _call(kernels, tf, (7, features + 1))
    times = _call(kernels, tf, (rows, features))
    times += _call(kernels, tf, (rows - 3, features))
    times += _call(kernels, tf, (rows, features))
    return times


def measure(shape, runs):
    """Each figure's spread over `runs` fresh processes."""
    samples = [
        processes.run_json("benchmarks.kernel_compile", "--one", _text(shape))
        for _ in range(runs)
    ]
    return [timing.spread(c) for c in zip(*samples, strict=True)]


def _text(shape):
    return "x".join(str(n) for n in shape)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=tables.at_least_3, default=3)
    parser.add_argument("--shapes", help="e.g. 3840x32,1024x512")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # one process's figures
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_process(tuple(int(n) for n in args.one.split("x")))))
        return
    shapes = SHAPES
    if args.shapes:
        shapes = [tuple(int(n) for n in s.split("x")) for s in args.shapes.split(",")]
    print(
        "| view shape | first fwd (ms) | first bwd (ms) | short batch fwd (ms) "
        "| short batch bwd (ms) | cached fwd (ms) | cached bwd (ms) |"
    )
    print("|---|---|---|---|---|---|---|")
    for shape in shapes:
        cells = [tables._range(s) for s in measure(shape, args.runs)]
        print(f"| ({', '.join(map(str, shape))}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
