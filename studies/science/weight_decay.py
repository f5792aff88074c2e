"""Weight decay and the effective step (the weight-decay study's numbers).

A cell's `effective_step` curves (`studies.engine.weight_norms`: the hidden
kernels' norm ||W||, lr / ||W||^2 and the angle W turns in one step, each
the mean over the layers) are read over their *final window*, the last
`WINDOW` of the readings (at least one), per cell:

- `angular_update`: the root mean square of the one-step angles in the
  window. The equilibrium is one of squares: with a gradient orthogonal to
  W (a scale-invariant layer), ||W_(t+1)||^2 = (1 - lr wd)^2 ||W_t||^2 +
  lr^2 ||g||^2, so a constant norm needs lr^2 E||g||^2 / ||W||^2 =
  2 lr wd - (lr wd)^2, and the angle's mean square is about 2 lr wd;
- `weight_norm`, `effective_lr`, `angle_per_step`: the window's means.

The prediction is `predicted(lr, wd)` = sqrt(2 lr wd), for plain SGD, where
Keras's decoupled decay (W <- W - lr wd W before the gradient step) is
exactly L2 regularization of strength wd; the exact equilibrium angle,
arccos(1 - lr wd), differs from it by less than lr wd / 12 relative. With
momentum the decay is not carried by the momentum, and another form holds
(`prediction_applies` is False then). Without normalization no layer is
scale invariant, and the numbers are a baseline, not a test.

Per variant, `effective_step` is `{weight decay: {lr: entry}}` (keys as
`f"{value:g}"`): the seed means of the numbers above over the stable cells
(the instruments' rule: a diverged cell's curves end in its explosion),
`ratio` (`angular_update / predicted`, None at wd 0), `lr_wd_steps`
(lr x wd x the steps run: weight decay alone would have shrunk ||W|| by
exp(-lr_wd_steps), so an equilibrium needs it well above 1), the seed-mean
validation and test score over every finished cell (a diverged one at
chance), `seeds` (stable), `diverged`, and `intervals` (Student t over
seeds, `stats.t_interval`).
"""

import math

import numpy as np

from studies.science import outcomes
from studies.science.stats import finite_or_none, floats, jsonable, t_interval

WINDOW = 0.25  # the last quarter of the readings: "final"
NAMES = ("angular_update", "weight_norm", "effective_lr", "angle_per_step")
SECTION = "effective_step"  # the curves' and the per-variant key


def predicted(lr, weight_decay):
    """The equilibrium angular update per step, sqrt(2 lr wd) (radians)."""
    return math.sqrt(2.0 * lr * weight_decay)


def final_numbers(curve, window=WINDOW):
    """`{name: value}` of one cell's curve over its final window (NaN where
    the window has no finite reading)."""
    count = len(curve.get("step") or ())
    start = min(int(math.floor(count * (1.0 - window))), max(count - 1, 0))
    numbers = {}
    for name in NAMES:
        values = floats(curve.get(name) or [])[start:]
        values = values[np.isfinite(values)]
        if not values.size:
            numbers[name] = math.nan
        elif name == "angular_update":
            numbers[name] = float(np.sqrt(np.mean(values**2)))
        else:
            numbers[name] = float(values.mean())
    return numbers


def key(value):
    """A grid value as a summary key (`0.001`, `1`)."""
    return f"{float(value):g}"


def _setting(row, fixed, name):
    return float(row[name] if row.get(name) is not None else fixed.get(name, 0.0))


def entry(own, lr, weight_decay, chances, metric="accuracy"):
    """The summary entry of the cells `own` (one variant, decay and rate);
    `chances`: the score of a failed cell on the validation and test splits."""
    stable = [
        r for r in own if outcomes.stable(r) and (r.get("curves") or {}).get(SECTION)
    ]
    per_seed = {name: [] for name in NAMES}
    for row in stable:
        for name, value in final_numbers(row["curves"][SECTION]).items():
            per_seed[name].append(value)
    finished = [r for r in own if outcomes.status(r) != outcomes.ERROR]
    for split, chance in zip(("val", "test"), chances, strict=True):
        per_seed[f"{split}_{metric}"] = [
            outcomes.score(r, chance, f"final_{split}_{metric}") for r in finished
        ]
    per_seed["lr_wd_steps"] = [
        lr * weight_decay * float(r.get("steps_run") or 0) for r in stable
    ]
    expected = predicted(lr, weight_decay)
    if expected > 0:
        per_seed["ratio"] = [v / expected for v in per_seed["angular_update"]]
    numbers = {
        name: finite_or_none(np.nanmean(values)) if np.isfinite(values).any() else None
        for name, values in ((n, np.asarray(v, float)) for n, v in per_seed.items())
    }
    return {
        "weight_decay": weight_decay,
        "lr": lr,
        "predicted": expected,
        **{name: numbers.get(name) for name in NAMES},
        "ratio": numbers.get("ratio"),
        "lr_wd_steps": numbers.get("lr_wd_steps"),
        **{k: v for k, v in numbers.items() if k.endswith(metric)},
        "seeds": len(stable),
        "diverged": sum(outcomes.status(r) == outcomes.DIVERGED for r in own),
        "intervals": {name: t_interval(v) for name, v in per_seed.items()},
    }


def section(spec, rows, variants_summary, chances, metric="accuracy"):
    """Adds `effective_step` to each variant of `variants_summary`; returns
    the summary's study-wide `weight_decay` section (how it was measured).

    Args:
        spec: The `StudySpec` (its fixed decay and rate where not axes).
        rows: The result rows.
        variants_summary: `summary["variants"]` (changed in place).
        chances: The score of a failed cell on the validation and test
            splits.
        metric: `accuracy` or `r2`.
    """
    fixed = spec.fixed
    for variant in spec.axes["variant"]:
        mine = [r for r in rows if r["variant"] == variant]
        found = {}
        for row in mine:
            point = (_setting(row, fixed, "weight_decay"), _setting(row, fixed, "lr"))
            found.setdefault(point, []).append(row)
        table = {}
        for (decay, lr), own in sorted(found.items()):
            table.setdefault(key(decay), {})[key(lr)] = entry(
                own, lr, decay, chances, metric
            )
        variants_summary.setdefault(variant, {})[SECTION] = jsonable(table)
    layers = next(
        (
            r["curves"][SECTION]["layers"]
            for r in rows
            if SECTION in (r.get("curves") or {})
        ),
        [],
    )
    plain = fixed.get("optimizer") == "sgd" and not fixed.get("momentum")
    return {
        "predicted": "sqrt(2 lr wd)",
        "window": WINDOW,
        "angular_update": "root mean square, over the last quarter of the "
        "readings, of the one-step angle (radians) averaged over the hidden "
        "layers",
        "layers": list(layers),
        "prediction_applies": plain and fixed.get("schedule") == "constant",
    }
