"""A dry run: the grid a study would run, its cell count and a rough ETA.

`--dry-run` (`studies.run(..., dry_run=True)`) checks the options and the
folder as a run would, then prints this plan and stops: nothing is written,
no data is loaded and no backend is imported, so it answers in about a
second. The ETA counts the optimizer steps of the cells still to run (the
training rows of a built-in dataset, a `.npz` file or arrays, over the batch
size, times the epochs; or the step budget) at `SECONDS_PER_STEP`; in a
folder that already holds finished cells it uses their median time instead,
measured on the machine that ran them.
"""

import math
import statistics

from studies.engine import records
from studies.inputs.data.builtin import TRAIN_ROWS
from studies.inputs.data.splits import VALIDATION_FRACTION
from studies.science import tuning
from studies.science.spec import cell_key

# Measured on the 2-core development machine (2026-11-22, one cell at a time,
# start-up included): the quick lr study on digits, 157 s for 28 cells of 270
# steps (20.8 ms a step); the quick init study, 175 s for 32 x 270 (20.3 ms);
# lr on MNIST-1D with the CNN, 625 s for 28 x 1080 (20.7 ms). Per-cell costs
# (validation, logging, building the model) dominate these small models, so
# one figure fits all three; a large model or dataset takes longer.
SECONDS_PER_STEP = 0.020
BASIS = "about 20 ms per optimizer step, measured on 2 cores with the built-in models"


def training_rows(data):
    """Rows of the training split `data` (a `resolved.DataInput`) gives, or
    None where only loading would tell (MODULE:FUNCTION, tf.data)."""
    source = data.source
    rows = None
    if isinstance(source, str) and source in TRAIN_ROWS:
        rows = TRAIN_ROWS[source]
    elif isinstance(source, str) and source.endswith(".npz"):
        import numpy as np

        try:
            with np.load(source) as arrays:
                rows = len(arrays["x_train"])
        except (OSError, KeyError, ValueError):
            return None
    elif isinstance(source, dict) and "x_train" in source:
        rows = len(source["x_train"])
    elif isinstance(source, tuple | list) and len(source) == 4:
        rows = len(source[0])
    if rows is None:
        return None
    return rows - math.ceil(VALIDATION_FRACTION * rows)


def cell_steps(settings, rows):
    """Optimizer steps of one cell (`spec.settings(cell)`), or None."""
    if settings.get("steps"):
        return settings["steps"]
    if rows is None:
        return None
    if settings.get("train_size"):
        rows = min(rows, settings["train_size"])
    return settings["epochs"] * math.ceil(rows / settings["batch_size"])


def make(spec, study_dir, data):
    """The plan of `spec` in `study_dir`, as plain data (what `show` prints)."""
    finished = records.finished_keys(study_dir)
    phases = [p for p in (tuning.tuning_spec(spec), spec) if p is not None]
    remaining = [
        (phase, c)
        for phase in phases
        for c in phase.cells()
        if cell_key(c) not in finished
    ]
    total = tuning.cells_total(spec)
    done = total - len(remaining)
    rows = training_rows(data)
    # a main-phase cell's rate is not known yet; its steps do not depend on it
    steps = [cell_steps(phase.settings(c), rows) for phase, c in remaining]
    times = [
        r["seconds"]
        for r in records.read_all(study_dir).values()
        if isinstance(r.get("seconds"), int | float) and math.isfinite(r["seconds"])
    ]
    if times:
        eta = len(remaining) * statistics.median(times)
        basis = f"the median of the {len(times)} finished cells here"
    elif None not in steps:
        eta = sum(steps) * SECONDS_PER_STEP
        basis = BASIS
    else:
        eta, basis = None, f"unknown until {data.name} is loaded"
    return {
        "study": spec.study,
        "out": study_dir,
        "cells": total,
        "tuning_cells": total - spec.size,
        "finished": done,
        "to_run": len(remaining),
        "axes": {k: list(v) for k, v in spec.axes.items()},
        "fixed": dict(spec.fixed),
        "training_rows": rows,
        "steps": sum(steps) if steps and None not in steps else None,
        "eta_seconds": None if eta is None else round(eta, 1),
        "eta_basis": basis,
    }


def _duration(seconds):
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _value(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def show(plan, stream):
    """Prints `plan` (from `make`)."""
    axes = plan["axes"]
    lines = [
        f"study {plan['study']}: {plan['cells']} cells = "
        + " x ".join(f"{len(v)} {k}" for k, v in axes.items())
        + (
            f" + {plan['tuning_cells']} tuning the learning rate per variant"
            if plan["tuning_cells"]
            else ""
        )
        + f"; {plan['finished']} already finished in {plan['out']}",
        *(f"  {k}: {', '.join(map(_value, v))}" for k, v in axes.items()),
        "fixed: " + ", ".join(f"{k}={_value(v)}" for k, v in plan["fixed"].items()),
    ]
    if plan["steps"] is not None:
        rows = plan["training_rows"]
        lines.append(
            f"{plan['steps']} optimizer steps in the {plan['to_run']} cells to run"
            + ("" if rows is None else f" ({rows} training rows before --train-size)")
        )
    if plan["eta_seconds"] is None:
        lines.append(f"ETA: {plan['eta_basis']}")
    else:
        lines.append(
            f"ETA: about {_duration(plan['eta_seconds'])} one cell at a time "
            f"({plan['eta_basis']})"
        )
    lines.append("dry run: nothing was written; run it without --dry-run")
    print("\n".join(lines), file=stream, flush=True)
