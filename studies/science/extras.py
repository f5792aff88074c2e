"""The extra numbers of a study, per variant and seed (`EXTRA_METRICS`).

Besides the score, a study may summarize the generalization gap, the final
training score, the batch noise at each batch size and its slope across
batch sizes, the gap between the scores with recomputed and with moving
statistics, and the instruments' curve numbers. Each is a seed mean
(`[variant, seed]` arrays), so the bootstrap resamples it with the same seed
indices as the score.
"""

import math

import numpy as np

from studies.science import definitions, outcomes
from studies.science.convergence import NAMES as CONVERGENCE_NAMES
from studies.science.curves import percentile_drift
from studies.science.stats import floats, jsonable, nan_reduce, t_interval


def per_seed(axes, rows, value):
    """`[variant, seed]` array of `value(row)` averaged per seed (NaN where none)."""
    variants = {v: i for i, v in enumerate(axes["variant"])}
    seeds = {s: i for i, s in enumerate(axes["seed"])}
    groups = {}
    for row in rows:
        x = value(row)
        if x is not None and math.isfinite(x) and row["variant"] in variants:
            key = (variants[row["variant"]], seeds[row["seed"]])
            groups.setdefault(key, []).append(x)
    values = np.full((len(variants), len(seeds)), np.nan)
    for (v, s), xs in groups.items():
        values[v, s] = np.mean(xs)
    return values


def per_seed_group(axes, rows, function):
    """`[variant, seed]` array of `function(rows of that variant and seed)`."""
    values = np.full((len(axes["variant"]), len(axes["seed"])), np.nan)
    for v, variant in enumerate(axes["variant"]):
        for s, seed in enumerate(axes["seed"]):
            own = [r for r in rows if r["variant"] == variant and r["seed"] == seed]
            result = function(own) if own else None
            if result is not None and math.isfinite(result):
                values[v, s] = result
    return values


class SeedGroup:
    """An extra number computed from all of one variant's cells of one seed
    (e.g. a slope across batch sizes), not averaged from single cells."""

    def __init__(self, function):
        self.function = function


def _generalization(chance, metric, axes, fixed):
    def train(row):
        return outcomes.score(row, chance, f"final_train_{metric}")

    def gap(row):
        # a diverged cell scores chance on both sets: a gap of 0 that would
        # look like perfect generalization, so it is left out (its failure
        # shows in diverged_fraction); an errored one has no scores at all
        if not outcomes.stable(row):
            return None
        return train(row) - outcomes.score(row, chance, f"final_val_{metric}")

    return {f"final_train_{metric}": train, "generalization_gap": gap}


def _train_accuracy(chance, metric, axes, fixed):
    def last(row):
        if outcomes.status(row) == outcomes.ERROR:
            return None  # unknown, as in the score
        if not outcomes.stable(row) or metric not in (row.get("curves") or {}):
            return float(chance)
        return float(floats(row["curves"][metric]["train"])[-1])

    return {f"final_train_{metric}": last}


# variant -> the fixed setting that is its ghost batch (its normalization
# groups are that size whatever the batch; the variants' registry,
# `studies.inputs.variants`, is a layer above and cannot be asked)
GHOST_BATCH = {"ghost-bn": "virtual_batch_size"}


def ghost_batch(variant, fixed):
    """The ghost batch size of `variant` under the study's `fixed` settings,
    or None for a variant that normalizes over the whole batch."""
    setting = GHOST_BATCH.get(variant)
    if setting is None:
        return None
    return fixed.get(setting, definitions.COMMON[setting])


def noise_slope_sizes(variant, sizes, fixed):
    """The batch sizes `variant`'s noise slope is fitted over: all of them,
    or for Ghost BN those up to its ghost batch (above it the noise is that of
    the ghost batch, flat, so one line through both parts fits neither)."""
    ghost = ghost_batch(variant, fixed)
    return [b for b in sorted(sizes) if ghost is None or b <= ghost]


def _noise_slope(rows, fixed):
    """Slope of log(batch noise) against log(batch size) over the variant's
    `noise_slope_sizes`: -0.5 for noise that shrinks as 1/sqrt(batch); None
    without two such sizes with measurable noise."""
    if not rows:
        return None
    sizes = noise_slope_sizes(
        rows[0]["variant"], {r["batch_size"] for r in rows if "batch_size" in r}, fixed
    )
    points = [
        (r["batch_size"], r.get("batch_noise"))
        for r in rows
        if outcomes.stable(r) and r.get("batch_size") in sizes
    ]
    points = [
        (b, n) for b, n in points if n is not None and math.isfinite(n) and n > 1e-4
    ]
    if len({b for b, _ in points}) < 2:
        return None
    b, n = np.log(np.array(points, float)).T
    return float(np.polyfit(b, n, 1)[0])


def _batch_noise(chance, metric, axes, fixed):
    """`batch_noise_b<size>` per batch size (a mean over sizes would depend
    on the grid) and `batch_noise_slope`."""

    def at(size):
        def noise(row):
            value = row.get("batch_noise")
            if value is None or not outcomes.stable(row):
                return None
            return float(value) if row.get("batch_size", size) == size else None

        return noise

    sizes = axes.get("batch_size") or (fixed.get("batch_size"),)
    numbers = {f"batch_noise_b{b}": at(b) for b in sorted(sizes)}
    numbers["batch_noise_slope"] = SeedGroup(lambda rows: _noise_slope(rows, fixed))
    return numbers


