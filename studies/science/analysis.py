"""Sensitivity numbers, with intervals, from a study's results (plain rows, no Keras).

Scores: accuracy for classification, R² (1 - MSE / the constant
predictor's MSE) for regression (`studies.science.tasks`); below, "accuracy" stands
for either, and the summary's keys use the task's metric (`best_val_r2`,
...). Tolerances and margins are in points of that score.

A cell counts through `studies.science.outcomes`: its final validation accuracy if it
trained, chance if it diverged or errored, unknown (NaN) if it has no record
yet. A *point* is one combination of the non-seed axes; its accuracy is the
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
- `max_stable_<axis>`: the top of the contiguous run of stable points (every
  seed ok) from the best point upwards, along the curve through the
  variant's best point; a diverged, errored or missing cell ends it. None if
  the best point itself is not stable or the variant did not train.
  `max_stable_<axis>_censored`: it is the grid's largest value.
- `<axis>_sensitivity`: mean over the curve's points of the gap between the
  reference and the point's accuracy (Wortsman et al.'s LR sensitivity, on
  accuracy; failed cells count as chance).
- `best_at_edge`: the best point sits on an edge of a swept axis (the optimum
  may lie outside the grid).
- `seed_std`: mean over points of the std across seeds (ddof 1); only with
  two or more seeds.
- `diverged_fraction`, `errors`, `cells`, `missing`.
- batch-size studies: `batch_noise` (the seed mean over the variant's
  cells of `instruments.batch_noise`), `batch_noise_slope` (per seed, the
  slope of log noise against log batch size: -0.5 for 1/sqrt(batch)), and
  the study-wide `batch_noise` table per variant and batch size.

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
"""

import itertools
import math
import warnings

import numpy as np

from studies.science import outcomes, tasks

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
RESAMPLES = 1000
LEVEL = 0.95
_SEED = 0  # the bootstrap's generator: same results, same intervals


# ---------------------------------------------------------------- the grid


def point_axes(axes):
    """The non-seed axes other than the variant, in grid order."""
    return [n for n in axes if n not in ("variant", "seed")]


def swept_axes(axes):
    """Numeric axes with more than one value: the ones ranges are measured on."""
    return [
        name
        for name in point_axes(axes)
        if len(axes[name]) > 1
        and all(isinstance(v, int | float) and v > 0 for v in axes[name])
    ]


def points(axes):
    """Every point (tuple of non-seed axis values), in grid order."""
    return list(itertools.product(*(axes[n] for n in point_axes(axes))))


def grid(axes, rows, key="final_val_accuracy", chance=0.0):
    """Per-cell scores and stability as arrays `[variant, point, seed]`.

    Returns:
        `(scores, stable)`: scores through `outcomes.score` (NaN where the
        cell is missing), and whether each cell is stable (False if missing).
    """
    names = point_axes(axes)
    index = {(r["variant"], tuple(r[n] for n in names), r["seed"]): r for r in rows}
    shape = (len(axes["variant"]), len(points(axes)), len(axes["seed"]))
    scores, stable = np.full(shape, np.nan), np.zeros(shape, bool)
    for (v, variant), (p, point), (s, seed) in itertools.product(
        enumerate(axes["variant"]), enumerate(points(axes)), enumerate(axes["seed"])
    ):
        row = index.get((variant, point, seed))
        scores[v, p, s] = outcomes.score(row, chance, key)
        stable[v, p, s] = outcomes.stable(row)
    return scores, stable


