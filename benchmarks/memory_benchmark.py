"""Peak memory of one training step of each batch-normalization candidate.

TensorFlow reports allocator statistics on CPU only with its BFC allocator,
which is chosen at start-up (`TF_CPU_ALLOCATOR_USE_BFC=true`) and changes
timings, so `measure()` runs this module in a fresh process with it set. In
that process each candidate is warmed up (traced and compiled), the peak is
reset, and one step runs: the figure is the peak allocation above what was
already live (the input and upstream gradient), in MiB. It includes the
step's outputs (dx and the gamma/beta gradients) and everything the gradient
keeps alive in between.

Usage (what `measure()` runs):
    TF_CPU_ALLOCATOR_USE_BFC=true python -m benchmarks.memory_benchmark 64x32x32x64
"""

import json
import sys

import tensorflow as tf

from benchmarks import processes
from benchmarks.layer_benchmark import candidates, inputs


def measure(shapes):
    """Peak step memory per shape and candidate, from a fresh process.

    Returns:
        A list of `{"shape", "mib": {candidate: MiB}}`.
    """
    args = ["x".join(map(str, s)) for s in shapes]
    return processes.run_json(
        "benchmarks.memory_benchmark",
        *args,
        env={"TF_CPU_ALLOCATOR_USE_BFC": "true", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def _peak_mib(step, x, dy):
    for _ in range(2):
        step(x, dy)
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    result = step(x, dy)
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    del result
    return (peak - before) / 2**20


def main(argv=None):
    rows = []
    for arg in argv if argv is not None else sys.argv[1:]:
        shape = tuple(int(n) for n in arg.split("x"))
        x, dy = inputs(shape, "float32")
        # TensorFlow's allocator statistics say nothing of torch's memory.
        steps = candidates(shape, "float32", "train", with_torch=False)
        rows.append(
            {
                "shape": list(shape),
                "tensor_mib": x.numpy().nbytes / 2**20,
                "mib": {name: _peak_mib(step, x, dy) for name, step in steps.items()},
            }
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
