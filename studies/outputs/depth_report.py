"""The depth study's part of a report: the per-layer gradient norms at
initialization and how each depth trains (`studies.science.depth`), as the
summary's numbers, the report's section and its plot (its findings lines are
`findings.depth_lines`; `reporting.write` calls these, and every other study
passes through untouched)."""

import numpy as np

from studies import folder as study_folder
from studies.science import depth, findings, tasks


def applies(spec):
    return "depth" in spec.axes and "init_grad_norms" in spec.fixed["instruments"]


def add(spec, table, summary, chance):
    """Adds each variant's depth numbers and the study-wide `depth` section
    to `summary` (nothing for another study)."""
    if not applies(spec):
        return
    metric = tasks.of(spec).metric
    summary["depth"] = depth.add(spec.axes, table, summary["variants"], chance, metric)


def markdown(summary):
    """The report's section: growth per layer and accuracy per depth."""
    found = summary.get("depth")
    if not found:
        return []
    metric = summary.get("metric", "accuracy")
    depths = [str(d) for d in found["depths"]]
    lines = [
        "## Depth: gradient norms at initialization and training",
        "",
        f"Prediction: {found['prediction']}. Growth per layer: exp(-slope) of "
        "the least-squares line through log ||dL/dW_l|| against the layer "
        "index l (input side first), per seed, then the seed mean with its "
        "Student t interval; measured before any step on one fixed training "
        "batch of the cell's batch size, in training mode. Trained: the seed "
        f"mean final validation {metric} at least {found['trained_margin']:g} "
        "above chance and, with three or more seeds, its interval's low end "
        "above chance (the rule for a variant's best point; stricter than "
        "the summary's *trains at depth* range, which asks the seed mean "
        "alone to clear the margin).",
        "",
        "| variant | " + " | ".join(f"growth, depth {d}" for d in depths) + " |",
        "|---|" + "---|" * len(depths),
    ]
    for variant, numbers in summary["variants"].items():
        growth = numbers.get("init_grad_growth") or {}
        lines.append(
            f"| {variant} | "
            + " | ".join(findings.growth_text(growth.get(d) or {}) for d in depths)
            + " |"
        )
    lines += [
        "",
        f"| variant | depth | final val {metric} | best val {metric} | "
        "diverged | trained |",
        "|---|---|---|---|---|---|",
    ]
    for variant, numbers in summary["variants"].items():
        for d in depths:
            a = (numbers.get("depth_accuracy") or {}).get(d) or {}
            final, best = (
                findings.with_interval(a.get(k), a.get(f"{k}_interval"))
                for k in ("final_val", "best_val")
            )
            lines.append(
                f"| {variant} | {d} | {final} | {best} | "
                f"{a.get('diverged', 0)} of {a.get('cells', 0)} | "
                f"{'yes' if a.get('trained') else 'no'} |"
            )
    return lines + [""]


def plot(axes, rows, chance, folder, task=None):
    """Seed-mean gradient norm per layer at initialization (log scale), one
    panel per variant, one line per depth, with the predicted growth."""
    from studies.outputs import plots

    plt = plots.plt
    variants = axes["variant"]
    fig, grid = plt.subplots(
        1, len(variants), figsize=(4.8 * len(variants), 4.2), squeeze=False
    )
    cmap = plt.get_cmap("viridis")
    depths = sorted(axes["depth"])
    for ax, variant in zip(grid[0], variants, strict=True):
        for i, d in enumerate(depths):
            norms, _ = depth.norms_at(rows, variant, d)
            if norms is None:
                continue
            ys = np.array([np.nan if v is None else v for v in norms], float)
            color = cmap(i / max(len(depths) - 1, 1))
            ax.plot(np.arange(1, ys.size + 1), ys, color=color, label=f"depth {d}")
        _prediction(ax, rows, variant, depths[-1])
        ax.set_yscale("log")
        ax.set_xlabel("hidden layer (input side first)")
        ax.set_title(variant)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    grid[0][0].set_ylabel("||dL/dW|| at initialization (seed mean)")
    return plots.save(fig, folder, study_folder.INIT_GRAD_NORMS_PLOT)


def _prediction(ax, rows, variant, deepest):
    """The predicted growth pi/(pi-1) per layer, dashed, through the deepest
    net's last layer."""
    norms, _ = depth.norms_at(rows, variant, deepest)
    if norms is None or norms[-1] is None:
        return
    layers = np.arange(1, len(norms) + 1)
    ys = norms[-1] * depth.PREDICTED_GROWTH ** (len(norms) - layers)
    ax.plot(layers, ys, color="black", ls="--", lw=0.8, label="pi/(pi-1) per layer")
