"""Everything a study folder shows, rebuilt from its spec and cell records.

`write(study_dir)` reads `study.json` and `cells/`, then writes
`results.csv`, `summary.json`, the PNG plots, `report.md` and `report.html`
(`html_report`). It never reads Keras Tuner's files, so `python -m studies
report DIR` works on any study folder, finished or not.
"""

import json
import math

import numpy as np

from studies import folder
from studies.engine import provenance, results
from studies.inputs import data
from studies.outputs import (
    convergence_report,
    depth_report,
    html_report,
    plots,
    report_sections,
    weight_decay_report,
)
from studies.science import analysis, definitions, findings, outcomes, tasks, tuning
from studies.science.spec import StudySpec
from studies.science.stats import jsonable

_ROLES = {
    "variant": "scientific (the question)",
    "lr": "measured axis",
    "init": "axis (one curve per family)",
    "init_scale": "measured axis",
    "batch_size": "measured axis",
    "depth": "measured axis",
    "weight_decay": "axis (a table row per value)",
    "seed": "nuisance (averaged; intervals over it)",
}


def _columns(axes, metric="accuracy"):
    """(summary key, column title, format) of the summary table, for `axes`."""
    short = {"accuracy": "acc", "r2": "R²"}[metric]
    columns = [
        (f"best_val_{metric}", f"best val {short}", "{:.3f}"),
        (f"test_{metric}", f"test {short} at best", "{:.3f}"),
    ]
    for a in analysis.swept_axes(axes):
        name = a.replace("_", " ")
        columns += [
            (f"usable_{a}_decades_1pt", f"{name} decades within 1pt", "{:.2f}"),
            (f"usable_{a}_decades_5pt", f"{name} decades within 5pt", "{:.2f}"),
            (f"trainable_{a}_decades", f"{name} decades that train", "{:.2f}"),
            (f"max_stable_{a}", f"max stable {name}", "{:g}"),
            (f"{a}_sensitivity", f"{name} sensitivity", "{:.3f}"),
        ]
    return columns + [
        (f"final_train_{metric}", f"train {short}", "{:.3f}"),
        ("batch_noise_slope", "noise slope vs batch", "{:.2f}"),
        ("generalization_gap", "train - val gap", "{:.3f}"),
        ("percentile_drift", "percentile drift", "{:.4f}"),
        ("mean_loss_range", "mean loss range", "{:.4f}"),
        ("mean_grad_change", "mean grad change", "{:.3f}"),
        ("max_beta_smoothness", "max beta-smoothness", "{:.2f}"),
        ("seed_std", "seed std", "{:.3f}"),
        ("diverged_fraction", "diverged", "{:.0%}"),
        ("errors", "errors", "{:d}"),
    ]


def load_spec(study_dir):
    with open(folder.spec_path(study_dir)) as f:
        return StudySpec.from_json(f.read())


def load_chances(study_dir):
    """`(chance, test_chance)` from `dataset.json` (validation and test splits)."""
    dataset = _dataset_record(study_dir)
    return dataset["chance"], dataset.get("test_chance", dataset["chance"])


def load_sizes(study_dir):
    """`{"val": examples, "test": examples}` from `dataset.json` (None for a
    folder written before the sizes were recorded)."""
    return _dataset_record(study_dir).get("sizes")


def _dataset_record(study_dir):
    with open(folder.dataset_path(study_dir)) as f:
        return json.load(f)


# What `write` writes besides the tables and plots (`report DIR --format`).
FORMATS = {"md": ("md",), "html": ("html",), "both": ("md", "html")}


def write(study_dir, formats=("md", "html")):
    """Writes results.csv, summary.json, plots, report.md and report.html
    (`formats` says which of the two reports), each atomically (a kill
    leaves the previous report or the new one); returns the summary."""
    spec = load_spec(study_dir)
    definition = definitions.get(spec.study)
    chance, test_chance = load_chances(study_dir)
    spec, tuned = _tuned(spec, study_dir, chance)
    table = results.rows(spec, study_dir)
    results.write_csv(folder.results_path(study_dir), spec, table, tuned["phase"])
    converged = convergence_report.prepare(spec, table, study_dir, chance)
    summary = analysis.summarize(
        spec, table, chance, test_chance, definition.metrics, load_sizes(study_dir)
    )
    convergence_report.add(spec, table, summary, converged)
    depth_report.add(spec, table, summary, chance)
    weight_decay_report.add(spec, table, summary)
    if tuned["summary"] is not None:
        summary["tuning"] = jsonable(tuned["summary"])
        summary["tuned_lr"] = summary["tuning"]["tuned_lr"]
        for variant, numbers in summary["variants"].items():
            numbers["tuned_lr"] = summary["tuned_lr"].get(variant)
    runs = provenance.read(study_dir)
    summary["forced"] = [f"{r['run']}: {d}" for r in runs for d in r.get("forced", ())]
    folder.write(folder.summary_path(study_dir), json.dumps(summary, indent=2))
    images = plots.for_study(spec, table, chance, study_dir, summary, definition.plots)
    text = markdown(spec, summary, table, images, runs)
    if "md" in formats:
        folder.write(folder.report_path(study_dir), text)
    if "html" in formats:
        page = html_report.render(text, study_dir, f"Study {spec.study}")
        folder.write(folder.report_html_path(study_dir), page)
    return summary


