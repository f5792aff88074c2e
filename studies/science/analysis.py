"""Sensitivity numbers, with intervals, from a study's results (plain rows, no Keras).

Scores: accuracy for classification, R² (1 - MSE / the constant
predictor's MSE) for regression (`studies.science.tasks`); below, "accuracy" stands
for either, and the summary's keys use the task's metric (`best_val_r2`,
...). Tolerances and margins are in points of that score.

A cell counts through `studies.science.outcomes`: its final validation accuracy if it
trained, chance if it diverged, unknown (NaN) if it errored or has no record
yet (an error says nothing about the setting; it is listed and counted in
`errors`). A *point* is one combination of the non-seed axes; its accuracy is the
mean over its finished seeds. Selection uses the validation split; the test
split is only reported, at the point selected on validation.

Generic over axes: every numeric axis with more than one value (`lr`,
`init_scale`, ...) is a *swept* axis. Along it, one curve per combination of
the other non-seed axes (e.g. per init family); per-curve numbers are
averaged over the curves. Per variant:

- `trained`: the best point's accuracy is at least `TRAINED_MARGIN` above
  chance and, with two or more seeds, the lower end of its seed bootstrap
  interval is above chance. A variant that did not train gets no usable
  range and no stable range (nothing it does counts as robust).
- `best_val_accuracy`: the best point's accuracy; `best_point`: where it is.
- `test_accuracy`: the test accuracy (seed mean) at that point.
- `reference_accuracy` (study-wide): the best `best_val_accuracy` of any
  variant. Ranges and sensitivity are measured against it, never against a
  variant's own best, so a network that barely trains cannot look robust.
- `usable_<axis>_decades_1pt` / `_5pt`: width, in decades, of the contiguous
  run of points around the curve's best whose accuracy is within 1 (5)
  points of the reference (0 if the curve's best is not; a single point is 0
  too: the resolution is the grid's spacing). `usable_<axis>_ranges_5pt`
  lists each curve's `[low, high]` and whether the grid cuts it off
  (`censored_low` / `censored_high`: the range touches the grid's edge, so
  the true range may be wider).
- `trainable_<axis>_decades` / `trainable_<axis>_ranges`: the same for the
  run of points that train at all (accuracy at least `TRAINED_MARGIN` above
  chance).
- `max_stable_<axis>`: the top of the contiguous run of stable, trained
  points (every seed ok, and the seed-mean accuracy at least
  `TRAINED_MARGIN` above chance) from the best point upwards, along the
  curve through the variant's best point; a diverged, errored or missing
  cell ends it, and so does a point that runs its budget without training
  (BN at LR 10 scoring 0.15 against chance 0.10 is not "stable at 10"). None
  if the best point itself is not stable or the variant did not train.
  `max_stable_<axis>_censored`: it is the grid's largest value.
- `<axis>_sensitivity`: mean over the curve's points of the gap between the
  reference and the point's accuracy (Wortsman et al.'s LR sensitivity, on
  accuracy; diverged cells count as chance, errored and missing ones are
  left out).
- `best_at_edge`: the best point sits on an edge of a swept axis (the optimum
  may lie outside the grid).
- `seed_std`: mean over points of the std across seeds (ddof 1); only with
  two or more seeds.
- `diverged_fraction` (of the cells with a result: errored cells are left
  out), `errors`, `cells`, `missing`.
- batch-size studies: `batch_noise_b<size>` (per batch size, the seed mean
  of `instruments.batch_noise`; no mean over sizes, which would depend on
  the grid), `batch_noise_slope` (per seed, the slope of log noise against
  log batch size: -0.5 for 1/sqrt(batch); for Ghost BN fitted only over the
  sizes up to its ghost batch, `virtual_batch_size`, since above it the
  noise is the ghost batch's), the study-wide `batch_noise` table per
  variant and batch size (seed means) and `batch_noise_slope_sizes` (the
  sizes each variant's slope is fitted over).

Uncertainty: `intervals` holds a 95% percentile bootstrap interval over
seeds (`RESAMPLES` resamples of the seed indices, the same resample for every
variant, so differences are paired by seed; a fixed generator, so the same
results give the same intervals) for each headline number, and
`differences` holds every variant minus `none` with its paired interval.
With fewer than two seeds there are no intervals. The extra numbers
(`EXTRA_METRICS`: the noise study's generalization gap, the instruments'
curve numbers) are seed means, resampled with the same seed indices, so
they get intervals and paired differences too. `<name>_censored` flags a
range width whose run touches the grid's edge on some curve (the true
width may be larger).

Where the numbers are computed: `grid` (the grid as arrays), `ranges` (the
numbers on one curve), `headline` (every variant's numbers and their
bootstrap), `extras` (the extra metric groups), `curves` (curves for plots
and the instruments' numbers), `stats` (intervals and NaN-aware helpers).
This module assembles `summary.json` from them and re-exports the names the
report, the plots and `findings` read.
"""

