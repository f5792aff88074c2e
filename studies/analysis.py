"""Sensitivity numbers from a study's results (plain rows, no Keras).

The accuracy of a cell is its final validation accuracy; a diverged cell
counts as chance (its accuracy is capped at chance), and a cell that raised
an error is left out of the means. Curves are seed means along one axis
(`lr` or `init_scale`), taken separately at each value of the other
non-seed axes (for example each init family) and then averaged.

Per variant:

- `best_val_accuracy`: the best seed-mean accuracy over the grid.
- `seed_std`: the mean over grid points of the std across seeds.
- `diverged_fraction`: the fraction of the variant's cells that diverged.
- `usable_lr_decades_1pt` / `_5pt`: the width, in decades, of the contiguous
  LR range around the best LR whose seed-mean accuracy is within 1 (5)
  accuracy points of the best (0 when only the best LR qualifies, or when
  even the best is within that tolerance of chance; the resolution is the
  grid's spacing).
- `max_stable_lr`: the largest LR with no diverged seed (the smallest such
  value over the other axes, so it is stable everywhere in the grid).
- `lr_sensitivity`: the mean over the LR grid of the gap to the best
  seed-mean accuracy (Wortsman et al.'s LR sensitivity, on accuracy).
- `init_scale_decades_5pt`: the usable width along the init-scale axis.
- `accuracy_spread`: best minus worst seed-mean accuracy over the init grid.
- `final_train_accuracy` and `generalization_gap` (train minus validation
  accuracy, seed mean) for the `noise` study.

From the instruments' curves (the `covariate-shift` and `landscape` studies,
or any study run with `--instruments`), seed means:

- `final_test_accuracy`: the final validation (test) accuracy.
- `percentile_drift`: the mean absolute change of the followed unit's
  15/50/85th input percentiles between consecutive readings, after the first
  epoch.
- `mean_loss_range` / `mean_grad_change`: the loss range and the largest
  gradient change along the gradient, averaged over the probe steps.
- `max_beta_smoothness`: the largest effective beta-smoothness over the
  probe steps (and seeds).
- `final_train_accuracy` (`landscape` study): the accuracy on the training
  set at the end of training, in inference mode.
"""

import itertools
import math

import numpy as np


def accuracy(row, chance):
    """The accuracy a cell counts for: chance if it diverged, NaN on error."""
    if row.get("status") == "error":
        return math.nan
    if row["diverged"]:
        return min(float(row["final_val_accuracy"]), chance)
    return float(row["final_val_accuracy"])


def _points(axes, rows, variant):
    """Rows of one variant grouped by grid point (all axis values but the seed)."""
    names = [n for n in axes if n != "seed"]
    points = {}
    for row in rows:
        if row["variant"] == variant:
            points.setdefault(tuple(row[n] for n in names), []).append(row)
    return names, points


def seed_mean(group, chance):
    values = [accuracy(r, chance) for r in group]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def seed_std(group, chance):
    values = [accuracy(r, chance) for r in group]
    values = [v for v in values if not math.isnan(v)]
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def curves(axes, rows, variant, along, chance):
    """Seed-mean accuracy along `along`, one curve per value of the other axes.

    Returns:
        A list of `(other_values, xs, means, stds, any_diverged)`, with `xs`
        sorted ascending and the arrays aligned with it.
    """
    others = [n for n in axes if n not in ("variant", "seed", along)]
    xs = sorted(axes[along])
    result = []
    for combo in itertools.product(*(axes[n] for n in others)):
        where = dict(zip(others, combo, strict=True))
        means, stds, diverged = [], [], []
        for x in xs:
            group = [
                r
                for r in rows
                if r["variant"] == variant
                and r[along] == x
                and all(r[n] == v for n, v in where.items())
            ]
            means.append(seed_mean(group, chance))
            stds.append(seed_std(group, chance))
            diverged.append(any(r["diverged"] for r in group))
        result.append(
            (
                where,
                np.array(xs, float),
                np.array(means),
                np.array(stds),
                np.array(diverged),
            )
        )
    return result


def usable_decades(xs, means, tolerance, chance=0.0):
    """Width in decades of the contiguous range around the best within `tolerance`.

    A variant whose best is not above chance by more than `tolerance` never
    trained, so it has no usable range (0 decades).
    """
    if np.all(np.isnan(means)):
        return math.nan
    best = int(np.nanargmax(means))
    if means[best] <= chance + tolerance:
        return 0.0
    floor = means[best] - tolerance
    lo = hi = best
    while lo > 0 and means[lo - 1] >= floor:
        lo -= 1
    while hi < len(xs) - 1 and means[hi + 1] >= floor:
        hi += 1
    return float(np.log10(xs[hi]) - np.log10(xs[lo]))


