"""Everything a study folder shows, rebuilt from its spec and cell records.

`write(study_dir)` reads `study.json` and `cells/`, then writes
`results.csv`, `summary.json`, the PNG plots and `report.md`. It never reads
Keras Tuner's files, so `python -m studies report DIR` works on any study
folder, finished or not.
"""

import json
import math
import os

import numpy as np

from studies import analysis, plots, results
from studies.spec import StudySpec

SPEC = "study.json"
DATASET = "dataset.json"

_ROLES = {
    "variant": "scientific (the question)",
    "lr": "measured axis",
    "init": "measured axis",
    "init_scale": "measured axis",
    "seed": "nuisance (averaged)",
}

# summary key -> (column title, format)
_TABLE = (
    ("best_val_accuracy", "best acc", "{:.3f}"),
    ("usable_lr_decades_1pt", "LR decades within 1pt", "{:.2f}"),
    ("usable_lr_decades_5pt", "LR decades within 5pt", "{:.2f}"),
    ("max_stable_lr", "max stable LR", "{:g}"),
    ("lr_sensitivity", "LR sensitivity", "{:.3f}"),
    ("init_scale_decades_5pt", "init-scale decades within 5pt", "{:.2f}"),
    ("accuracy_spread", "spread over init grid", "{:.3f}"),
    ("final_train_accuracy", "train acc", "{:.3f}"),
    ("generalization_gap", "train - val gap", "{:.3f}"),
    ("final_test_accuracy", "final test acc", "{:.3f}"),
    ("percentile_drift", "percentile drift", "{:.4f}"),
    ("mean_loss_range", "mean loss range", "{:.4f}"),
    ("mean_grad_change", "mean grad change", "{:.3f}"),
    ("max_beta_smoothness", "max beta-smoothness", "{:.2f}"),
    ("seed_std", "seed std", "{:.3f}"),
    ("diverged_fraction", "diverged", "{:.0%}"),
    ("errors", "errors", "{:d}"),
)


def load_spec(study_dir):
    with open(os.path.join(study_dir, SPEC)) as f:
        return StudySpec.from_json(f.read())


