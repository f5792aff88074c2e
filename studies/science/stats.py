"""Statistics helpers of the analysis: NaN-aware means, intervals, JSON numbers.

Plain NumPy; every function here is independent of what a study measures.
"""

import math
import warnings

import numpy as np

RESAMPLES = 1000  # bootstrap resamples of the seeds
LEVEL = 0.95  # the intervals' coverage


def nanmean(values, axis=None):
    """`np.nanmean` without the warning of an all-NaN slice (whose mean is NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        return np.nanmean(values, axis=axis)


def interval(samples):
    """The central `LEVEL` percentile interval of bootstrap samples, or None."""
    samples = np.asarray(samples, float)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return [float(low), float(high)]


def seed_std(per_point):
    """Mean over points with two or more finished seeds of the std across seeds."""
    finished = np.sum(np.isfinite(per_point), axis=1) >= 2
    if not finished.any():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.mean(np.nanstd(per_point[finished], axis=1, ddof=1)))


def floats(values):
    """A curve as floats (a None reading, as JSON null, becomes NaN)."""
    return np.array([math.nan if v is None else v for v in values], float)


def nan_reduce(reduce, values):
    """`reduce` over the finite values (NaN if there are none)."""
    values = values[np.isfinite(values)]
    return float(reduce(values)) if values.size else math.nan


def finite_or_none(value):
    """`value` as a float, or None if it is None, NaN or inf (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def jsonable(value):
    """`value` with NumPy scalars as Python ones and non-finite floats as None."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return finite_or_none(value)
    return value
