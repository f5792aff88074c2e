"""Gradient norms at initialization, and how each depth trains (the depth study).

Each cell records `init_grad_norms`: the L2 norm of the loss gradient with
respect to each hidden layer's kernel, input side first, at initialization,
on one fixed training batch of the cell's batch size, in training mode
(`studies.engine.instruments.init_grad_norms`). From them, per variant and
depth:

- `init_grad_norms`: the seed mean of each layer's norm (input side first).
- `init_grad_growth`: the factor by which the norm grows per layer towards
  the input, `exp(-slope)` of the least-squares line through
  `log ||g_l||` against the layer index `l` (`growth`), per seed, then its
  seed mean with a Student t interval. Mean-field theory predicts
  `PREDICTED_GROWTH` = pi / (pi - 1) ~ 1.47 for a ReLU net with BN and no
  skips at large batch (Yang et al. 2019); about 1 means no explosion.

And whether and how well each depth trains (`depth_accuracy`): the seed
mean of the final and of the best validation score (a diverged cell
counts as chance, an errored one is left out), each with its t interval,
and `trained`: the seed mean at least `TRAINED_MARGIN` above chance and,
with three or more seeds, the interval's lower end above chance (the rule
the analysis uses for a variant's best point). `deepest_trained` is each
variant's deepest depth that trained.
"""

import math

import numpy as np

from studies.science import outcomes
from studies.science.ranges import TRAINED_MARGIN
from studies.science.stats import (
    MIN_SEEDS,
    bounds,
    finite_or_none,
    jsonable,
    nanmean,
    t_interval,
)

PREDICTED_GROWTH = math.pi / (math.pi - 1)  # Yang et al. 2019, ReLU, large batch
PREDICTION = (
    "gradient norm growth per layer towards the input at initialization, "
    "pi/(pi-1) ~ 1.47 for a ReLU net with BN and no skip connections at large "
    "batch (Yang et al. 2019, mean-field theory)"
)


def growth(norms):
    """The per-layer growth of `norms` (input side first) towards the input:
    `exp(-slope)` of `log norm` against the layer index; None with fewer
    than two layers or a norm that is not positive and finite."""
    values = np.asarray(norms if norms is not None else [], float)
    if values.size < 2 or not np.all(np.isfinite(values) & (values > 0)):
        return None
    slope = np.polyfit(np.arange(values.size), np.log(values), 1)[0]
    return float(math.exp(-slope))


def _own(rows, variant, depth):
    return [r for r in rows if r["variant"] == variant and r.get("depth") == depth]


def norms_at(rows, variant, depth):
    """`(seed-mean norms per layer, [per-seed growth])` of one variant and
    depth (None and [] without records of the norms)."""
    found = [r.get("init_grad_norms") for r in _own(rows, variant, depth)]
    found = [n for n in found if n]
    if not found or len({len(n) for n in found}) != 1:
        return None, []
    per_layer = nanmean(np.array(found, float), axis=0)
    seeds = [growth(n) for n in found]
    return [finite_or_none(v) for v in per_layer], [g for g in seeds if g is not None]


def trained(values, chance):
    """The analysis's rule: the seed mean at least `TRAINED_MARGIN` above
    chance and, with `MIN_SEEDS` or more, the interval's low end above it."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if not values.size or values.mean() - chance < TRAINED_MARGIN:
        return False
    found = bounds(t_interval(values)) if values.size >= MIN_SEEDS else None
    return found is None or found[0] > chance


def accuracy_at(rows, variant, depth, chance, metric="accuracy"):
    """How one variant trains at one depth (see the module docstring)."""
    own = _own(rows, variant, depth)
    final = [outcomes.score(r, chance, f"final_val_{metric}") for r in own]
    best = [outcomes.score(r, chance, f"best_val_{metric}") for r in own]
    final = [v for v in final if math.isfinite(v)]
    best = [v for v in best if math.isfinite(v)]
    within = (0.0, 1.0) if metric == "accuracy" else None
    return {
        "final_val": finite_or_none(np.mean(final)) if final else None,
        "final_val_interval": t_interval(final, within=within),
        "best_val": finite_or_none(np.mean(best)) if best else None,
        "best_val_interval": t_interval(best, within=within),
        "diverged": sum(outcomes.status(r) == outcomes.DIVERGED for r in own),
        "cells": len(own),
        "trained": trained(final, chance),
    }


def add(axes, rows, variants_summary, chance, metric="accuracy"):
    """Adds `init_grad_norms`, `init_grad_growth`, `depth_accuracy` and
    `deepest_trained` to each variant of `variants_summary` (in place);
    returns the summary's study-wide `depth` section."""
    for variant in axes["variant"]:
        numbers = variants_summary.setdefault(variant, {})
        norms, growths, accuracy = {}, {}, {}
        for depth in axes["depth"]:
            per_layer, seeds = norms_at(rows, variant, depth)
            if per_layer is not None:
                norms[str(depth)] = per_layer
            growths[str(depth)] = {
                "value": finite_or_none(np.mean(seeds)) if seeds else None,
                "interval": t_interval(seeds),
            }
            accuracy[str(depth)] = accuracy_at(rows, variant, depth, chance, metric)
        numbers["init_grad_norms"] = norms
        numbers["init_grad_growth"] = jsonable(growths)
        numbers["depth_accuracy"] = jsonable(accuracy)
        deepest = [int(d) for d, a in accuracy.items() if a["trained"]]
        numbers["deepest_trained"] = max(deepest) if deepest else None
    return {
        "depths": list(axes["depth"]),
        "predicted_growth": PREDICTED_GROWTH,
        "prediction": PREDICTION,
        "trained_margin": TRAINED_MARGIN,
        "norms": "input side first; seed means",
    }
