"""Statistics helpers of the analysis: NaN-aware means, intervals, JSON numbers.

Plain NumPy (SciPy for t quantiles); every function here is independent of
what a study measures.
"""

import functools
import math
import warnings

import numpy as np

LEVEL = 0.95  # the intervals' nominal coverage
MIN_SEEDS = 3  # fewer finished seeds: no interval (see `t_interval`)
T_METHOD = "student_t"
SPREAD_METHOD = "seed_range"


def nanmean(values, axis=None):
    """`np.nanmean` without the warning of an all-NaN slice (whose mean is NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        return np.nanmean(values, axis=axis)


def t_interval(values, level=LEVEL, within=None):
    """Student t interval of the mean of per-seed `values` (finite ones).

    mean +- t(level, n - 1) * s / sqrt(n): exact for normal seeds; measured
    by simulation for skewed ones (`studies.science.coverage`). A paired
    difference is the interval of the per-seed differences.

    Args:
        within: `(lowest, highest)` the number can take (an accuracy's 0
            and 1): the interval is truncated to it, which keeps its
            coverage (the true value is inside).

    Returns:
        `{"low", "high", "method", "n", "level"}`; with fewer than
        `MIN_SEEDS` finite values `low` and `high` are None and `reason`
        says why (two seeds give t = 12.7 on one degree of freedom: an
        interval too wide to say anything, or, from a bootstrap, one that
        covers about half the time).
    """
    values = _finite(values)
    n = int(values.size)
    entry = {"method": T_METHOD, "n": n, "level": level}
    if n < MIN_SEEDS:
        return {**entry, "low": None, "high": None, "reason": _too_few(n)}
    half = _t_quantile(0.5 + level / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    low, high = float(values.mean() - half), float(values.mean() + half)
    if within is not None:
        low, high = max(low, within[0]), min(high, within[1])
    return {**entry, "low": low, "high": high}


def seed_range(values):
    """The lowest and highest per-seed value: the spread of a number measured
    on the grid's resolution (a range width in decades), with no coverage
    claim (`level` None)."""
    values = _finite(values)
    n = int(values.size)
    entry = {"method": SPREAD_METHOD, "n": n, "level": None}
    if n < 2:
        return {**entry, "low": None, "high": None, "reason": _too_few(n, 2)}
    return {**entry, "low": float(values.min()), "high": float(values.max())}


def bounds(interval):
    """`(low, high)` of an interval entry, or None (no entry, or no bounds)."""
    if not interval or interval.get("low") is None:
        return None
    return interval["low"], interval["high"]


def binomial_se(accuracy, examples):
    """Standard error of an accuracy measured on `examples` examples:
    sqrt(p (1 - p) / m), the evaluation set's own noise (None without a
    size or an accuracy)."""
    if not examples or accuracy is None or not math.isfinite(accuracy):
        return None
    p = min(max(float(accuracy), 0.0), 1.0)
    return math.sqrt(p * (1 - p) / examples)


@functools.lru_cache(maxsize=256)
def _t_quantile(p, dof):
    from scipy import stats  # scikit-learn's dependency, loaded when needed

    return float(stats.t.ppf(p, dof))


def standard_error(values):
    """s / sqrt(n) of the finite values (None with fewer than two)."""
    values = _finite(values)
    if values.size < 2:
        return None
    return float(values.std(ddof=1) / math.sqrt(values.size))


def _finite(values):
    values = np.asarray(values, float).ravel()
    return values[np.isfinite(values)]


def _too_few(n, needed=MIN_SEEDS):
    return f"{n} finished seed(s); an interval needs {needed} or more"


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