import math

from studies.science import headline, outcomes, tasks
from studies.science.curves import (
    curves,
    mean_curve,
    percentile_drift,
    percentile_keys,
)
from studies.science.extras import (
    EXTRA_METRICS,
    extras,
    noise_by_batch_size,
    noise_slope_sizes,
)
from studies.science.grid import grid, point_axes, points, swept_axes
from studies.science.ranges import (
    LISTED_RANGES,
    RANGES,
    TOLERANCES,
    TRAINED_MARGIN,
    decades,
    usable_run,
)
from studies.science.stats import (
    LEVEL,
    RESAMPLES,
    finite_or_none,
    floats,
    interval,
    jsonable,
    seed_std,
)

__all__ = [
    "EXTRA_METRICS",
    "LEVEL",
    "RESAMPLES",
    "TOLERANCES",
    "TRAINED_MARGIN",
    "curves",
    "decades",
    "differences",
    "floats",
    "interval",
    "mean_curve",
    "noise_by_batch_size",
    "percentile_drift",
    "percentile_keys",
    "summarize",
    "swept_axes",
    "usable_run",
    "variant_summary",
]


def summarize(spec, rows, chance, test_chance=None, metrics=()):
    """The `summary.json` content: study, command, per-variant numbers, differences.

    Args:
        spec: The `StudySpec`.
        rows: The result rows (`results.rows`).
        chance: The score of a failed cell on the validation split
            (majority-class accuracy; R² 0 for regression).
        test_chance: The same on the test split (defaults to `chance`).
        metrics: The study's extra metric groups (`EXTRA_METRICS` names).
    """
    axes = spec.axes
    task = tasks.of(spec)
    test_chance = chance if test_chance is None else test_chance
    scores, stable = grid(axes, rows, task.key("val"), chance)
    test, _ = grid(axes, rows, task.key("test"), test_chance)
    extra = extras(metrics, axes, rows, chance, task.metric, spec.fixed)
    grids = (scores, stable, test, extra)
    numbers, details, samples = _numbers(axes, grids, chance, task.metric)
    variants = {
        variant: jsonable(
            variant_summary(
                axes, rows, variant, chance, scores[v], numbers, details, samples
            )
        )
        for v, variant in enumerate(axes["variant"])
    }
    references = [d["reference"] for d in details.values() if d]
    summary = {
        **_header(spec, task, chance, test_chance, rows),
        f"reference_{task.metric}": (
            finite_or_none(references[0]) if references else None
        ),
        "interval": _interval_method(len(axes["seed"])),
        "variants": variants,
        "differences": jsonable(differences(axes, numbers, samples)),
    }
    if "batch_size" in axes and any("batch_noise" in r for r in rows):
        table = noise_by_batch_size(axes, rows)
        summary["batch_noise"] = {
            v: {str(b): n for b, n in t.items()} for v, t in table.items()
        }
        summary["batch_noise_slope_sizes"] = {
            v: noise_slope_sizes(v, axes["batch_size"], spec.fixed) for v in table
        }
    return summary


def _numbers(axes, grids, chance, m):
    """`(numbers, details, samples)`: the headline numbers, with their
    bootstrap samples when there are two or more seeds (else `{}`).

    Args:
        grids: `(scores, stable, test, extras)` of the whole study.
        m: The score's name (`accuracy` or `r2`).
    """
    scores, stable, test, extra = grids
    numbers, details = headline.metrics(
        axes, scores, stable, test, chance, extra, metric=m
    )
    if len(axes["seed"]) < 2:
        return numbers, details, {}
    names = {v: list(numbers[v]) for v in axes["variant"]}
    samples = headline.bootstrap(axes, scores, stable, test, chance, extra, names, m)
    # "Trained" needs the interval's lower end above chance too.
    untrained = {
        v
        for v in axes["variant"]
        if numbers[v]
        and (interval(samples[v][f"best_val_{m}"]) or [chance])[0] <= chance
    }
    if untrained:
        numbers, details = headline.metrics(
            axes, scores, stable, test, chance, extra, untrained, m
        )
    return numbers, details, samples


