"""Sensitivity numbers, with intervals, from a study's results (plain rows, no Keras).

Scores: accuracy for classification, R² (1 - MSE / the constant
predictor's MSE) for regression (`studies.science.tasks`); below, "accuracy" stands
for either, and the summary's keys use the task's metric (`best_val_r2`,
...). Tolerances and margins are in points of that score.

A cell counts through `studies.science.outcomes`: its final validation accuracy if it
trained, chance if it diverged, unknown (NaN) if it errored (listed and
counted in `errors`) or has no record yet. A *point* is one combination of
the non-seed axes; its accuracy is the mean over its finished seeds.
Selection uses the validation split; the test split is only reported, at
the point selected on validation.

Generic over axes: every numeric axis with more than one value (`lr`,
`init_scale`, ...) is a *swept* axis. Along it, one curve per combination of
the other non-seed axes (e.g. per init family); per-curve numbers are
averaged over the curves. Per variant:

- `trained`: the best point's accuracy is at least `TRAINED_MARGIN` above
  chance and, with three or more seeds, the lower end of its seed
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
  points (every seed ok, the seed mean at least `TRAINED_MARGIN` above
  chance) from the best point upwards, along the curve through the
  variant's best point; a diverged, errored or missing cell or a point that
  does not train ends it. None if the best point itself is not stable or
  the variant did not train.
  `max_stable_<axis>_censored`: it is the grid's largest value.
- `<axis>_sensitivity`: mean over the curve's points of the gap between the
  reference and the point's accuracy (Wortsman et al.'s LR sensitivity, on
  accuracy; diverged cells count as chance, errored and missing ones not).
- `best_at_edge`: the best point sits on an edge of a swept axis (the optimum
  may lie outside the grid).
- `seed_std`: mean over points of the std across seeds (ddof 1); only with
  two or more seeds.
- `diverged_fraction` (of the cells with a result, errors left out),
  `errors`, `cells`, `missing`.
- batch-size studies: `batch_noise_b<size>` (per batch size, the seed mean
  of `instruments.batch_noise`; a mean over sizes would depend on the
  grid), `batch_noise_slope` (per seed, of log noise against log batch
  size: -0.5 for 1/sqrt(batch); Ghost BN's only up to its ghost batch,
  `extras.noise_slope_sizes`), and the study-wide `batch_noise` table and
  `batch_noise_slope_sizes`.
- `eval_statistics` `both` (the score stays the moving statistics' one):
  `recomputed_gap` (`extras`: recomputed - moving validation score, BN
  variants' stable cells), per variant and, in batch-size studies, in the
  study-wide `recomputed_gap` table per batch size (`gap_table`).

Uncertainty: `intervals` holds, for each headline number, an entry with
its `method`, `n` (finished seeds) and `level`. A seed mean (best point's
score, test score, sensitivity, the extras) gets a Student t interval over
its per-seed values (`stats.t_interval`, nominal 95%; its coverage is
measured by `studies.science.coverage`); a range width in decades, which
moves in grid steps, gets the lowest and highest per-seed width
(`seed_range`, no level claimed). With fewer than `MIN_SEEDS` seeds there
are no bounds and the entry says why. `differences` holds every variant
minus `none` with the same kind of interval of the per-seed differences
(paired by seed). The best point is selected on the same seeds, so its
validation score is optimistic; the test score at it is not.
`evaluation_noise` puts next to them the binomial standard error of the
accuracies at the validation and test splits' sizes, which no seed
interval contains (every seed is scored on the same examples), and says
which of the two noises is larger. `<name>_censored` flags a range width
whose run touches the grid's edge on some curve (the true width may be
larger).

Where the numbers are computed: `grid` (the grid as arrays), `ranges` (the
numbers on one curve), `headline` (every variant's numbers, overall and per
seed), `extras` (the extra metric groups), `curves` (curves for plots
and the instruments' numbers), `stats` (intervals and NaN-aware helpers).
This module assembles `summary.json` from them and re-exports the names the
report, the plots and `findings` read.
"""

import math

from studies.science import extras as extra_metrics
from studies.science import headline, outcomes, tasks
from studies.science.curves import (
    curves,
    mean_curve,
    percentile_drift,
    percentile_keys,
)
from studies.science.extras import EXTRA_METRICS, extras, noise_by_batch_size
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
    MIN_SEEDS,
    SPREAD_METHOD,
    T_METHOD,
    binomial_se,
    bounds,
    finite_or_none,
    floats,
    jsonable,
    seed_range,
    seed_std,
    standard_error,
    t_interval,
)

__all__ = [
    "EXTRA_METRICS",
    "LEVEL",
    "MIN_SEEDS",
    "TOLERANCES",
    "TRAINED_MARGIN",
    "curves",
    "decades",
    "differences",
    "floats",
    "interval_of",
    "mean_curve",
    "noise_by_batch_size",
    "percentile_drift",
    "percentile_keys",
    "summarize",
    "swept_axes",
    "usable_run",
    "variant_summary",
]


