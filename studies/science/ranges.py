"""The numbers measured on one curve: usable ranges, stability, sensitivity.

A curve is one variant's seed-mean score along a swept axis, at fixed
values of the other axes (`grid.curves_along`). What each number means is
in `studies.science.analysis`'s docstring.
"""

import math

import numpy as np

from studies.science.stats import nanmean

TOLERANCES = {"1pt": 0.01, "5pt": 0.05}
TRAINED_MARGIN = 0.05  # accuracy points above chance a trained variant must reach
# range metric -> its floor, given (reference, chance); "{a}" is the axis
RANGES = {
    "usable_{a}_decades_1pt": lambda reference, chance: reference - TOLERANCES["1pt"],
    "usable_{a}_decades_5pt": lambda reference, chance: reference - TOLERANCES["5pt"],
    "trainable_{a}_decades": lambda reference, chance: chance + TRAINED_MARGIN,
}
# the ranges whose bounds the summary lists: metric -> list key
LISTED_RANGES = {
    "usable_{a}_decades_5pt": "usable_{a}_ranges_5pt",
    "trainable_{a}_decades": "trainable_{a}_ranges",
}


def usable_run(means, floor):
    """`(lo, hi)` indices of the contiguous run at or above `floor` around the
    curve's best, or None if the curve's best is below it."""
    if np.all(np.isnan(means)):
        return None
    best = int(np.nanargmax(means))
    if not means[best] >= floor:
        return None
    lo = hi = best
    while lo > 0 and means[lo - 1] >= floor:  # NaN (missing) ends the run
        lo -= 1
    while hi < len(means) - 1 and means[hi + 1] >= floor:
        hi += 1
    return lo, hi


def decades(xs, run):
    """Width of `run` (indices into `xs`) in decades; 0 for None."""
    return 0.0 if run is None else float(np.log10(xs[run[1]]) - np.log10(xs[run[0]]))


def max_stable_index(means, stable, floor):
    """Index of the top of the run of points from the curve's best upwards
    that are stable and trained (`means` at or above `floor`, chance plus
    `TRAINED_MARGIN`), or None if the best point is not both.

    A point that ran its budget without diverging but scores near chance
    ends the run: it did not train there, so it is no evidence of stability.
    """
    if np.all(np.isnan(means)):
        return None

    def good(i):
        return bool(stable[i]) and means[i] >= floor  # NaN (unknown) is not

    top = int(np.nanargmax(means))
    if not good(top):
        return None
    while top < len(stable) - 1 and good(top + 1):
        top += 1
    return top


def sensitivity(means, reference):
    """Mean gap to `reference` over the curve (missing points left out)."""
    return float(nanmean(reference - means)) if reference == reference else math.nan
