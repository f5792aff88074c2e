"""Every variant at its own learning rate: the tuning phase of a study.

A study that holds the learning rate fixed (init, landscape, noise,
batch-size, covariate-shift) would otherwise run every variant at one rate,
the best of one of them: the tuning playbook's unfair comparison (the no-BN
net's best rate, 0.1, is a third to a tenth of BN's). So such a study runs
in two phases, in one folder:

1. *tune*: a short sweep, `phase=tune` cells over variant x `tune_lrs` x
   `tune_seeds` seeds (x batch size in the batch-size study), at the study's
   reference point (init scale 1, the first init family, the median depth:
   `reference_depth`), on the same budget. They are cells like any other:
   recorded, resumable, in `results.csv` with `phase` `tune`.
2. *main*: the study's own axes, each variant (per batch size) at its best
   rate of phase 1 (`tuned_lrs`), recorded with the rate it ran at.

The best rate is the one with the best mean validation score over the
tuning seeds (a failed cell counts as chance, an errored or missing one is
left out; a tie goes to the smaller rate). With `lr_scaling` `linear` (the
batch-size study), the rate is tuned at one reference batch size and scaled
in proportion to the batch (Goyal et al. 2017's linear scaling rule).

A study given one rate (`--lr`, or `--lrs` with one value) runs every
variant at it and has no tuning phase.
"""

import dataclasses
import math

import numpy as np

from studies.science import outcomes
from studies.science.spec import StudySpec

PHASE = "phase"
TUNE = "tune"
MAIN = "main"
SETTINGS = ("tune_lrs", "tune_seeds", "lr_scaling")


def tunes(spec):
    """Whether `spec` (the study's own spec) has a tuning phase."""
    return bool(spec.fixed.get("tune_lrs"))


def is_tuning(spec):
    """Whether `spec` is a tuning phase's spec (`tuning_spec`)."""
    return spec.axes.get(PHASE) == (TUNE,)


def cells_total(spec):
    """The cells of both phases: the tuning phase's and the grid's."""
    phase = tuning_spec(spec)
    return spec.size + (phase.size if phase is not None else 0)


def reference_batch_size(spec):
    """The batch size the linear rule tunes at: the grid's closest to the
    study's own `batch_size` setting (on a log scale)."""
    sizes = spec.axes["batch_size"]
    target = spec.fixed.get("batch_size") or 60
    return min(sizes, key=lambda b: (abs(math.log(b / target)), b))


