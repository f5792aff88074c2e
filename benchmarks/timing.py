"""Timing helpers shared by the benchmarks: medians, interleaving, the floor.

The development machine is noisy (its copy bandwidth moves between about 15
and 40 GB/s from one hour to the next), so a figure is only compared with
figures from the same run: candidates are timed in interleaved rounds, each
round a median over repeats after warm-up, and the best round is kept.
"""

import statistics
import time

import numpy as np


def median_ms(fn, args, repeats, warmup):
    """Median wall time of `fn(*args)` in milliseconds, after `warmup` calls."""
    for _ in range(warmup):
        _wait(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _wait(fn(*args))
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def interleaved_ms(candidates, args, rounds, repeats, warmup):
    """Best-of-`rounds` median for each candidate, rounds interleaved.

    Args:
        candidates: Dict of name to callable.
        args: Arguments passed to every candidate.

    Returns:
        Dict of name to milliseconds.
    """
    samples = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            samples[name].append(median_ms(fn, args, repeats, warmup))
    return {name: min(values) for name, values in samples.items()}


def copy_bandwidth_gbs(nbytes=256 * 2**20, repeats=15):
    """Memory bandwidth of a large copy into a preallocated buffer, in GB/s.

    Counts the bytes read and the bytes written, so one "pass" over a tensor
    (a read or a write of all of it) costs `tensor_bytes / bandwidth`.
    """
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the destination's pages in before timing

    def copy():
        np.copyto(dst, src)

    ms = median_ms(copy, (), repeats, warmup=2)
    return 2 * nbytes / (ms * 1e-3) / 1e9


def floor_ms(tensor_bytes, passes, bandwidth_gbs):
    """Time that `passes` reads or writes of a tensor take at the bandwidth."""
    return passes * tensor_bytes / (bandwidth_gbs * 1e9) * 1e3


def _wait(result):
    # TensorFlow on CPU runs eagerly and synchronously, so the call itself has
    # finished; JAX-style asynchronous results are waited on explicitly.
    for t in result if isinstance(result, (list, tuple)) else [result]:
        if hasattr(t, "block_until_ready"):
            t.block_until_ready()