def _tuned(spec, study_dir, chance):
    """The spec the main phase ran (its variants' tuned rates, once the
    tuning phase has finished) and `{"phase": (tuning spec, rows) or None,
    "summary": the summary's tuning section or None}`."""
    phase = tuning.tuning_spec(spec)
    if phase is None:
        return spec, {"phase": None, "summary": None}
    rows = results.rows(phase, study_dir)
    key = tasks.of(spec).key("val")
    found = tuning.summary(spec, rows, chance, key)
    if len(rows) == phase.size:
        spec = tuning.with_tuned(spec, found["tuned_lr"])
    return spec, {"phase": (phase, rows), "summary": found}


def markdown(spec, summary, table, images, runs=()):
    """The report: setup, findings, tables with intervals, plots, cost, command."""
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
    task = tasks.of(spec)
    lines += ["", _selection(task, summary["chance"]), ""]
    seeds = len(spec.axes["seed"])
    if seeds < analysis.MIN_SEEDS:
        lines += [_FEW_SEEDS.format(seeds=seeds, needed=analysis.MIN_SEEDS), ""]
    lines += ["## Findings", ""] + [
        f"- {line}" for line in findings.lines(spec, summary)
    ]
    lines += [""]
    lines += _summary_table(spec, summary) + _differences_table(spec, summary)
    lines += convergence_report.markdown(summary) + depth_report.markdown(summary)
    lines += report_sections.tuning(summary)
    lines += weight_decay_report.markdown(summary)
    lines += report_sections.batch_noise(summary)
    lines += report_sections.evaluation_noise(summary)
    lines += report_sections.eval_statistics(summary)
    lines += _definitions(spec.axes, task) + _errors(table) + provenance.markdown(runs)
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
        f"tensorboard --logdir {folder.TENSORBOARD}",
        "```",
        "",
    ]
    return "\n".join(lines)


def _selection(task, chance):
    if task.name == tasks.REGRESSION:
        score = (
            "A cell's score is its final validation R² = 1 - MSE / (MSE of "
            "predicting the training targets' mean), a loss normalized so "
            "that 0 is the constant predictor and 1 is perfect"
        )
        divergence = (
            "one batch's loss above the divergence threshold times the first "
            "batch's loss"
        )
        failed = "the constant predictor (R² 0)"
    else:
        score = "A cell's accuracy is its final validation accuracy"
        divergence = (
            "one batch's loss above the divergence threshold times the first "
            "batch's loss, or above the threshold itself if that is larger"
        )
        failed = f"chance ({chance:.3f})"
    return (
        f"Selection is on the validation split (a "
        f"{data.VALIDATION_FRACTION:.0%} of the training data"
        + (", stratified by class" if task.name == tasks.CLASSIFICATION else "")
        + "); the test split is held out and reported at the point selected on "
        f"validation. {score}; a diverged cell (NaN/inf loss, or {divergence}) "
        f"counts as {failed} and is never stable; an errored cell counts as "
        "missing (left out of means, it ends a range; listed under Errors). "
        + _INTERVALS
    )


_INTERVALS = (
    "Numbers in brackets are 95% Student t intervals over seeds (n - 1 "
    "degrees of freedom; n is the number of finished seeds); differences are "
    "paired by seed (the interval of the per-seed differences). Range widths "
    "in decades move in grid steps, so they show the lowest and highest "
    "per-seed width instead (`seeds a to b`, no level claimed). Measured by "
    "simulation (`python -m studies.science.coverage`), nominal 95% covers "
    "93-95% for normal or moderately skewed seeds at n = 3 to 10, and 88-90% "
    "for strongly skewed (exponential) ones."
)

_FEW_SEEDS = (
    "**No intervals: {seeds} seed(s).** A t interval needs {needed} or more "
    "(with 2 seeds, t is 12.7 on one degree of freedom; a percentile "
    "bootstrap of 2 seeds covers the mean about half the time). Use "
    "`--seeds 5` or more for numbers to publish."
)


def _summary_table(spec, summary):
    variants = summary["variants"]
    metric = tasks.of(spec).metric
    columns = [
        c
        for c in _columns(spec.axes, metric)
        if any(c[0] in v for v in variants.values())
    ]
    lines = ["## Summary", ""]
    lines.append("| variant | trained | " + " | ".join(t for _, t, _ in columns) + " |")
    lines.append("|---" * (len(columns) + 2) + "|")
    for variant, numbers in variants.items():
        trained = {True: "yes", False: "**no**"}.get(numbers.get("trained"), "-")
        cells = [findings.cell(numbers, k, f) for k, _, f in columns]
        lines.append(f"| {variant} | {trained} | " + " | ".join(cells) + " |")
    return lines + [""]