def _recomputed_gap(chance, metric, *_):
    """`recomputed_gap`: a cell's validation score with statistics recomputed
    over the training split minus its score with the moving statistics
    (`eval_statistics` `both`). Stable cells whose statistics were recomputed
    only: a variant without batch normalization has no moving statistics,
    so no gap (left out, not 0); a diverged cell has chance both ways."""

    def gap(row):
        recomputed = row.get(f"final_val_{metric}_recomputed")
        if not outcomes.stable(row) or row.get("statistics_recomputed") != 1:
            return None
        if recomputed is None or row.get(f"final_val_{metric}") is None:
            return None
        return float(recomputed) - float(row[f"final_val_{metric}"])

    return {"recomputed_gap": gap}


def _instrument_values():
    """Per-cell numbers read from the instruments' curves (None without them).

    Only a stable cell's curves count: a diverged cell's are cut short at
    the step it diverged, and their last readings are the explosion itself,
    which would enter the means as if it were a landscape or a drift.
    """

    def from_curves(section, reduce):
        def value(row):
            curves = row.get("curves") or {}
            if not outcomes.stable(row) or not curves.get(section):
                return None
            return reduce(curves, curves[section])

        return value

    return {
        "percentile_drift": from_curves(
            "percentiles", lambda c, p: percentile_drift(p, c["steps_per_epoch"])
        ),
        "mean_loss_range": from_curves(
            "landscape", lambda c, p: nan_reduce(np.mean, floats(p["loss_range"]))
        ),
        "mean_grad_change": from_curves(
            "landscape",
            lambda c, p: nan_reduce(np.mean, floats(p["max_grad_change"])),
        ),
        "max_beta_smoothness": from_curves(
            "landscape",
            lambda c, p: nan_reduce(np.max, floats(p["beta_smoothness"])),
        ),
    }


def _convergence(chance, metric, *_):
    """The numbers `convergence.annotate` put on each row (None where a
    seed never reached the target: left out of the mean, and counted by
    `convergence.section`)."""

    def read(name):
        return lambda row: row.get(name)

    return {name: read(name) for name in CONVERGENCE_NAMES}


# name -> function(chance, metric, axes, fixed)
#   -> {metric: function(row) -> number or None, or a SeedGroup}
EXTRA_METRICS = {
    "generalization": _generalization,
    "train_accuracy": _train_accuracy,
    "batch_noise": _batch_noise,
    "recomputed": _recomputed_gap,
    "convergence": _convergence,
}


def extras(metric_groups, axes, rows, chance, metric="accuracy", fixed=None):
    """`{name: [variant, seed] array}` of the study's extra numbers.

    Args:
        fixed: The study's fixed settings (`StudySpec.fixed`; e.g. Ghost
            BN's `virtual_batch_size`).
    """
    values = {}
    for group in metric_groups:
        values.update(EXTRA_METRICS[group](chance, metric, axes, fixed or {}))
    values.update(_instrument_values())
    arrays = {
        name: per_seed_group(axes, rows, value.function)
        if isinstance(value, SeedGroup)
        else per_seed(axes, rows, value)
        for name, value in values.items()
    }
    return {name: a for name, a in arrays.items() if np.isfinite(a).any()}


def noise_by_batch_size(axes, rows):
    """`{variant: {batch size: seed-mean batch noise}}` (finite values only)."""
    table = {}
    for variant in axes["variant"]:
        by_size = {}
        for row in rows:
            value = row.get("batch_noise")
            if (
                row["variant"] == variant
                and value is not None
                and outcomes.stable(row)
                and math.isfinite(value)
            ):
                by_size.setdefault(row["batch_size"], []).append(float(value))
        if by_size:
            table[variant] = {b: float(np.mean(v)) for b, v in sorted(by_size.items())}
    return table


def noise_tables(axes, rows, fixed):
    """The summary's study-wide batch-noise keys: `batch_noise` (`{variant:
    {batch size (str): seed-mean noise}}`) and `batch_noise_slope_sizes`
    (`{variant: the sizes its slope is fitted over}`); `{}` without a batch
    size axis or batch noise."""
    if "batch_size" not in axes or not any("batch_noise" in r for r in rows):
        return {}
    table = noise_by_batch_size(axes, rows)
    return {
        "batch_noise": {v: {str(b): n for b, n in t.items()} for v, t in table.items()},
        "batch_noise_slope_sizes": {
            v: noise_slope_sizes(v, axes["batch_size"], fixed) for v in table
        },
    }


def gap_table(axes, rows, metric="accuracy"):
    """The summary's study-wide `recomputed_gap`, `{variant: {batch size:
    seed mean}}`, and `recomputed_gap_intervals`, each one's Student t
    interval over its per-seed values (`stats.t_interval`); batch sizes as
    strings (JSON keys), variants without a gap left out."""
    gap = _recomputed_gap(None, metric)["recomputed_gap"]
    gaps, intervals = {}, {}
    for size in axes["batch_size"]:
        at = per_seed(axes, [r for r in rows if r.get("batch_size") == size], gap)
        for v, variant in enumerate(axes["variant"]):
            values = at[v][np.isfinite(at[v])]
            if values.size:
                gaps.setdefault(variant, {})[str(size)] = float(values.mean())
                intervals.setdefault(variant, {})[str(size)] = t_interval(values)
    return {
        "recomputed_gap": gaps,
        "recomputed_gap_intervals": jsonable(intervals),
    }
