"""Every variant's headline numbers from one grid, and their bootstrap samples.

The headline numbers are the ones that get intervals: the best point's
score, the test score there, the range widths and sensitivity per swept
axis, and the extra numbers (`studies.science.extras`). The bootstrap
recomputes them on resamples of the seeds, the same resample for every
variant, so two variants' samples stay paired.
"""

import math

import numpy as np

from studies.science.grid import curves_along, swept_axes
from studies.science.ranges import (
    RANGES,
    TRAINED_MARGIN,
    decades,
    max_stable_index,
    sensitivity,
    usable_run,
)
from studies.science.stats import RESAMPLES, nanmean

_SEED = 0  # the bootstrap's generator: same results, same intervals


def metrics(
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
    means = nanmean(scores, axis=2)
    point_stable = stable.all(axis=2)
    test_means = nanmean(test, axis=2)
    reference = float(np.nanmax(means)) if not np.all(np.isnan(means)) else math.nan
    numbers, details = {}, {}
    for v, variant in enumerate(axes["variant"]):
        if np.all(np.isnan(means[v])):
            numbers[variant], details[variant] = {}, {}
            continue
        best = int(np.nanargmax(means[v]))
        trained = (
            bool(means[v][best] - chance >= TRAINED_MARGIN) and variant not in untrained
        )
        out = {
            f"best_val_{metric}": float(means[v][best]),
            f"test_{metric}": test_means[v][best],
        }
        for name, values in (extras or {}).items():
            out[name] = float(nanmean(values[v]))
        info = {"best": best, "trained": trained, "reference": reference}
        for along in swept_axes(axes):
            _axis_metrics(axes, along, means[v], point_stable[v], chance, out, info)
        numbers[variant], details[variant] = out, info
    return numbers, details


def _axis_metrics(axes, along, means, point_stable, chance, out, info):
    """Adds one variant's numbers along one swept axis to `out` and `info`.

    Args:
        means, point_stable: The variant's per-point seed-mean score and
            whether every seed of the point is stable.
        out, info: The variant's headline numbers and details, so far
            (`info` holds its best point, whether it trained, the reference).
    """
    curves, xs, wheres = curves_along(axes, means, along)
    stables, _, _ = curves_along(axes, point_stable, along)
    reference, trained = info["reference"], info["trained"]
    for template, floor in RANGES.items():
        runs = [
            usable_run(c, floor(reference, chance)) if trained else None for c in curves
        ]
        name = template.format(a=along)
        out[name] = float(np.mean([decades(xs, r) for r in runs]))
        info[name] = (xs, wheres, runs)
    # on the curve through the variant's best point
    marker = np.zeros(len(means))
    marker[info["best"]] = 1
    on_best = int(np.argmax(curves_along(axes, marker, along)[0].max(axis=1)))
    top = max_stable_index(curves[on_best], stables[on_best], chance + TRAINED_MARGIN)
    info[f"max_stable_{along}"] = None if not trained or top is None else xs[top]
    info[f"grid_top_{along}"] = xs[-1]
    out[f"{along}_sensitivity"] = float(
        np.mean([sensitivity(c, reference) for c in curves])
    )


def bootstrap(axes, scores, stable, test, chance, extras, names, metric):
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
        numbers, _ = metrics(
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
