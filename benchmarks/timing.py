"""Timing helpers shared by the benchmarks: two timing modes, ranges, the floor.

The development machine is noisy (its copy bandwidth moves between about 15
and 40 GB/s from one hour to the next, and a figure can move by 2x between
minutes), so a figure is only compared with figures from the same run, and
every figure is a range over several runs, never one best run:

- `back_to_back`: each candidate runs `repeats` times in a row (its data and
  code warm in cache); the median of those calls is one run's figure.
- `rotation`: the candidates take turns, one call each, `repeats` times
  round; the median of a candidate's calls is one run's figure. Each call
  starts with what the other candidates left in cache, as a layer does
  inside a model.

A run is one pass of both modes over every candidate, after warm-up; `runs`
of them are interleaved, and `spread` turns each figure's per-run values into
`{"median", "min", "max"}`. Ratios are taken within a run, then spread.
"""

import statistics
import time

import numpy as np

MODES = ("back_to_back", "rotation")


def _call_ms(fn, args):
    start = time.perf_counter()
    _wait(fn(*args))
    return (time.perf_counter() - start) * 1e3


def back_to_back_ms(candidates, args, repeats):
    """One run of back-to-back repeats: `{name: median ms}`."""
    return {
        name: statistics.median(_call_ms(fn, args) for _ in range(repeats))
        for name, fn in candidates.items()
    }


def rotation_ms(candidates, args, repeats):
    """One run of call-by-call rotation: `{name: median ms}`."""
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            times[name].append(_call_ms(fn, args))
    return {name: statistics.median(values) for name, values in times.items()}


def measure_runs(candidates, args, runs, repeats, warmup):
    """Both modes, `runs` times: `{mode: [{name: ms} per run]}`.

    Args:
        candidates: Dict of name to callable; each is called with `args`.
        runs: Number of runs (at least 3 for a range worth the name).
        repeats: Calls per candidate per run and mode.
        warmup: Calls per candidate before the first run (tracing, compiling).
    """
    for fn in candidates.values():
        for _ in range(warmup):
            _wait(fn(*args))
    out = {mode: [] for mode in MODES}
    for _ in range(runs):
        out["back_to_back"].append(back_to_back_ms(candidates, args, repeats))
        out["rotation"].append(rotation_ms(candidates, args, repeats))
    return out


def spread(values):
    """`{"median", "min", "max"}` of a list of numbers."""
    values = list(values)
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def summarize(per_run, reference="kbn"):
    """Figures and ratios of one mode from its per-run `{name: ms}` dicts.

    Returns:
        `{"ms": {name: spread}, "ratio": {name: spread of name / reference}}`;
        a ratio above 1 means the reference (kbn) is faster.
    """
    names = per_run[0].keys()
    ms = {name: spread(run[name] for run in per_run) for name in names}
    ratio = {
        name: spread(run[name] / run[reference] for run in per_run)
        for name in names
        if name != reference
    }
    return {"ms": ms, "ratio": ratio}


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

    ms = statistics.median(_call_ms(copy, ()) for _ in range(repeats))
    return 2 * nbytes / (ms * 1e-3) / 1e9


def floor_ms(tensor_bytes, passes, bandwidth_gbs):
    """Time that `passes` reads or writes of a tensor take at the bandwidth."""
    return passes * tensor_bytes / (bandwidth_gbs * 1e9) * 1e3


def _wait(result):
    # TensorFlow on CPU runs eagerly and synchronously, so the call itself has
    # finished; JAX's asynchronous results are waited on explicitly.
    if isinstance(result, dict):
        result = list(result.values())
    for t in result if isinstance(result, (list, tuple)) else [result]:
        if isinstance(t, (list, tuple, dict)):
            _wait(t)
        elif hasattr(t, "block_until_ready"):
            t.block_until_ready()