def reference_depth(spec):
    """The depth the depth study tunes at: the grid's median depth (the
    lower of the middle two), a rate for the middle of the range rather
    than one the deepest nets (which may train at no rate) would pick."""
    depths = sorted(spec.axes["depth"])
    return depths[(len(depths) - 1) // 2]


def tuning_spec(spec):
    """The tuning phase of `spec` as a study of its own, or None.

    Its axes: `phase` (the one value `tune`, so its cell keys never meet
    the main phase's), variant, batch size (the batch-size study: every size,
    or the reference one under the linear rule), `lr` (`tune_lrs`) and seed.
    Every other setting is the study's, at its reference point, but for
    `eval_statistics` `both`, which is `moving` there (the rate is picked on
    the score).
    """
    if not tunes(spec):
        return None
    axes = {PHASE: (TUNE,), "variant": spec.axes["variant"]}
    if "batch_size" in spec.axes:
        linear = spec.fixed.get("lr_scaling") == "linear"
        axes["batch_size"] = (
            (reference_batch_size(spec),) if linear else spec.axes["batch_size"]
        )
    axes["lr"] = tuple(spec.fixed["tune_lrs"])
    axes["seed"] = tuple(range(spec.fixed["tune_seeds"]))
    fixed = {k: v for k, v in spec.fixed.items() if k not in SETTINGS and k != "lr"}
    # the score picks the rate; instruments would only slow the sweep (and
    # keep its cells from training in groups)
    fixed["instruments"] = []
    if fixed.get("eval_statistics") == "both":
        # the (moving) score picks the rate; recomputed scores beside it
        # would only slow the sweep (with `recomputed`, they are the score)
        fixed["eval_statistics"] = "moving"
    if "init_scale" in spec.axes:
        fixed["init_scale"] = 1.0
    if "init" in spec.axes:
        fixed["init"] = spec.axes["init"][0]
    if "depth" in spec.axes:
        fixed["depth"] = reference_depth(spec)
    return StudySpec(study=spec.study, axes=axes, fixed=fixed, command=spec.command)


def tuned_lrs(spec, rows, chance, key="final_val_accuracy"):
    """The best rate per variant (and batch size) from the tuning rows.

    Args:
        spec: The study's own spec.
        rows: The tuning phase's result rows.
        chance: The score of a failed cell.
        key: The validation score (`final_val_accuracy` or `final_val_r2`).

    Returns:
        `(tuned, scores)`: `tuned` maps each variant to its rate (a float),
        or, in the batch-size study, to `{batch size (str): rate}`;
        `scores` maps each variant (and batch size) to `{rate: mean score}`
        (NaN where no tuning cell finished). A variant none of whose tuning
        cells finished keeps the study's fixed `lr`.
    """
    tuning = tuning_spec(spec)
    lrs = tuning.axes["lr"]
    by_size = "batch_size" in tuning.axes
    tuned, scores = {}, {}
    for variant in tuning.axes["variant"]:
        sizes = tuning.axes["batch_size"] if by_size else (None,)
        for size in sizes:
            means = _means(rows, variant, size, lrs, chance, key)
            table = dict(zip(lrs, means, strict=True))
            best = _best(lrs, means, spec.fixed["lr"])
            if by_size:
                scores.setdefault(variant, {})[str(size)] = table
                tuned.setdefault(variant, {})[str(size)] = best
            else:
                scores[variant], tuned[variant] = table, best
    if by_size and spec.fixed.get("lr_scaling") == "linear":
        reference = str(reference_batch_size(spec))
        tuned = {
            v: {
                str(b): _scaled(r[reference], b / int(reference))
                for b in spec.axes["batch_size"]
            }
            for v, r in tuned.items()
        }
    return tuned, scores


def _means(rows, variant, size, lrs, chance, key):
    values = {lr: [] for lr in lrs}
    for row in rows:
        if row["variant"] != variant or (
            size is not None and row["batch_size"] != size
        ):
            continue
        score = outcomes.score(row, chance, key)
        if row["lr"] in values and math.isfinite(score):
            values[row["lr"]].append(score)
    return [float(np.mean(v)) if v else math.nan for v in values.values()]


def _best(lrs, means, fallback):
    """The rate of the best mean (the smaller on a tie), or `fallback`."""
    if all(math.isnan(m) for m in means):
        return float(fallback)
    best = max(m for m in means if not math.isnan(m))
    return float(next(lr for lr, m in zip(lrs, means, strict=True) if m == best))


def _scaled(rate, factor):
    return float(f"{rate * factor:.3g}")


def at_edge(scores):
    """`{variant: bool}`: whether a variant's best tuning rate (at some batch
    size) is the tuning grid's smallest or largest: its best may lie outside
    the grid."""

    def edge(table):
        lrs = list(table)
        means = list(table.values())
        if all(math.isnan(m) for m in means):
            return False
        return _best(lrs, means, lrs[0]) in (min(lrs), max(lrs))

    return {
        v: any(edge(t) for t in table.values())
        if isinstance(next(iter(table.values())), dict)
        else edge(table)
        for v, table in scores.items()
    }


def with_tuned(spec, tuned):
    """The main phase's spec: `spec` whose cells run at `tuned` rates
    (`StudySpec.settings` reads them)."""
    return dataclasses.replace(spec, fixed={**spec.fixed, "tuned_lr": tuned})


def summary(spec, rows, chance, key="final_val_accuracy"):
    """The summary's `tuning` section (None for a study without tuning):
    the grid, the seeds, the mean validation score per variant (and batch
    size) and rate, the rates chosen, which sit on the grid's edge, and the
    depth they were tuned at (the depth study; None elsewhere)."""
    phase = tuning_spec(spec)
    if phase is None:
        return None
    tuned, scores = tuned_lrs(spec, rows, chance, key)
    return {
        "lrs": list(phase.axes["lr"]),
        "seeds": len(phase.axes["seed"]),
        "lr_scaling": spec.fixed.get("lr_scaling", "tuned"),
        "cells_finished": len(rows),
        "cells_total": phase.size,
        "scores": _string_keys(scores),
        "tuned_lr": tuned,
        "at_edge": at_edge(scores),
        "depth": phase.fixed.get("depth") if "depth" in spec.axes else None,
    }


def _string_keys(table):
    """JSON objects have string keys: rates as `0.1`, batch sizes as given."""
    if not isinstance(table, dict):
        return table
    return {
        (f"{k:g}" if isinstance(k, float) else str(k)): _string_keys(v)
        for k, v in table.items()
    }
