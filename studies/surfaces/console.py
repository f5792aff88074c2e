"""What a run prints: the study it starts, and the findings it ends with."""

import os

from studies import folder
from studies.engine import records
from studies.outputs import reporting
from studies.science import findings, tuning


def print_start(spec, study_dir, role, dataset, forced, stream):
    """The study, its grid, the cells already finished, the data and the
    settings, each difference `--resume-changed` let through, then how to
    watch it in TensorBoard (each cell's logs are there while it runs)."""
    finished = len(records.finished_keys(study_dir))
    phase = tuning.tuning_spec(spec)
    tuned = f" after {phase.size} tuning cells" if phase else ""
    fixed = dict(spec.fixed)
    if phase:  # the fixed rate is only the fallback of a variant never tuned
        fixed["lr"] = f"tuned per variant over {fixed.pop('tune_lrs')}"
    print(
        f"study {spec.study} ({role}): {spec.size} cells over "
        + " x ".join(f"{len(v)} {k}" for k, v in spec.axes.items())
        + f"{tuned}; {finished} already finished in {study_dir}\n"
        + f"{dataset.describe()}; "
        + ", ".join(f"{k}={v}" for k, v in fixed.items() if k != "dataset"),
        file=stream,
        flush=True,
    )
    for difference in forced:
        print(
            f"--resume-changed: going on although {difference}",
            file=stream,
            flush=True,
        )
    print(
        f"watch it live: tensorboard --logdir {folder.tensorboard_dir(study_dir)}",
        file=stream,
        flush=True,
    )


def print_worker_finished(stream):
    print("worker finished: no cells left to hand out", file=stream, flush=True)


def print_summary(summary, study_dir, stream):
    """The findings, one line per variant and per difference, then the files."""
    spec = reporting.load_spec(study_dir)
    for line in findings.lines(spec, summary):
        print(f"  {line}", file=stream)
    print(f"  {interval_line(summary)}", file=stream)
    reports = (folder.report_path(study_dir), folder.report_html_path(study_dir))
    print(
        f"report: {', '.join(p for p in reports if os.path.exists(p))}\n"
        f"results: {folder.results_path(study_dir)}, "
        f"{folder.summary_path(study_dir)}\n"
        f"logs: tensorboard --logdir {folder.tensorboard_dir(study_dir)}",
        file=stream,
        flush=True,
    )


def interval_line(summary):
    """How the brackets above were made: method, level and seeds."""
    method = summary.get("interval") or {}
    seeds = method.get("seeds", 0)
    if seeds < method.get("min_seeds", 3):
        return f"no intervals: {seeds} seed(s), an interval needs 3 or more"
    return (
        f"[brackets]: {method.get('level', 0.95):.0%} Student t intervals over "
        f"{seeds} seeds (n = {seeds} where every seed finished), differences "
        "paired by seed; (seeds a to b): the per-seed spread of a range width"
    )