def write(study_dir):
    """Writes results.csv, summary.json, plots and report.md; returns the summary."""
    spec = load_spec(study_dir)
    with open(os.path.join(study_dir, DATASET)) as f:
        chance = json.load(f)["chance"]
    table = results.rows(spec, study_dir)
    results.write_csv(os.path.join(study_dir, "results.csv"), spec, table)
    summary = analysis.summarize(spec, table, chance)
    with open(os.path.join(study_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    images = plots.for_study(spec, table, chance, study_dir)
    with open(os.path.join(study_dir, "report.md"), "w") as f:
        f.write(markdown(spec, summary, table, images))
    return summary


def markdown(spec, summary, table, images):
    """The report: setup, summary table, plots, overhead and the command."""
    lines = [f"# Study `{spec.study}`", ""]
    done, total = summary["cells_finished"], summary["cells_total"]
    if done < total:
        lines += [
            f"**Incomplete: {done} of {total} cells finished.** Re-run the "
            "command below with the same `--out` to finish it.",
            "",
        ]
    lines += ["## Setup", "", "| hyperparameter | role | values |", "|---|---|---|"]
    for name, values in spec.axes.items():
        shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
        lines.append(f"| {name} | {_ROLES.get(name, 'axis')} | {shown} |")
    for name, value in spec.fixed.items():
        lines.append(f"| {name} | fixed | {value} |")
    lines += [
        "",
        "Accuracy is the final validation accuracy, averaged over seeds. A "
        "diverged cell (NaN/inf loss or loss above the divergence threshold) "
        f"counts as chance ({summary['chance']:.3f}).",
        "",
        "## Summary",
        "",
    ]
    keys = [
        k for k, _, _ in _TABLE if any(k in v for v in summary["variants"].values())
    ]
    titles = {k: t for k, t, _ in _TABLE}
    formats = {k: f for k, _, f in _TABLE}
    lines.append("| variant | " + " | ".join(titles[k] for k in keys) + " |")
    lines.append("|---" * (len(keys) + 1) + "|")
    for variant, numbers in summary["variants"].items():
        cells = [_fmt(numbers.get(k), formats[k]) for k in keys]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines += [""] + _definitions(keys) + _findings(summary)
    if images:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in images] + [""]
    lines += [
        "## Cost",
        "",
        _cost(table),
        "",
        "## Reproduce",
        "",
        "```bash",
        spec.command or "(command not recorded)",
        "```",
        "",
        "TensorBoard (scalars per cell, HParams dashboard over the grid):",
        "",
        "```bash",
        "tensorboard --logdir tensorboard",
        "```",
        "",
    ]
    return "\n".join(lines)


def _definitions(keys):
    """The paragraphs that define the columns shown."""
    shown = set(keys)
    return [
        text + "\n"
        for columns, text in (
            ({"usable_lr_decades_5pt", "accuracy_spread"}, _GRID_TERMS),
            ({"percentile_drift"}, _DRIFT_TERMS),
            ({"mean_loss_range"}, _LANDSCAPE_TERMS),
            ({"seed_std"}, "Seed std: mean over grid points of the std across seeds."),
        )
        if columns & shown
    ]


def _findings(summary):
    """One line per comparison the two reproduction studies exist to make."""
    numbers = summary["variants"]
    none, bn = numbers.get("none", {}), numbers.get("bn", {})
    lines = []
    for key, what in (
        ("percentile_drift", "percentile drift"),
        ("mean_loss_range", "mean loss range"),
        ("mean_grad_change", "mean gradient change"),
    ):
        if none.get(key) and bn.get(key):
            lines.append(
                f"- {what}, no BN / BN: {none[key] / bn[key]:.1f}x "
                f"({none[key]:.4g} vs {bn[key]:.4g})"
            )
    return (["## Findings", "", *lines, ""]) if lines else []


_DRIFT_TERMS = (
    "Percentile drift: mean absolute change of the 15/50/85th percentiles of "
    "one sigmoid's input (unit 0 of the last hidden layer, on a fixed probe "
    "batch of 512 training examples, training-mode forward pass) between "
    "consecutive readings, after the first epoch (Ioffe & Szegedy 2015, Fig. 1)."
)

_LANDSCAPE_TERMS = (
    "At each probe step, on a training batch: g = grad L(theta), and for "
    "lambda in {0.5, 1, 2, 4} the point theta' = theta - lambda * lr * g. Mean loss "
    "range: max - min of L(theta'), averaged over probe steps. Mean grad "
    "change: max over lambda of ||grad L(theta') - g|| (gradient "
    "predictiveness; lower is more predictive), averaged over probe steps. "
    "Max beta-smoothness: the largest ||grad L(theta') - g|| / ||theta' - theta|| "
    "seen (Santurkar et al. 2018, Fig. 4). Train acc: accuracy on the training "
    "set at the end, inference mode."
)

_GRID_TERMS = (
    "LR decades within 1pt / 5pt: width, in decades of learning rate, of the "
    "contiguous range around the best LR whose accuracy stays within 1 / 5 "
    "points of the best. Max stable LR: the largest LR at which no seed "
    "diverged. LR sensitivity: mean over the LR grid of the accuracy gap to "
    "the variant's own best (a variant that never trains scores low: read it "
    "next to best acc). Spread over init grid: best minus worst accuracy over init "
    "family x scale."
)


def _cost(table):
    if not table:
        return "No finished cells."
    fit = np.array([r["fit_seconds"] for r in table], float)
    total = np.array([r["seconds"] for r in table], float)
    tuner = np.array([r["tuner_seconds"] for r in table], float)
    build = total - fit
    return (
        f"{len(table)} cells, {np.nansum(total) / 60:.1f} min of cell time. Per "
        f"cell (median): fit {np.nanmedian(fit):.2f} s, model build and "
        f"bookkeeping inside the trial {np.nanmedian(build):.2f} s, Keras Tuner "
        f"bookkeeping between trials {_median(tuner):.3f} s."
    )


def _median(values):
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan


def _fmt(value, fmt):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)
