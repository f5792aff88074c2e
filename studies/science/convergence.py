"""Steps and seconds to a target validation score (the convergence study).

A cell's validation curve is its `score` instrument's readings
(`curves[metric]`: `step`, `test`), every `probe_every` optimizer steps,
step 0 first and the last step last. From it and the study's step timing
(`timing.json`, `studies.engine.step_timing`), per cell:

- `steps_to_target`: the first reading step whose validation score is at
  least the target; None (*censored*) when no reading reaches it (a
  diverged cell's curve stops where it diverged: censored too). Its
  resolution is `probe_every` steps.
- `seconds_per_step`: the cell's variant and seed in the step timing.
- `seconds_to_target`: `steps_to_target x seconds_per_step`, of the same
  variant and seed.

The target: `--target` if given, else `default_target`: for every variant
that trained, the best of its seed-mean validation curve (the mean over
the seeds at each reading step); the lowest of these minus `TARGET_MARGIN`,
a level every such variant's mean curve reaches.

Censoring rule: a variant's `steps_to_target` and `seconds_to_target` in
the summary are means over the seeds that reached the target, with a
Student t interval over those seeds (its `n` says how many);
`steps_to_target_reached` and `steps_to_target_not_reached` count the seeds
that did and did not, so a censored seed is never silently dropped;
`steps_to_target_median` counts a censored seed as later than every one
that reached (None when half or more are censored). The ratios none/bn and
keras/bn are ratios of those means, with a t interval of the per-seed
ratios paired by seed (seeds where both reached).
"""

import math

import numpy as np

from studies.science.curves import mean_curve
from studies.science.ranges import TRAINED_MARGIN
from studies.science.stats import finite_or_none, floats, t_interval

TARGET_MARGIN = 0.02  # points of the score below the slowest variant's best
NAMES = ("steps_to_target", "seconds_to_target", "seconds_per_step")
RATIOS = (("none", "bn"), ("keras", "bn"))


def first_step(steps, values, target):
    """The first step whose value is at least `target` (None: never)."""
    for step, value in zip(steps, floats(values), strict=True):
        if math.isfinite(value) and value >= target:
            return float(step)
    return None


def validation_curve(row, metric):
    """`(steps, values)` of a cell's validation readings, or None."""
    found = (row.get("curves") or {}).get(metric)
    if not found or not found.get("step"):
        return None
    return found["step"], found["test"]


def best_means(variants, rows, metric):
    """`{variant: the best of its seed-mean validation curve}` (NaN: none)."""
    best = {}
    for variant in variants:
        own = [r for r in rows if r["variant"] == variant]
        _, means = mean_curve(own, metric, "test")
        finite = means[np.isfinite(means)] if means.size else means
        best[variant] = float(finite.max()) if finite.size else math.nan
    return best


def default_target(variants, rows, metric, chance, margin=TARGET_MARGIN):
    """The lowest best seed-mean validation score of the variants that
    trained (at least `TRAINED_MARGIN` above chance) minus `margin`; None
    when none trained."""
    best = best_means(variants, rows, metric)
    trained = [b for b in best.values() if b - chance >= TRAINED_MARGIN]
    return (min(trained) - margin) if trained else None


def annotate(rows, metric, target, timing):
    """Adds `NAMES` and `target` to every row with a validation curve.

    Args:
        rows: The main phase's result rows (changed in place).
        metric: `accuracy` or `r2`.
        target: The target score (None: every cell is censored).
        timing: `{variant: {seed (str): seconds per step}}`.
    """
    for row in rows:
        found = validation_curve(row, metric)
        if found is None:
            continue
        step = None if target is None else first_step(*found, target)
        per_step = (timing.get(row["variant"]) or {}).get(str(row["seed"]))
        row["target"] = target
        row["steps_to_target"] = step
        row["seconds_per_step"] = per_step
        row["seconds_to_target"] = (
            None if step is None or per_step is None else step * per_step
        )
    return rows