def _nanmean(values, axis=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        return np.nanmean(values, axis=axis)


def _along(axes, values, along):
    """Per-point `values` as curves along `along`: `(curves, xs, wheres)`.

    `curves` has one row per combination of the other point axes, columns
    sorted by increasing `along`.
    """
    names = point_axes(axes)
    shaped = np.asarray(values).reshape([len(axes[n]) for n in names])
    k = names.index(along)
    order = np.argsort(axes[along])
    curves = np.moveaxis(shaped, k, -1)[..., order].reshape(-1, len(order))
    others = [n for n in names if n != along]
    wheres = [
        dict(zip(others, combo, strict=True))
        for combo in itertools.product(*(axes[n] for n in others))
    ]
    return curves, np.asarray(axes[along], float)[order], wheres


# ------------------------------------------------------ metrics on a curve


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
    return 0.0 if run is None else float(np.log10(xs[run[1]]) - np.log10(xs[run[0]]))


def max_stable_index(means, stable):
    """Index of the top of the stable run from the curve's best upwards, or None."""
    if np.all(np.isnan(means)):
        return None
    top = int(np.nanargmax(means))
    if not stable[top]:
        return None
    while top < len(stable) - 1 and stable[top + 1]:
        top += 1
    return top


def sensitivity(means, reference):
    """Mean gap to `reference` over the curve (missing points left out)."""
    return float(_nanmean(reference - means)) if reference == reference else math.nan


# --------------------------------------------------------- per variant


def _metrics(
    axes, scores, stable, test, chance, extras=None, untrained=(), metric="accuracy"
):
    """The headline numbers of every variant from one (resampled) grid.

    Args:
        scores, stable, test: `[variant, point, seed]` arrays.
        extras: `{name: [variant, seed] array}` of per-seed extra numbers,
            averaged over the seeds given.
        untrained: Variants to treat as not trained whatever their margin
            (their interval reaches chance).
        metric: The score's name (`accuracy`, or `r2` for regression).

    Returns:
        `{variant: {name: number}}` (the numbers that get intervals) and,
        for the point estimate, the details (ranges, best point, flags).
    """
    means = _nanmean(scores, axis=2)
    point_stable = stable.all(axis=2)
    test_means = _nanmean(test, axis=2)
    reference = float(np.nanmax(means)) if not np.all(np.isnan(means)) else math.nan
    numbers, details = {}, {}
    for v, variant in enumerate(axes["variant"]):
        m = means[v]
        if np.all(np.isnan(m)):
            numbers[variant], details[variant] = {}, {}
            continue
        best = int(np.nanargmax(m))
        trained = bool(m[best] - chance >= TRAINED_MARGIN) and variant not in untrained
        out = {
            f"best_val_{metric}": float(m[best]),
            f"test_{metric}": test_means[v][best],
        }
        for name, values in (extras or {}).items():
            out[name] = float(_nanmean(values[v]))
        info = {"best": best, "trained": trained, "reference": reference}
        for along in swept_axes(axes):
            curves, xs, wheres = _along(axes, m, along)
            stables, _, _ = _along(axes, point_stable[v], along)
            for template, floor in RANGES.items():
                runs = [
                    usable_run(c, floor(reference, chance)) if trained else None
                    for c in curves
                ]
                name = template.format(a=along)
                out[name] = float(np.mean([decades(xs, r) for r in runs]))
                info[name] = (xs, wheres, runs)
            # on the curve through the variant's best point
            marker = np.zeros(len(m))
            marker[best] = 1
            on_best = int(np.argmax(_along(axes, marker, along)[0].max(axis=1)))
            top = max_stable_index(curves[on_best], stables[on_best])
            info[f"max_stable_{along}"] = (
                None if not trained or top is None else xs[top]
            )
            info[f"grid_top_{along}"] = xs[-1]
            out[f"{along}_sensitivity"] = float(
                np.mean([sensitivity(c, reference) for c in curves])
            )
        numbers[variant], details[variant] = out, info
    return numbers, details


def _bootstrap(axes, scores, stable, test, chance, extras, names, metric):
    """`{variant: {name: samples}}` of the headline numbers over seed resamples.

    Every variant gets a sample (NaN where a resample leaves it without a
    finished cell) for every name in `names` (`{variant: names}`), so the
    samples of two variants stay paired resample by resample.
    """
    n = scores.shape[2]
    rng = np.random.default_rng(_SEED)
    samples = {v: {name: [] for name in names[v]} for v in names}
    for _ in range(RESAMPLES):
        idx = rng.integers(0, n, n)
        numbers, _ = _metrics(
            axes,
            scores[..., idx],
            stable[..., idx],
            test[..., idx],
            chance,
            {name: values[:, idx] for name, values in extras.items()},
            metric=metric,
        )
        for variant, wanted in names.items():
            for name in wanted:
                samples[variant][name].append(numbers[variant].get(name, math.nan))
    return {
        v: {k: np.asarray(s, float) for k, s in d.items()} for v, d in samples.items()
    }


def interval(samples):
    """The central `LEVEL` percentile interval of bootstrap samples, or None."""
    samples = np.asarray(samples, float)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return [float(low), float(high)]


def variant_summary(axes, rows, variant, chance, scores, numbers, details, samples):
    """The summary of one variant (see the module docstring).

    Args:
        scores: The variant's `[point, seed]` scores.
    """
    own = [r for r in rows if r["variant"] == variant]
    states = [outcomes.status(r) for r in own]
    summary = {
        "cells": len(own),
        "missing": len(points(axes)) * len(axes["seed"]) - len(own),
        "errors": states.count(outcomes.ERROR),
        "diverged_fraction": (
            states.count(outcomes.DIVERGED) / len(own) if own else math.nan
        ),
    }
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
    summary["seed_std"] = _seed_std(scores)
    if samples:
        summary["intervals"] = {
            name: interval(values) for name, values in samples[variant].items()
        }
    return summary


def _seed_std(per_point):
    """Mean over points with two or more finished seeds of the std across seeds."""
    finished = np.sum(np.isfinite(per_point), axis=1) >= 2
    if not finished.any():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.mean(np.nanstd(per_point[finished], axis=1, ddof=1)))


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
            diff = _finite_or_none(value - numbers[baseline][name])
            paired = (
                interval(samples[variant][name] - samples[baseline][name])
                if samples
                else None
            )
            entry[name] = {"value": diff, "interval": paired}
        result[variant] = entry
    return result


