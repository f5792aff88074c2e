"""PNG plots of a study (matplotlib, no display needed).

Each function takes the axes, the result rows and chance, writes one PNG and
returns its file name. Accuracy is the analysis's cell score
(`studies.science.outcomes`; R² for a regression task,
`studies.science.tasks`): diverged cells count as chance and are marked
with a cross; errored cells, like missing ones, are left out. Every swept
axis gets an accuracy plot with the usable threshold (5 points below the
best of any variant); two swept axes also get heatmaps; a study's
definition names its extra plots (`EXTRA_PLOTS`).
"""

import importlib
import io
import os

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from studies import folder as study_folder  # noqa: E402
from studies.science import analysis, outcomes, tasks  # noqa: E402

_CLASSIFICATION = tasks.get(tasks.CLASSIFICATION)


def variant_styles(variants):
    """Colour, marker and dash per variant, so overlapping curves stay visible."""
    cmap = plt.get_cmap("tab10")
    markers, dashes = "osD^vP", ("-", "--", "-.", ":")
    return {
        v: dict(color=cmap(i % 10), marker=markers[i % 6], ls=dashes[i % 4])
        for i, v in enumerate(variants)
    }


def _label(where):
    return ", ".join(f"{k}={v}" for k, v in where.items())


def accuracy_vs(
    axes, rows, chance, along, folder, filename, reference=None, task=_CLASSIFICATION
):
    """Seed-mean accuracy vs `along` (log x) per variant, with a +-1 std band.

    One panel per value of the other non-seed axes (e.g. per init family); a
    dashed line marks the usable threshold, 5 points below `reference`.
    """
    variants = axes["variant"]
    styles = variant_styles(variants)
    # Every variant's curves come in the same panel order (the other axes' grid).
    key = task.key("val")
    by_variant = {
        v: analysis.curves(axes, rows, v, along, chance, key) for v in variants
    }
    panels = by_variant[variants[0]]
    fig, grid = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False, sharey=True
    )
    for i, (ax, (where, *_rest)) in enumerate(zip(grid[0], panels, strict=True)):
        for variant in variants:
            _, xs, means, stds, diverged = by_variant[variant][i]
            color = styles[variant]["color"]
            ax.plot(xs, means, label=variant, **styles[variant])
            ax.fill_between(xs, means - stds, means + stds, color=color, alpha=0.2)
            if diverged.any():
                ax.plot(xs[diverged], means[diverged], "x", color=color, ms=11, mew=2)
        ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
        if reference is not None:
            ax.axhline(
                reference - analysis.TOLERANCES["5pt"],
                color="black",
                ls="--",
                lw=0.8,
                label="usable (5 pt below best)",
            )
        ax.set_xscale("log")
        if all(isinstance(v, int) for v in axes[along]):  # depths, batch sizes
            ticks = sorted(axes[along])
            ax.set_xticks(ticks, [str(v) for v in ticks])
            ax.minorticks_off()
        ax.set_xlabel(along.replace("_", " "))
        ax.set_title(_label(where) or f"{task.metric} vs {along}")
        ax.grid(alpha=0.3)
    grid[0][0].set_ylabel(f"final validation {task.label} (seed mean)")
    grid[0][-1].legend(title="x: a seed diverged", fontsize=8)
    return save(fig, folder, filename)


def heatmaps(
    axes, rows, chance, folder, filename=study_folder.HEATMAP_PLOT, task=_CLASSIFICATION
):
    """Seed-mean accuracy over learning rate x init scale, one map per variant."""
    variants = axes["variant"]
    lrs, scales = sorted(axes["lr"]), sorted(axes["init_scale"])
    fig, grid = plt.subplots(
        1, len(variants), figsize=(4.6 * len(variants), 4.2), squeeze=False
    )
    curves = {
        v: analysis.curves(axes, rows, v, "lr", chance, task.key("val"))
        for v in variants
    }
    for ax, variant in zip(grid[0], variants, strict=True):
        # one curve along lr per init scale, in ascending scale order
        order = np.argsort(axes["init_scale"])
        image = np.array([curves[variant][i][2] for i in order])
        crossed = np.array([curves[variant][i][4] for i in order])
        shown = ax.imshow(
            image, origin="lower", vmin=0, vmax=1, cmap="viridis", aspect="auto"
        )
        for i in range(len(scales)):
            for j in range(len(lrs)):
                text = "" if np.isnan(image[i, j]) else f"{image[i, j]:.2f}"
                text += "\nx" if crossed[i, j] else ""
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if image[i, j] < 0.6 else "black",
                )
        ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs], rotation=45)
        ax.set_yticks(range(len(scales)), [f"{v:g}" for v in scales])
        ax.set_xlabel("learning rate")
        ax.set_ylabel("init scale")
        ax.set_title(variant)
    fig.colorbar(
        shown, ax=grid[0].tolist(), label=f"val {task.metric} (seed mean; x: failed)"
    )
    return save(fig, folder, filename, tight=False)


