"""The effective step's part of a report (`studies.science.weight_decay`):
the summary's per-variant `effective_step` and study-wide `weight_decay`
sections, the report's table, and the plot of the curves over training.

It applies to every study whose cells ran the `effective_step` instrument
(the weight-decay study, or any study given `--instruments
effective_step`); `reporting.write` calls it, and every other study passes
through untouched.
"""

import itertools

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from studies.outputs import plots  # noqa: E402
from studies.science import (  # noqa: E402
    analysis,
    findings,
    outcomes,
    tasks,
    weight_decay,
)

PLOT = "weight_decay.png"
# the plot's rows: a curve of `weight_norms.curves`, and its title
PANELS = (
    ("weight_norm", "||W|| (mean over hidden layers)"),
    ("effective_lr", "lr / ||W||^2"),
    ("angular_update", "angle turned in one step (rad)"),
)


def applies(spec):
    return "effective_step" in (spec.fixed.get("instruments") or ())


def add(spec, table, summary):
    """Adds `effective_step` per variant and the `weight_decay` section to
    `summary` (nothing for a study without the instrument)."""
    if not applies(spec):
        return
    summary["weight_decay"] = weight_decay.section(
        spec,
        table,
        summary["variants"],
        (summary["chance"], summary["test_chance"]),
        tasks.of(spec).metric,
    )


def markdown(summary):
    """The report's section: one table row per variant, decay and rate."""
    found = summary.get("weight_decay")
    if not found:
        return []
    metric = summary.get("metric", "accuracy")
    applies_here = (
        ""
        if found["prediction_applies"]
        else " The prediction is for plain SGD at a constant rate, which this "
        "study does not run: read it as a reference only."
    )
    lines = [
        "## Weight decay and the effective step",
        "",
        f"Per hidden layer ({', '.join(found['layers']) or 'none'}), every "
        "`probe_every` steps: the kernel's norm ||W||, the effective rate "
        "lr / ||W||^2 and the angle W turns in one optimizer step. Final: "
        f"the {found['angular_update']}; norm and effective rate are the "
        "window's means. Predicted: the equilibrium angular update "
        f"{found['predicted']} of a scale-invariant layer under plain SGD "
        "with weight decay (Keras's decoupled decay is L2 there). Without "
        "normalization no layer is scale invariant: a baseline. lr wd steps: "
        "weight decay alone would shrink ||W|| by exp(-lr wd steps), so the "
        "equilibrium needs it well above 1. Seed means "
        "over the stable cells, Student t intervals over seeds; the score "
        f"counts a diverged cell at chance.{applies_here}",
        "",
        f"| variant | wd | lr | val {metric} | angular update | sqrt(2 lr wd) | "
        r"ratio | \|\|W\|\| | lr / \|\|W\|\|^2 | angle per step between "
        "readings | lr wd steps | stable seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, numbers in summary["variants"].items():
        for decay, by_lr in (numbers.get(weight_decay.SECTION) or {}).items():
            for lr, entry in by_lr.items():
                lines.append(_row(variant, decay, lr, entry, metric))
    return lines + [""]


def _row(variant, decay, lr, entry, metric):
    def shown(name, fmt):
        return findings.cell(entry, name, fmt)

    return (
        f"| {variant} | {decay} | {lr} | {shown(f'val_{metric}', '{:.3f}')} | "
        f"{shown('angular_update', '{:.4f}')} | "
        f"{findings.number(entry['predicted'], '{:.4f}')} | "
        f"{shown('ratio', '{:.2f}')} | {shown('weight_norm', '{:.2f}')} | "
        f"{shown('effective_lr', '{:.3g}')} | "
        f"{shown('angle_per_step', '{:.4f}')} | "
        f"{findings.number(entry.get('lr_wd_steps'), '{:.2g}')} | "
        f"{entry['seeds']} ({entry['diverged']} diverged) |"
    )


def _own(rows, variant, decay, lr):
    """The stable cells of one variant, decay and rate."""
    return [
        r
        for r in rows
        if r["variant"] == variant
        and float(r.get("weight_decay", 0.0)) == decay
        and float(r["lr"]) == lr
        and outcomes.stable(r)
    ]


def plot(axes, rows, chance, folder, task=None):
    """Per variant (columns): ||W||, lr / ||W||^2 and the one-step angle
    against steps (log scales), seed means of the layer means, one colour
    per weight decay and one dash per rate, sqrt(2 lr wd) dotted."""
    variants = axes["variant"]
    decays = sorted({float(r.get("weight_decay", 0.0)) for r in rows})
    lrs = sorted({float(r["lr"]) for r in rows})
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.85, max(len(decays), 1)))
    fig, grid = plt.subplots(
        len(PANELS), len(variants), figsize=(5 * len(variants), 10), squeeze=False
    )
    for column, variant in enumerate(variants):
        for (d, decay), (k, lr) in itertools.product(enumerate(decays), enumerate(lrs)):
            own = _own(rows, variant, decay, lr)
            style = dict(color=colours[d], ls=("-", "--", "-.", ":")[k % 4], lw=1.2)
            for ax, (name, _) in zip(grid[:, column], PANELS, strict=True):
                steps, means = analysis.mean_curve(own, weight_decay.SECTION, name)
                ax.plot(steps, means, label=f"wd {decay:g}, lr {lr:g}", **style)
            if decay > 0 and own:
                grid[-1, column].axhline(
                    weight_decay.predicted(lr, decay), color=colours[d], ls=":", lw=0.9
                )
        for ax, (_, title) in zip(grid[:, column], PANELS, strict=True):
            ax.set_title(f"{variant}: {title}")
            ax.set_yscale("log")
            ax.set_xlabel("training step")
            ax.grid(alpha=0.3, which="both")
    grid[-1, 0].plot([], [], color="grey", ls=":", label="sqrt(2 lr wd)")
    grid[0, 0].legend(fontsize=7)
    grid[-1, 0].legend(fontsize=7)
    return plots.save(fig, folder, PLOT)