# ----------------------------------------------------- extra metric groups


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


def _generalization(chance, metric):
    def train(row):
        return outcomes.score(row, chance, f"final_train_{metric}")

    def gap(row):
        # a failed cell scores chance on both sets: a gap of 0 that would
        # look like perfect generalization, so it is left out (its failure
        # shows in diverged_fraction and errors)
        if not outcomes.stable(row):
            return None
        return train(row) - outcomes.score(row, chance, f"final_val_{metric}")

    return {f"final_train_{metric}": train, "generalization_gap": gap}


def _train_accuracy(chance, metric):
    def last(row):
        if not outcomes.stable(row) or metric not in (row.get("curves") or {}):
            return float(chance)
        return float(floats(row["curves"][metric]["train"])[-1])

    return {f"final_train_{metric}": last}


class SeedGroup:
    """An extra number computed from all of one variant's cells of one seed
    (e.g. a slope across batch sizes), not averaged from single cells."""

    def __init__(self, function):
        self.function = function


def _noise_slope(rows):
    """Slope of log(batch noise) against log(batch size): -0.5 for noise that
    shrinks as 1/sqrt(batch); None without two sizes with measurable noise."""
    points = [
        (r["batch_size"], r.get("batch_noise"))
        for r in rows
        if outcomes.stable(r) and "batch_size" in r
    ]
    points = [
        (b, n) for b, n in points if n is not None and math.isfinite(n) and n > 1e-4
    ]
    if len({b for b, _ in points}) < 2:
        return None
    b, n = np.log(np.array(points, float)).T
    return float(np.polyfit(b, n, 1)[0])


def _batch_noise(chance, metric):
    def noise(row):
        value = row.get("batch_noise")
        return None if value is None or not outcomes.stable(row) else float(value)

    return {"batch_noise": noise, "batch_noise_slope": SeedGroup(_noise_slope)}


def _instrument_values():
    """Per-cell numbers read from the instruments' curves (None without them)."""

    def from_curves(section, reduce):
        def value(row):
            curves = row.get("curves") or {}
            return reduce(curves, curves[section]) if curves.get(section) else None

        return value

    return {
        "percentile_drift": from_curves(
            "percentiles", lambda c, p: percentile_drift(p, c["steps_per_epoch"])
        ),
        "mean_loss_range": from_curves(
            "landscape", lambda c, p: _nan_reduce(np.mean, floats(p["loss_range"]))
        ),
        "mean_grad_change": from_curves(
            "landscape",
            lambda c, p: _nan_reduce(np.mean, floats(p["max_grad_change"])),
        ),
        "max_beta_smoothness": from_curves(
            "landscape",
            lambda c, p: _nan_reduce(np.max, floats(p["beta_smoothness"])),
        ),
    }


# name -> function(chance) -> {metric: function(row) -> number or None}
EXTRA_METRICS = {
    "generalization": _generalization,
    "train_accuracy": _train_accuracy,
    "batch_noise": _batch_noise,
}