def summarize(spec, rows, chance, test_chance=None, metrics=(), sizes=None):
    """The `summary.json` content: study, command, per-variant numbers, differences.

    Args:
        spec: The `StudySpec`.
        rows: The result rows (`results.rows`).
        chance: The score of a failed cell on the validation split
            (majority-class accuracy; R² 0 for regression).
        test_chance: The same on the test split (defaults to `chance`).
        metrics: The study's extra metric groups (`EXTRA_METRICS` names;
            `recomputed` is added with `eval_statistics` `both`).
        sizes: `{"val": examples, "test": examples}` of the evaluation
            splits, for their binomial noise (None: not reported).
    """
    axes = spec.axes
    task = tasks.of(spec)
    test_chance = chance if test_chance is None else test_chance
    both = spec.fixed.get("eval_statistics") == "both"
    metrics = (*metrics, "recomputed") if both else tuple(metrics)
    scores, stable = grid(axes, rows, task.key("val"), chance)
    test, _ = grid(axes, rows, task.key("test"), test_chance)
    extra = extras(metrics, axes, rows, chance, task.metric, spec.fixed)
    grids = (scores, stable, test, extra)
    numbers, details, seeds = _numbers(axes, grids, chance, task.metric)
    variants = {
        variant: jsonable(
            variant_summary(
                axes, rows, variant, chance, scores[v], numbers, details, seeds
            )
        )
        for v, variant in enumerate(axes["variant"])
    }
    if task.metric == "accuracy":
        for variant in variants.values():
            _add_evaluation_noise(variant, sizes)
    references = [d["reference"] for d in details.values() if d]
    summary = {
        **_header(spec, task, chance, test_chance, rows),
        f"reference_{task.metric}": (
            finite_or_none(references[0]) if references else None
        ),
        "interval": _interval_method(len(axes["seed"])),
        "evaluation_sizes": sizes,
        "variants": variants,
        "differences": jsonable(differences(axes, numbers, seeds)),
    }
    summary.update(extra_metrics.noise_tables(axes, rows, spec.fixed))
    if both and "batch_size" in axes:
        summary.update(extra_metrics.gap_table(axes, rows, task.metric))
    return summary


def _numbers(axes, grids, chance, m):
    """`(numbers, details, seeds)`: the headline numbers, their details, and
    their per-seed values (`headline.seed_values`).

    A variant whose best point's interval does not clear chance is not
    trained, in its numbers and in its per-seed values alike.

    Args:
        grids: `(scores, stable, test, extras)` of the whole study.
        m: The score's name (`accuracy` or `r2`).
    """
    scores, stable, test, extra = grids
    numbers, details = headline.metrics(
        axes, scores, stable, test, chance, extra, metric=m
    )
    seeds = headline.seed_values(axes, grids, chance, details, m)
    # "Trained" needs the interval's lower end above chance too.
    untrained = set()
    for variant in axes["variant"]:
        found = bounds(t_interval(seeds[variant].get(f"best_val_{m}", ())))
        if numbers[variant] and found is not None and found[0] <= chance:
            untrained.add(variant)
    if untrained:
        numbers, details = headline.metrics(
            axes, scores, stable, test, chance, extra, untrained, m
        )
        seeds = headline.seed_values(axes, grids, chance, details, m)
    return numbers, details, seeds


def interval_of(name, values, paired=False):
    """The interval entry of headline number `name` from its per-seed values
    (of a difference, if `paired`): Student t for a seed mean, truncated to
    what an accuracy can be; the seed range for a range width (a number on
    the grid's resolution, which no t interval describes)."""
    if "_decades" in name:
        return seed_range(values)
    within = ((-1.0, 1.0) if paired else (0.0, 1.0)) if "accuracy" in name else None
    return t_interval(values, within=within)


def _add_evaluation_noise(variant, sizes):
    """The binomial standard error of the variant's accuracies on the
    validation and test splits (`val`, `test`), and which is larger at the
    test split: it or the seeds' standard error of the test accuracy
    (`dominant`). The seeds' interval is about training randomness on this
    split; the binomial one about the split itself (another sample of the
    same size from the same distribution)."""
    if not sizes or "best_val_accuracy" not in variant:
        return
    noise = {
        split: binomial_se(variant.get(key), sizes.get(split))
        for split, key in (("val", "best_val_accuracy"), ("test", "test_accuracy"))
    }
    seed_se = noise["seed_se_test"] = variant.get("test_seed_se")
    noise["dominant"] = None
    if noise["test"] is not None and seed_se is not None:
        noise["dominant"] = "evaluation set" if noise["test"] > seed_se else "seeds"
    noise.update(val_examples=sizes.get("val"), test_examples=sizes.get("test"))
    variant["evaluation_noise"] = noise


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
        "eval_statistics": spec.fixed.get("eval_statistics", "moving"),
    }


def _interval_method(seeds):
    """How the intervals were computed."""
    return {
        "method": T_METHOD,
        "level": LEVEL,
        "seeds": seeds,
        "min_seeds": MIN_SEEDS,
        "range_widths": SPREAD_METHOD,
        "text": (
            "Student t over seeds for seed means, paired by seed for "
            "differences; range widths in decades: lowest and highest "
            "per-seed width (no level claimed); no interval with fewer "
            f"than {MIN_SEEDS} finished seeds"
        ),
    }


def variant_summary(axes, rows, variant, chance, scores, numbers, details, seeds):
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
    own = seeds.get(variant) or {}
    summary["intervals"] = {
        name: interval_of(name, own[name]) for name in numbers[variant] if name in own
    }
    test = [values for name, values in own.items() if name.startswith("test_")]
    summary["test_seed_se"] = standard_error(test[0]) if test else None
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


def differences(axes, numbers, seeds, baseline="none"):
    """Every variant minus `baseline`, per headline number, with the interval
    of the per-seed differences (paired by seed)."""
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
            mine, theirs = seeds[variant].get(name), seeds[baseline].get(name)
            paired = None if mine is None or theirs is None else mine - theirs
            entry[name] = {
                "value": diff,
                "interval": None
                if paired is None
                else interval_of(name, paired, paired=True),
            }
        result[variant] = entry
    return result