def max_stable(xs, diverged):
    """The largest x with no diverged seed, or None."""
    stable = [x for x, d in zip(xs, diverged, strict=True) if not d]
    return float(max(stable)) if stable else None


def sensitivity(means):
    """Mean gap to the best over the grid (NaN points left out)."""
    if np.all(np.isnan(means)):
        return math.nan
    return float(np.nanmean(np.nanmax(means) - means))


def _mean(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def variant_summary(axes, rows, variant, chance, study):
    """The sensitivity numbers of one variant (see the module docstring)."""
    _, points = _points(axes, rows, variant)
    own = [r for r in rows if r["variant"] == variant]
    point_means = [seed_mean(g, chance) for g in points.values()]
    summary = {
        "cells": len(own),
        "errors": sum(r.get("status") == "error" for r in own),
        "best_val_accuracy": _max(point_means),
        "seed_std": _mean([seed_std(g, chance) for g in points.values()]),
        "diverged_fraction": (
            sum(bool(r["diverged"]) for r in own) / len(own) if own else math.nan
        ),
    }
    if "lr" in axes and len(axes["lr"]) > 1:
        lr_curves = curves(axes, rows, variant, "lr", chance)
        stable = [max_stable(xs, d) for _, xs, _, _, d in lr_curves]
        summary.update(
            usable_lr_decades_1pt=_mean(
                [usable_decades(xs, m, 0.01, chance) for _, xs, m, _, _ in lr_curves]
            ),
            usable_lr_decades_5pt=_mean(
                [usable_decades(xs, m, 0.05, chance) for _, xs, m, _, _ in lr_curves]
            ),
            max_stable_lr=None if None in stable else min(stable),
            lr_sensitivity=_mean([sensitivity(m) for _, _, m, _, _ in lr_curves]),
        )
    if "init_scale" in axes and len(axes["init_scale"]) > 1:
        scale_curves = curves(axes, rows, variant, "init_scale", chance)
        summary.update(
            init_scale_decades_5pt=_mean(
                [usable_decades(xs, m, 0.05, chance) for _, xs, m, _, _ in scale_curves]
            ),
            accuracy_spread=_max(point_means) - _min(point_means),
        )
    summary.update(_instrument_summary(own, chance, study))
    if study == "noise":
        ok = [r for r in own if r.get("status") != "error" and not r["diverged"]]
        summary.update(
            final_train_accuracy=_mean([float(r["final_train_accuracy"]) for r in ok]),
            generalization_gap=_mean(
                [
                    float(r["final_train_accuracy"]) - float(r["final_val_accuracy"])
                    for r in ok
                ]
            ),
        )
    return summary


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


def _instrument_summary(rows, chance, study):
    """The numbers read from the curves of `rows` (one variant)."""
    curves = [r["curves"] for r in rows if r.get("curves")]
    if not curves:
        return {}
    summary = {}
    if study == "covariate-shift":
        summary["final_test_accuracy"] = seed_mean(rows, chance)
    drifts = [
        percentile_drift(c["percentiles"], c["steps_per_epoch"])
        for c in curves
        if "percentiles" in c
    ]
    if drifts:
        summary["percentile_drift"] = _mean(drifts)
    probes = [c["landscape"] for c in curves if "landscape" in c]
    if probes:
        if study == "landscape":
            summary["final_train_accuracy"] = _mean(
                [floats(c["accuracy"]["train"])[-1] for c in curves]
            )
        summary.update(
            mean_loss_range=_mean(
                [_nan_reduce(np.mean, floats(p["loss_range"])) for p in probes]
            ),
            mean_grad_change=_mean(
                [_nan_reduce(np.mean, floats(p["max_grad_change"])) for p in probes]
            ),
            max_beta_smoothness=_max(
                [_nan_reduce(np.max, floats(p["beta_smoothness"])) for p in probes]
            ),
        )
    return summary


def floats(values):
    """A curve as floats (a None reading, as JSON null, becomes NaN)."""
    return np.array([math.nan if v is None else v for v in values], float)


def _nan_reduce(reduce, values):
    values = values[np.isfinite(values)]
    return float(reduce(values)) if values.size else math.nan


def summarize(spec, rows, chance):
    """The `summary.json` content: study, command, and per-variant numbers."""
    return {
        "study": spec.study,
        "command": spec.command,
        "chance": chance,
        "cells_finished": len(rows),
        "cells_total": spec.size,
        "variants": {
            variant: _jsonable(
                variant_summary(spec.axes, rows, variant, chance, spec.study)
            )
            for variant in spec.axes["variant"]
        },
    }


def _max(values):
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else math.nan


def _min(values):
    values = [v for v in values if not math.isnan(v)]
    return min(values) if values else math.nan


def _jsonable(summary):
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v
        for k, v in summary.items()
    }