def _differences_table(spec, summary):
    differences = summary.get("differences") or {}
    if not differences:
        return []
    columns = _columns(spec.axes, tasks.of(spec).metric)
    keys = [k for k, _, _ in columns if not k.startswith("max_stable")]
    keys = [k for k in keys if any(k in e for e in differences.values())]
    titles = {k: t for k, t, _ in columns}
    formats = {k: f for k, _, f in columns}
    lines = ["## Differences to no BN (paired by seed)", ""]
    lines.append("| variant - none | " + " | ".join(titles[k] for k in keys) + " |")
    lines.append("|---" * (len(keys) + 1) + "|")
    for variant, entry in differences.items():
        cells = [
            findings.with_interval(
                entry[k]["value"], entry[k]["interval"], formats[k], signed=True
            )
            if k in entry
            else "-"
            for k in keys
        ]
        lines.append(f"| {variant} - none | " + " | ".join(cells) + " |")
    return lines + [""]


def _definitions(axes, task=None):
    """The paragraphs that define the columns shown."""
    paragraphs = [_TERMS]
    if task is not None and task.name == tasks.REGRESSION:
        paragraphs.append(_REGRESSION_TERMS)
    if analysis.swept_axes(axes):
        paragraphs.append(_GRID_TERMS)
    return [text + "\n" for text in paragraphs]


def _errors(table):
    failed = [r for r in table if outcomes.status(r) == outcomes.ERROR]
    if not failed:
        return []
    lines = ["## Errors", ""]
    for row in failed:
        cell = ", ".join(
            f"{k}={row[k]}" for k in row if k not in results.COLUMNS and k != "curves"
        )
        lines.append(f"- {cell}: {row.get('message') or '(no message)'}")
    return lines + [""]


_TERMS = (
    f"Trained: the best point's accuracy is at least "
    f"{analysis.TRAINED_MARGIN * 100:.0f} points above chance and, "
    "with three or more seeds, its interval's lower end is above chance; a "
    "variant that did not train gets no usable or stable range. Best val acc: "
    "the best seed-mean validation accuracy over the grid; test acc at best: "
    "the test accuracy at that point. Seed std: mean over grid points of the "
    "std across seeds (two or more seeds only). Percentile drift: mean absolute "
    "change per 100 optimizer steps of the 15/50/85th percentiles of one "
    "nonlinearity's input (unit 0 of the last hidden layer, on a fixed probe "
    "batch of 512 training examples, training-mode forward pass), from "
    "consecutive readings (each change divided by the steps between them, so "
    "it does not depend on how often the instruments read), after the first "
    "epoch (Ioffe & Szegedy 2015, Fig. 1). Landscape (Santurkar et al. 2018, "
    "Fig. 4), at each probe step on a training batch, with g = grad L(theta) and "
    "theta' = theta - lambda * lr * g for lambda in {0.5, 1, 2, 4}: mean loss "
    "range is max - min of L(theta') averaged over probe steps; mean grad "
    "change is the max over lambda of ||grad L(theta') - g|| averaged over "
    "probe steps; max beta-smoothness is the largest ||grad L(theta') - g|| / "
    "||theta' - theta|| of a cell, averaged over seeds. Drift and landscape "
    "numbers come from the cells that did not diverge (a diverged cell's "
    "curves stop at the explosion). Train acc: accuracy on "
    "the whole training split at the end, inference mode (landscape: the "
    "instrument's last reading, up to 2048 examples). Train - val gap: seed "
    "mean over the cells that trained (failed cells would add a gap of 0)."
)

_REGRESSION_TERMS = (
    "Regression: read accuracy above as R² (1 - MSE / the constant "
    "predictor's MSE on the same split; chance is R² 0); points are R² "
    "points (within 5 pt: an MSE within 5% of the constant predictor's MSE "
    "of the best)."
)

_GRID_TERMS = (
    "Ranges are measured against the best accuracy of any variant (the "
    "reference), never a variant's own best. Decades within 1pt / 5pt: width, "
    "in decades, of the contiguous run of grid points around the variant's best "
    "whose accuracy is within 1 / 5 points of the reference (0 for a single "
    "point: the resolution is the grid spacing); `<=` and `>=` mark a range cut "
    "off by the grid's edge. Decades that train: the same for the run of points "
    "at least 5 points above chance. Max stable: the top of the contiguous run "
    "of points from the best upwards (along the curve through the best "
    "point) where every seed ran without diverging or failing and the "
    "accuracy is at least 5 points above chance (a missing or errored cell, "
    "or a point that does not train, ends it). Sensitivity: mean over the grid of "
    "the gap between the reference and the point's accuracy (Wortsman et al.'s "
    "LR sensitivity, on accuracy). With several curves along an axis (e.g. one "
    "per init family) the widths and sensitivities are averaged over them."
)


def _cost(table):
    if not table:
        return "No finished cells."
    fit = np.array([_float(r.get("fit_seconds")) for r in table], float)
    total = np.array([r["seconds"] for r in table], float)
    tuner = np.array([_float(r.get("tuner_seconds")) for r in table], float)
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


def _float(value):
    return math.nan if value is None else float(value)