def train_vs_val(
    axes,
    rows,
    chance,
    folder,
    filename=study_folder.TRAIN_VS_VAL_PLOT,
    task=_CLASSIFICATION,
):
    """Train and validation accuracy per variant (seed mean and spread)."""
    variants = axes["variant"]
    fig, ax = plt.subplots(figsize=(1.4 * len(variants) + 2, 4.2))
    width = 0.38
    for offset, key, label in (
        (-width / 2, task.key("train"), "train"),
        (width / 2, task.key("val"), "validation"),
    ):
        means, stds = [], []
        for variant in variants:
            values = [
                outcomes.score(r, chance, key) for r in rows if r["variant"] == variant
            ]
            means.append(np.nanmean(values) if values else np.nan)
            stds.append(np.nanstd(values) if values else np.nan)
        ax.bar(
            np.arange(len(variants)) + offset,
            means,
            width,
            yerr=stds,
            label=label,
            capsize=3,
        )
    ax.set_xticks(range(len(variants)), variants, rotation=20)
    ax.set_ylabel(f"final {task.metric} (seed mean +- std)")
    ax.set_ylim(0, 1.05)
    ax.axhline(chance, color="grey", ls=":", lw=1)
    ax.legend()
    ax.set_title(f"generalization: train vs validation {task.metric}")
    return save(fig, folder, filename)


def _curve_panel(ax, rows, variants, section, key, styles):
    """Seed-mean curve of `section`/`key` against steps, one line per variant."""
    for variant in variants:
        steps, means = analysis.mean_curve(
            [r for r in rows if r["variant"] == variant], section, key
        )
        style = {**styles[variant], "marker": None}
        ax.plot(steps, means, label=variant, **style)
    ax.set_xlabel("training step")
    ax.grid(alpha=0.3)


def covariate_shift(
    axes,
    rows,
    chance,
    folder,
    filename=study_folder.COVARIATE_SHIFT_PLOT,
    task=_CLASSIFICATION,
):
    """Ioffe & Szegedy's Figure 1: test accuracy, then percentiles per variant.

    The percentile panels show seed 0's network (percentiles of different
    networks do not average into one network's distribution).
    """
    variants = axes["variant"]
    styles = variant_styles(variants)
    fig, grid = plt.subplots(
        1, 1 + len(variants), figsize=(4.6 * (1 + len(variants)), 4.0)
    )
    # the instruments' "test" set is the validation split (the test split is
    # held out until the end)
    _curve_panel(grid[0], rows, variants, task.metric, "test", styles)
    grid[0].axhline(chance, color="grey", ls=":", lw=1, label="chance")
    grid[0].set_ylabel(f"validation {task.metric} (seed mean)")
    grid[0].set_title(f"(a) validation {task.metric}")
    grid[0].legend(fontsize=8)
    for i, (ax, variant) in enumerate(zip(grid[1:], variants, strict=True)):
        first = next(
            (
                r
                for r in rows
                if r["variant"] == variant and "percentiles" in r["curves"]
            ),
            None,
        )
        ax.set_title(f"({chr(ord('b') + i)}) {variant}: sigmoid input percentiles")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        if first is None:
            continue
        curve = first["curves"]["percentiles"]
        for key in analysis.percentile_keys(curve):
            ax.plot(curve["step"], analysis.floats(curve[key]), label=f"{key[1:]}th")
        ax.set_ylabel(f"{curve['layer']}, unit 0 (seed {first['seed']})")
        ax.legend(fontsize=8)
    top = max(abs(v) for ax in grid[1:] for v in ax.get_ylim())
    for ax in grid[1:]:
        ax.set_ylim(-top, top)
    return save(fig, folder, filename)


def landscape_accuracy(
    axes,
    rows,
    chance,
    folder,
    filename=study_folder.LANDSCAPE_ACCURACY_PLOT,
    task=_CLASSIFICATION,
):
    """Santurkar et al.'s Figure 2: training accuracy against steps."""
    variants = axes["variant"]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    styles = variant_styles(variants)
    _curve_panel(ax, rows, variants, task.metric, "train", styles)
    ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
    ax.set_ylabel(f"training {task.metric} (seed mean)")
    ax.set_title(f"training {task.metric}, same learning rate")
    ax.legend(fontsize=8)
    return save(fig, folder, filename)


