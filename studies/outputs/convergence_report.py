"""The convergence study's part of a report: its rows' steps and seconds to
the target (`studies.science.convergence`), the summary's `convergence`
section, and the report's section on it (`reporting.write` calls these;
every other study passes through untouched)."""

import json
import os

import numpy as np

from studies import folder
from studies.science import analysis, convergence, definitions, findings, tasks


def applies(spec):
    return "convergence" in definitions.get(spec.study).metrics


def read_timing(study_dir):
    """The folder's `timing.json` (`{}` before the timing has run)."""
    path = folder.timing_path(study_dir)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def prepare(spec, table, study_dir, chance):
    """Annotates `table` (`convergence.prepare`) before the summary; returns
    what `add` needs, or None for another study."""
    if not applies(spec):
        return None
    timing = read_timing(study_dir)
    chosen = convergence.prepare(
        spec.axes,
        table,
        tasks.of(spec).metric,
        chance,
        timing.get("seconds_per_step") or {},
        spec.fixed.get("target"),
    )
    return {**chosen, "timing": timing}


def add(spec, table, summary, prepared):
    """Adds the `convergence` section to `summary` (nothing for None)."""
    if prepared is None:
        return
    section = convergence.section(spec.axes, table, summary["variants"], prepared)
    timing = prepared["timing"]
    section["timing"] = {
        k: timing.get(k) for k in ("method", "rounds", "steps", "warmup")
    }
    summary["convergence"] = section


def markdown(summary):
    """The report's section: the target and the table per variant (the
    ratios are among the findings, `findings.convergence_lines`)."""
    found = summary.get("convergence")
    if not found:
        return []
    metric = summary.get("metric", "accuracy")
    timing = found.get("timing") or {}
    how = (
        "given (`--target`)"
        if found["target_given"]
        else (
            f"the lowest of the variants' best seed-mean validation {metric} "
            f"({_best(found)}) minus {found['target_margin']:g}"
        )
    )
    lines = [
        "## Steps and seconds to the target",
        "",
        f"Target: validation {metric} {findings.number(found['target'])}, "
        f"{how}. A seed's steps to the target are the first reading of its "
        "validation curve at or above it (readings every `probe_every` "
        "steps); its seconds, those steps times its seconds per step. "
        "Seconds per step were measured after the cells in one process, the "
        f"variants interleaved ({timing.get('rounds')} rounds of "
        f"{timing.get('steps')} `train_on_batch` steps per variant and seed, "
        "order rotated each round, the median round; not cell wall times). "
        f"Censoring: {found['censoring']}.",
        "",
        "| variant | reached | steps to target | median steps | s per step | "
        "seconds to target |",
        "|---|---|---|---|---|---|",
    ]
    for variant, counts in found["variants"].items():
        numbers = summary["variants"].get(variant) or {}
        lines.append(
            f"| {variant} | {counts['reached']} of {counts['seeds']} | "
            f"{findings.cell(numbers, 'steps_to_target', '{:.0f}')} | "
            f"{_median(counts)} | "
            f"{findings.cell(numbers, 'seconds_per_step', '{:.2e}')} | "
            f"{findings.cell(numbers, 'seconds_to_target', '{:.3g}')} |"
        )
    return lines + [""]


def _best(found):
    return ", ".join(
        f"{v} {findings.number(b)}" for v, b in found["best_seed_mean"].items()
    )


def _median(counts):
    if counts["median"] is None:
        return "not reached" if counts["seeds"] else "-"
    return f"{counts['median']:.0f}"


def plot(axes, rows, chance, folder, task=None):
    """Ioffe & Szegedy's Figure 1(a): seed-mean validation score against
    steps, and against seconds (steps x the variant's mean seconds per step
    from the interleaved timing), with the target dashed."""
    from studies import folder as study_folder
    from studies.outputs import plots  # it draws with that module

    plt, task = plots.plt, task or tasks.get(tasks.CLASSIFICATION)
    variants, styles = axes["variant"], plots.variant_styles(axes["variant"])
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    targets = [r["target"] for r in rows if r.get("target") is not None]
    for variant in variants:
        own = [r for r in rows if r["variant"] == variant]
        steps, means = analysis.mean_curve(own, task.metric, "test")
        style = {**styles[variant], "marker": None}
        by_step.plot(steps, means, label=variant, **style)
        per_step = [r["seconds_per_step"] for r in own if r.get("seconds_per_step")]
        if per_step:
            by_time.plot(steps * np.mean(per_step), means, label=variant, **style)
    for ax, label in ((by_step, "training step"), (by_time, "seconds (timed steps)")):
        ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
        if targets:
            ax.axhline(targets[0], color="black", ls="--", lw=0.8, label="target")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    by_step.set_ylabel(f"validation {task.metric} (seed mean)")
    by_step.set_title(f"validation {task.metric} against steps")
    by_time.set_title(f"validation {task.metric} against seconds")
    by_step.legend(fontsize=8)
    return plots.save(fig, folder, study_folder.CONVERGENCE_PLOT)