def _extras(metric_groups, axes, rows, chance, metric="accuracy"):
    """`{name: [variant, seed] array}` of the study's extra numbers."""
    values = {}
    for group in metric_groups:
        values.update(EXTRA_METRICS[group](chance, metric))
    values.update(_instrument_values())
    arrays = {
        name: per_seed_group(axes, rows, value.function)
        if isinstance(value, SeedGroup)
        else per_seed(axes, rows, value)
        for name, value in values.items()
    }
    return {name: a for name, a in arrays.items() if np.isfinite(a).any()}


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


# ------------------------------------------------------- instrument curves


def percentile_drift(curve, steps_per_epoch):
    """Mean |change| of the percentiles between readings, after the first epoch."""
    steps = np.asarray(curve["step"], float)
    keep = steps >= steps_per_epoch
    changes = [
        np.abs(np.diff(floats(curve[key])[keep])) for key in percentile_keys(curve)
    ]
    changes = np.concatenate(changes) if changes else np.array([])
    return _nan_reduce(np.mean, changes)


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
        [_nan_reduce(np.mean, np.array(by_step[s])) for s in steps]
    )


def curves(axes, rows, variant, along, chance, key="final_val_accuracy"):
    """Seed-mean score along `along` for plots, one curve per other-axes value.

    Returns:
        A list of `(where, xs, means, stds, any_failed)`, with `xs` ascending;
        `stds` is NaN with one seed.
    """
    scores, stable = grid(axes, rows, key, chance=chance)
    v = axes["variant"].index(variant)
    means = _nanmean(scores[v], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stds = (
            np.nanstd(scores[v], axis=1, ddof=1)
            if scores.shape[2] > 1
            else (np.full(means.shape, np.nan))
        )
    finished = np.isfinite(scores[v])
    failed = (finished & ~stable[v]).any(axis=1)
    m, xs, wheres = _along(axes, means, along)
    s, _, _ = _along(axes, stds, along)
    f, _, _ = _along(axes, failed, along)
    return [
        (where, xs, m[i], s[i], f[i].astype(bool)) for i, where in enumerate(wheres)
    ]


def floats(values):
    """A curve as floats (a None reading, as JSON null, becomes NaN)."""
    return np.array([math.nan if v is None else v for v in values], float)


def _nan_reduce(reduce, values):
    values = values[np.isfinite(values)]
    return float(reduce(values)) if values.size else math.nan


# ------------------------------------------------------------ the summary


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
    m = task.metric
    test_chance = chance if test_chance is None else test_chance
    scores, stable = grid(axes, rows, task.key("val"), chance)
    test, _ = grid(axes, rows, task.key("test"), test_chance)
    extras = _extras(metrics, axes, rows, chance, m)
    numbers, details = _metrics(axes, scores, stable, test, chance, extras, metric=m)
    seeds = len(axes["seed"])
    samples = {}
    if seeds > 1:
        names = {v: list(numbers[v]) for v in axes["variant"]}
        samples = _bootstrap(axes, scores, stable, test, chance, extras, names, m)
        # "Trained" needs the interval's lower end above chance too.
        untrained = {
            v
            for v in axes["variant"]
            if numbers[v]
            and (interval(samples[v][f"best_val_{m}"]) or [chance])[0] <= chance
        }
        if untrained:
            numbers, details = _metrics(
                axes, scores, stable, test, chance, extras, untrained, m
            )
    variants = {
        variant: _jsonable(
            variant_summary(
                axes, rows, variant, chance, scores[v], numbers, details, samples
            )
        )
        for v, variant in enumerate(axes["variant"])
    }
    references = [d["reference"] for d in details.values() if d]
    summary = {
        "study": spec.study,
        "command": spec.command,
        "task": task.name,
        "metric": m,
        "chance": chance,
        "test_chance": test_chance,
        "cells_finished": len(rows),
        "cells_total": spec.size,
        f"reference_{m}": _finite_or_none(references[0]) if references else None,
        "interval": {
            "method": "percentile bootstrap over seeds, paired across variants",
            "level": LEVEL,
            "resamples": RESAMPLES,
            "seeds": seeds,
        }
        if seeds > 1
        else None,
        "variants": variants,
        "differences": _jsonable(differences(axes, numbers, samples)),
    }
    if "batch_size" in axes and any("batch_noise" in r for r in rows):
        summary["batch_noise"] = {
            v: {str(b): n for b, n in t.items()}
            for v, t in noise_by_batch_size(axes, rows).items()
        }
    return summary


def _finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _finite_or_none(value)
    return value
