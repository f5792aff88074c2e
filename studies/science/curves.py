"""Curves for plots and the instruments' numbers: seed means along an axis or
over training steps, and the percentiles' drift.
"""

import warnings

import numpy as np

from studies.science.grid import curves_along, grid
from studies.science.stats import floats, nan_reduce, nanmean

DRIFT_STEPS = 100  # percentile drift is the change per this many optimizer steps


def percentile_drift(curve, steps_per_epoch):
    """Mean |change| of the percentiles per `DRIFT_STEPS` optimizer steps,
    after the first epoch.

    Each pair of consecutive readings gives `|p(t2) - p(t1)| / (t2 - t1)`
    times `DRIFT_STEPS`, so a drift at a steady rate reads the same whether
    the instruments read every 10 or every 50 steps (`probe_every`); the
    mean change between readings, as before, grew with the spacing. A pair
    with a non-finite reading is left out.
    """
    steps = np.asarray(curve["step"], float)
    keep = steps >= steps_per_epoch
    spacing = np.diff(steps[keep])
    rates = [
        np.abs(np.diff(floats(curve[key])[keep])) / spacing * DRIFT_STEPS
        for key in percentile_keys(curve)
    ]
    rates = np.concatenate(rates) if rates else np.array([])
    return nan_reduce(np.mean, rates)


def percentile_keys(curve):
    """The percentile series of a curve (`p15`, `p50`, ...), in increasing order."""

    def value(key):
        try:
            return float(key[1:]) if key.startswith("p") else None
        except ValueError:
            return None

    return sorted((k for k in curve if value(k) is not None), key=value)


def mean_curve(rows, section, key):
    """Seed-mean of one curve: `(steps, means)` over the union of the steps."""
    by_step = {}
    for row in rows:
        curve = (row.get("curves") or {}).get(section)
        if curve:
            for step, value in zip(curve["step"], floats(curve[key]), strict=True):
                by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    return np.array(steps, float), np.array(
        [nan_reduce(np.mean, np.array(by_step[s])) for s in steps]
    )


def curves(axes, rows, variant, along, chance, key="final_val_accuracy"):
    """Seed-mean score along `along` for plots, one curve per other-axes value.

    Returns:
        A list of `(where, xs, means, stds, any_failed)`, with `xs` ascending;
        `stds` is NaN with one seed.
    """
    scores, stable = grid(axes, rows, key, chance=chance)
    v = axes["variant"].index(variant)
    means = nanmean(scores[v], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stds = (
            np.nanstd(scores[v], axis=1, ddof=1)
            if scores.shape[2] > 1
            else (np.full(means.shape, np.nan))
        )
    finished = np.isfinite(scores[v])
    failed = (finished & ~stable[v]).any(axis=1)
    m, xs, wheres = curves_along(axes, means, along)
    s, _, _ = curves_along(axes, stds, along)
    f, _, _ = curves_along(axes, failed, along)
    return [
        (where, xs, m[i], s[i], f[i].astype(bool)) for i, where in enumerate(wheres)
    ]