def prepare(axes, rows, metric, chance, timing, given=None):
    """Chooses the target and annotates `rows` (`annotate`).

    Args:
        given: The target given (`--target`), or None for the default.

    Returns:
        `{"target", "given", "best"}`: the target, whether it was given,
        and each variant's best seed-mean validation score.
    """
    best = best_means(axes["variant"], rows, metric)
    target = given
    if target is None:
        target = default_target(axes["variant"], rows, metric, chance)
    annotate(rows, metric, target, timing)
    return {"target": target, "given": given is not None, "best": best}


def _per_seed(axes, rows, variant, name):
    """`[seed]` array of `name` (NaN: censored, or no curve)."""
    values = np.full(len(axes["seed"]), math.nan)
    for row in rows:
        if row["variant"] == variant and row.get(name) is not None:
            values[axes["seed"].index(row["seed"])] = row[name]
    return values


def _counts(axes, rows, variant):
    """`(seeds with a curve, seeds that reached, median steps)`."""
    own = [r for r in rows if r["variant"] == variant and "steps_to_target" in r]
    steps = [r["steps_to_target"] for r in own]
    reached = sorted(s for s in steps if s is not None)
    ordered = reached + [math.inf] * (len(steps) - len(reached))
    median = float(np.median(ordered)) if ordered else math.nan
    return len(own), len(reached), finite_or_none(median)


def _ratio(axes, rows, top, bottom, name):
    """`top / bottom` of the seed means of `name`, with the t interval of
    the per-seed ratios (paired by seed)."""
    mine = _per_seed(axes, rows, top, name)
    theirs = _per_seed(axes, rows, bottom, name)
    if not (np.isfinite(mine).any() and np.isfinite(theirs).any()):
        return None
    value = np.nanmean(mine) / np.nanmean(theirs)
    with np.errstate(divide="ignore", invalid="ignore"):
        paired = mine / theirs
    return {"value": finite_or_none(value), "interval": t_interval(paired)}


def section(axes, rows, variants_summary, chosen):
    """The summary's `convergence` section; also adds each variant's counts
    (`steps_to_target_seeds`, `_reached`, `_not_reached`, `_median`) to
    `variants_summary` and None for a name no seed has.

    Args:
        axes: The study's axes.
        rows: The rows `annotate` annotated.
        variants_summary: `summary["variants"]` (changed in place).
        chosen: `prepare`'s answer (the target and how it was chosen).
    """
    per_variant = {}
    for variant in axes["variant"]:
        seeds, reached, median = _counts(axes, rows, variant)
        numbers = variants_summary.setdefault(variant, {})
        for name in NAMES:
            numbers.setdefault(name, None)
        numbers["steps_to_target_seeds"] = seeds
        numbers["steps_to_target_reached"] = reached
        numbers["steps_to_target_not_reached"] = seeds - reached
        numbers["steps_to_target_median"] = median
        per_variant[variant] = {"seeds": seeds, "reached": reached, "median": median}
    ratios = {}
    for top, bottom in RATIOS:
        if top in axes["variant"] and bottom in axes["variant"]:
            ratios[f"{top}/{bottom}"] = {
                "steps": _ratio(axes, rows, top, bottom, "steps_to_target"),
                "seconds": _ratio(axes, rows, top, bottom, "seconds_to_target"),
                "seconds_per_step": _ratio(axes, rows, top, bottom, "seconds_per_step"),
            }
    return {
        "target": finite_or_none(chosen["target"]),
        "target_given": chosen["given"],
        "target_margin": None if chosen["given"] else TARGET_MARGIN,
        "best_seed_mean": {v: finite_or_none(b) for v, b in chosen["best"].items()},
        "variants": per_variant,
        "ratios": ratios,
        "censoring": (
            "means and intervals over the seeds that reached the target; "
            "reached and censored count the seeds; the median counts a "
            "censored seed as later than every one that reached"
        ),
    }