def landscape(
    axes,
    rows,
    chance,
    folder,
    filename=study_folder.LANDSCAPE_PLOT,
    task=_CLASSIFICATION,
):
    """Santurkar et al.'s Figure 4: loss range and gradient predictiveness."""
    variants = axes["variant"]
    styles = variant_styles(variants)
    panels = (
        ("loss_range", "loss range along the gradient"),
        ("max_grad_change", "max ||grad(theta') - grad(theta)||"),
        ("beta_smoothness", "effective beta-smoothness"),
    )
    fig, grid = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.0))
    for ax, (key, title) in zip(grid, panels, strict=True):
        _curve_panel(ax, rows, variants, "landscape", key, styles)
        ax.set_yscale("log")
        ax.set_title(title)
    grid[0].set_ylabel("seed mean over probe steps")
    grid[0].legend(fontsize=8)
    return save(fig, folder, filename)


def batch_noise(
    axes,
    rows,
    chance,
    folder,
    filename=study_folder.BATCH_NOISE_PLOT,
    task=_CLASSIFICATION,
):
    """Batch noise against batch size (log-log) per variant, with 1/sqrt(batch)."""
    table = analysis.noise_by_batch_size(axes, rows)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    styles = variant_styles(axes["variant"])
    sizes = np.array(sorted(axes["batch_size"]), float)
    ax.plot(sizes, sizes**-0.5, color="grey", ls=":", label="1/sqrt(batch)")
    for variant, by_size in table.items():
        xs = np.array(list(by_size), float)
        ys = np.array(list(by_size.values()), float)
        shown = ys > 1e-4  # a per-example normalizer measures ~1e-7: off the log axis
        if shown.any():
            ax.plot(xs[shown], ys[shown], label=variant, **styles[variant])
        else:
            ax.plot([], [], label=f"{variant} (no batch noise)", **styles[variant])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("output noise from the batch (seed mean)")
    ax.set_title("normalization noise vs batch size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, folder, filename)


def save(fig, folder, filename, tight=True):
    """Writes `fig` to `folder/filename` (atomically) and closes it."""
    if tight:
        fig.tight_layout()
    image = io.BytesIO()  # then written atomically, as every file of a study
    fig.savefig(image, format=os.path.splitext(filename)[1][1:] or "png", dpi=110)
    plt.close(fig)
    study_folder.write(os.path.join(folder, filename), image.getvalue())
    return filename


def _drawn_in(module):
    """A plot drawn by `studies.outputs.<module>.plot` (a study's own report
    module, which draws with this one: imported when the plot is made)."""

    def plot(*args, **kwargs):
        drawer = importlib.import_module(f"studies.outputs.{module}")
        return drawer.plot(*args, **kwargs)

    return plot


# name -> function(axes, rows, chance, folder) -> file name; named by a
# study's definition (`definitions.StudyDefinition.plots`).
EXTRA_PLOTS = {
    "train_vs_val": train_vs_val,
    "covariate_shift": covariate_shift,
    "landscape_accuracy": landscape_accuracy,
    "landscape": landscape,
    "batch_noise": batch_noise,
    "convergence": _drawn_in("convergence_report"),
    "init_grad_norms": _drawn_in("depth_report"),
    "weight_decay": _drawn_in("weight_decay_report"),
}


def for_study(spec, rows, chance, folder, summary=None, extra=()):
    """Every plot that applies to `spec`; returns their file names.

    Args:
        summary: The analysis summary (its reference accuracy marks the
            usable threshold), or None.
        extra: Names from `EXTRA_PLOTS` (the study definition's plots).
    """
    axes, names = spec.axes, []
    if not rows:
        return names
    task = tasks.of(spec)
    reference = (summary or {}).get(f"reference_{task.metric}")
    swept = analysis.swept_axes(axes)
    if set(swept) == {"lr", "init_scale"}:
        names.append(heatmaps(axes, rows, chance, folder, task=task))
    for along in swept:
        filename = study_folder.curve_plot(task.metric, along)
        names.append(
            accuracy_vs(axes, rows, chance, along, folder, filename, reference, task)
        )
    names += [
        EXTRA_PLOTS[name](axes, rows, chance, folder, task=task) for name in extra
    ]
    return names