def _header(spec, task, chance, test_chance, rows):
    """The summary's first keys: what was run, on what task, how far it got."""
    return {
        "study": spec.study,
        "command": spec.command,
        "task": task.name,
        "metric": task.metric,
        "chance": chance,
        "test_chance": test_chance,
        "cells_finished": len(rows),
        "cells_total": spec.size,
    }


def _interval_method(seeds):
    """How the intervals were computed (None with fewer than two seeds)."""
    if seeds < 2:
        return None
    return {
        "method": "percentile bootstrap over seeds, paired across variants",
        "level": LEVEL,
        "resamples": RESAMPLES,
        "seeds": seeds,
    }


def variant_summary(axes, rows, variant, chance, scores, numbers, details, samples):
    """The summary of one variant (see the module docstring).

    Args:
        scores: The variant's `[point, seed]` scores.
    """
    summary = _counts(axes, [r for r in rows if r["variant"] == variant])
    info = details.get(variant) or {}
    if not info:
        return summary
    summary["trained"] = info["trained"]
    summary.update(numbers[variant])
    best_point = points(axes)[info["best"]]
    summary["best_point"] = dict(zip(point_axes(axes), best_point, strict=True))
    swept = swept_axes(axes)
    summary["best_at_edge"] = any(
        summary["best_point"][a] in (min(axes[a]), max(axes[a])) for a in swept
    )
    for along in swept:
        summary.update(_axis_summary(axes, along, info))
    summary["seed_std"] = seed_std(scores)
    if samples:
        summary["intervals"] = {
            name: interval(values) for name, values in samples[variant].items()
        }
    return summary


def _counts(axes, own):
    """How many of a variant's cells (`own`, its rows) ran, failed or are missing."""
    states = [outcomes.status(r) for r in own]
    results = [s for s in states if s != outcomes.ERROR]  # errors are unknown
    return {
        "cells": len(own),
        "missing": len(points(axes)) * len(axes["seed"]) - len(own),
        "errors": states.count(outcomes.ERROR),
        "diverged_fraction": (
            states.count(outcomes.DIVERGED) / len(results) if results else math.nan
        ),
    }


def _axis_summary(axes, along, info):
    """A variant's censoring flags, listed ranges and stable top along `along`."""
    summary = {}
    for template in RANGES:
        _, _, runs = info[template.format(a=along)]
        summary[template.format(a=along) + "_censored"] = any(
            run is not None and (run[0] == 0 or run[1] == len(axes[along]) - 1)
            for run in runs
        )
    for metric, listed in LISTED_RANGES.items():
        xs, wheres, runs = info[metric.format(a=along)]
        summary[listed.format(a=along)] = [
            {
                **({"where": where} if where else {}),
                "low": None if run is None else float(xs[run[0]]),
                "high": None if run is None else float(xs[run[1]]),
                "censored_low": run is not None and run[0] == 0,
                "censored_high": run is not None and run[1] == len(xs) - 1,
            }
            for where, run in zip(wheres, runs, strict=True)
        ]
    top = info[f"max_stable_{along}"]
    summary[f"max_stable_{along}"] = None if top is None else float(top)
    summary[f"max_stable_{along}_censored"] = (
        top is not None and top == info[f"grid_top_{along}"]
    )
    return summary


def differences(axes, numbers, samples, baseline="none"):
    """Every variant minus `baseline`, per headline number, paired by seed."""
    if baseline not in numbers or not numbers[baseline]:
        return {}
    result = {}
    for variant in axes["variant"]:
        if variant == baseline or not numbers.get(variant):
            continue
        entry = {}
        for name, value in numbers[variant].items():
            if name not in numbers[baseline]:
                continue
            diff = finite_or_none(value - numbers[baseline][name])
            paired = (
                interval(samples[variant][name] - samples[baseline][name])
                if samples
                else None
            )
            entry[name] = {"value": diff, "interval": paired}
        result[variant] = entry
    return result
