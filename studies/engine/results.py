"""The results table: one row per finished cell, in grid order, as `results.csv`."""

import csv
import io

from studies import folder
from studies.engine import records
from studies.science.spec import cell_key
from studies.science.tuning import MAIN, PHASE

# After the study's axis columns, in this order.
COLUMNS = (
    "final_val_accuracy",
    "best_val_accuracy",
    "final_val_loss",
    "best_val_loss",
    "final_train_loss",
    "diverged",
    "epochs_run",
    "seconds",
    "status",
    "final_train_accuracy",
    "fit_seconds",
    "tuner_seconds",
    "message",
    "final_test_accuracy",
    "steps_run",
    "final_val_r2",
    "best_val_r2",
    "final_train_r2",
    "final_test_r2",
    "final_test_loss",
    "batch_noise",
    "run",
    "peak_rss_mb",
    "finished_at",
    "rss_mb",
    "group_size",
    # with eval_statistics recomputed or both (`CellHyperModel.recomputed_scores`)
    "final_val_accuracy_recomputed",
    "final_test_accuracy_recomputed",
    "final_val_r2_recomputed",
    "final_test_r2_recomputed",
    "statistics_recomputed",
)


# A study that tunes its learning rate (`studies.science.tuning`) adds these:
# the phase of the row (`tune` or `main`) and the rate the cell ran at.
TUNING_COLUMNS = (PHASE, "lr")


def rows(spec, study_dir):
    """The finished cells' rows (axis values plus outcome), in grid order.

    A study without a learning-rate axis gives each row the rate its cell
    ran at, `lr` (its variant's tuned rate in a tuning study's main phase).
    """
    found = records.read_all(study_dir)
    table = []
    for cell in spec.cells():
        record = found.get(cell_key(cell))
        if record is not None:
            row = {**cell, **{k: record.get(k) for k in COLUMNS}}
            if "lr" not in row:  # the rate the cell ran at, as recorded
                row["lr"] = record.get("lr", spec.settings(cell).get("lr"))
            row["curves"] = record.get("curves") or {}  # not a CSV column
            if record.get("init_grad_norms") is not None:  # a list: not a column
                row["init_grad_norms"] = record["init_grad_norms"]
            table.append(row)
    return table


def write_csv(path, spec, table, tuning=None):
    """Writes `table` with a column per axis, then `COLUMNS` (atomically).

    Args:
        tuning: `(tuning spec, its rows)` of a study that tunes its rate:
            those rows come first, and every row says its `phase` and `lr`
            (a tuning row's other axes at the tuning point's values).
    """
    fieldnames = [*spec.axis_names, *COLUMNS]
    if tuning is not None:
        phase, tuning_rows = tuning
        fieldnames += list(TUNING_COLUMNS)
        at = {name: phase.fixed.get(name) for name in spec.axis_names}
        table = [{**at, **r} for r in tuning_rows] + [{**r, PHASE: MAIN} for r in table]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(table)
    folder.write(path, text.getvalue())
