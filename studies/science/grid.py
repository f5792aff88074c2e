"""A study's grid as arrays: points, swept axes, per-cell scores, curves.

A *point* is one combination of the non-seed axes other than the variant;
a *swept* axis is a numeric axis with more than one value, the axes ranges
are measured on. Scores come through `studies.science.outcomes`, so a
failed cell counts as chance and a missing one as NaN.
"""

import itertools

import numpy as np

from studies.science import outcomes


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


def curves_along(axes, values, along):
    """Per-point `values` as curves along `along`: `(curves, xs, wheres)`.

    `curves` has one row per combination of the other point axes, columns
    sorted by increasing `along`; `wheres` names each row's other-axes values.
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
