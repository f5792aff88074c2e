"""What a cell's result means: ok, diverged, errored or missing, decided here only.

Analysis, plots and report read results through these functions, so the rules
"a diverged cell counts as chance" and "an errored cell is unknown" are
written once:

- `ok`: training ran its budget; its accuracies count as measured.
- `diverged`: the loss became NaN/inf or crossed the divergence threshold; the
  cell counts as chance and is never "stable". Only a set flag counts: a
  `diverged` of None, "", NaN or "nan" is not one (`_truthy`).
- `error`: the cell raised (an out-of-memory error, a bug in a builder; its
  message is in the record). That says nothing about the setting, so it
  counts as unknown (NaN), as a missing cell does: left out of means, never
  stable, and it ends any contiguous range it falls in. The report still
  lists it, and `errors` counts it.
- a regression cell scores its R², floored at the constant predictor's 0
  (the raw R² stays in `results.csv`).
- `missing`: no record yet (an unfinished study); it counts as unknown (NaN),
  is left out of means, and ends any contiguous range it falls in.
"""

import math
import numbers

OK = "ok"
DIVERGED = "diverged"
ERROR = "error"
MISSING = "missing"


def status(row):
    """The status of a result row (None, for a cell without a record: missing)."""
    if row is None:
        return MISSING
    if row.get("status") == ERROR:
        return ERROR
    if row.get("status") == DIVERGED or _truthy(row.get("diverged")):
        return DIVERGED
    return OK


def stable(row):
    """Whether the cell trained its whole budget without diverging or failing."""
    return status(row) == OK


def score(row, chance, key="final_val_accuracy"):
    """The accuracy a cell counts for: measured if ok, chance if it diverged,
    unknown (NaN) if it errored or is missing.

    Args:
        row: A result row, or None for a missing cell.
        chance: The accuracy of the majority class on the set `key` is on.
        key: `final_val_accuracy`, `final_test_accuracy` or
            `final_train_accuracy`.

    Returns:
        A float; NaN for a missing or errored cell (or an ok cell without
        that value).
    """
    state = status(row)
    if state in (MISSING, ERROR):
        return math.nan
    if state == DIVERGED:
        return float(chance)
    value = row.get(key)
    if value is None:
        return math.nan
    if key.endswith("_r2"):
        # worse than the constant predictor counts as the constant predictor,
        # as a diverged cell does: one terrible cell (R² -20) must not weigh
        # more in a mean than a diverged one
        return max(float(value), float(chance))
    return float(value)


def _truthy(value):
    """A 0/1 flag that may have been through a CSV (as a string) or JSON.

    An unknown flag is not a set one: None, "", a float NaN and the string
    "nan" (any case) all read as False, so a lost flag never marks a cell
    diverged (its loss and score decide, through the record's status).
    """
    if value is None:
        return False
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false", "", "nan"):
            return text == "true"
        return float(text) != 0
    if isinstance(value, numbers.Real) and math.isnan(value):
        return False  # float, NumPy float or int
    return bool(value)
