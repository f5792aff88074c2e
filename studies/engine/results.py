"""The results table: one row per finished cell, in grid order, as `results.csv`."""

import csv
import io

from studies import folder
from studies.engine import records
from studies.science.spec import cell_key

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
)


def rows(spec, study_dir):
    """The finished cells' rows (axis values plus outcome), in grid order."""
    found = records.read_all(study_dir)
    table = []
    for cell in spec.cells():
        record = found.get(cell_key(cell))
        if record is not None:
            row = {**cell, **{k: record.get(k) for k in COLUMNS}}
            row["curves"] = record.get("curves") or {}  # not a CSV column
            table.append(row)
    return table


def write_csv(path, spec, table):
    """Writes `table` with a column per axis, then `COLUMNS` (atomically)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(
        text, fieldnames=[*spec.axis_names, *COLUMNS], extrasaction="ignore"
    )
    writer.writeheader()
    writer.writerows(table)
    folder.write(path, text.getvalue())
