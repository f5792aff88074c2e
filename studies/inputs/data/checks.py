"""The four arrays checked to fit together, and the targets read as labels or
regression targets (the task follows them unless given)."""

import numpy as np

from studies.inputs.data.dataset import DatasetError
from studies.science import tasks


def checked(arrays, name):
    """The four arrays as NumPy, checked to fit together and be finite.

    Raises:
        DatasetError: arrays that cannot be read, are empty, differ in
            length or shape between splits, are not numeric or hold NaN/inf.
    """
    try:
        x_train, y_train, x_test, y_test = (np.asarray(a) for a in arrays)
    except (TypeError, ValueError) as error:
        raise DatasetError(f"{name}: the arrays cannot be read ({error})") from None
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if x.ndim == 0 or y.ndim == 0 or len(x) != len(y) or len(x) == 0:
            raise DatasetError(
                f"{name}: x_{split} and y_{split} must be non-empty and the same "
                f"length (got {len(x) if x.ndim else 'a scalar'} and "
                f"{len(y) if y.ndim else 'a scalar'})"
            )
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"{name}: x_train examples have shape {x_train.shape[1:]} but x_test "
            f"examples {x_test.shape[1:]}"
        )
    if y_train.shape[1:] != y_test.shape[1:]:
        raise DatasetError(
            f"{name}: y_train has shape {y_train.shape[1:]} per example but "
            f"y_test {y_test.shape[1:]}"
        )
    for array, label in (
        (x_train, "x_train"),
        (y_train, "y_train"),
        (x_test, "x_test"),
        (y_test, "y_test"),
    ):
        _check_values(array, label, name)
    return x_train, y_train, x_test, y_test


def _check_values(array, label, name):
    """Refuses an array that is not numeric or holds NaN or inf."""
    if not (
        np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
    ):
        raise DatasetError(f"{name}: {label} is not numeric ({array.dtype})")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.sum(~np.isfinite(array)))
        raise DatasetError(f"{name}: {label} holds {bad} NaN or inf value(s)")


def targets(y_train, y_test, task, name, spell=str):
    """`(task, y_train, y_test, note)`: labels as int32 or targets as float32 (N, k).

    `spell(option)` is how the caller spells an option in messages.

    Raises:
        DatasetError: classification targets that are not one label 0..K-1
            per example (nor one-hot rows).
    """
    integer = np.issubdtype(y_train.dtype, np.integer) or y_train.dtype == bool
    one_hot = (
        not integer
        and y_train.ndim == 2
        and y_train.shape[1] > 1
        and _is_one_hot(y_train)
        and _is_one_hot(y_test)
    )
    if task is None:
        task = tasks.CLASSIFICATION if integer or one_hot else tasks.REGRESSION
    if task == tasks.CLASSIFICATION:
        return (task, *_labels(y_train, y_test, one_hot, name, spell))
    y_train, y_test = (
        y.reshape(len(y), -1).astype("float32") for y in (y_train, y_test)
    )
    return task, y_train, y_test, ""


def _labels(y_train, y_test, one_hot, name, spell):
    """`(y_train, y_test, note)` as int32 class labels, checked."""
    note = ""
    if one_hot:
        y_train, y_test = y_train.argmax(axis=1), y_test.argmax(axis=1)
        note = "; one-hot targets read as class labels"
    elif y_train.ndim > 2 or (y_train.ndim == 2 and y_train.shape[1] != 1):
        raise DatasetError(
            f"{name}: classification needs one label per example, y_train "
            f"has shape {y_train.shape[1:]} per example"
        )
    for y, split in ((y_train, "y_train"), (y_test, "y_test")):
        if not np.all(np.equal(np.mod(y, 1), 0)) or np.min(y) < 0:
            raise DatasetError(
                f"{name}: {split} holds non-integer or negative values: "
                "classification needs labels 0, 1, ..., K-1 (regression "
                "targets? leave out the classification option, or use "
                f"{spell('task')} regression)"
            )
    return (
        y_train.reshape(-1).astype("int32"),
        y_test.reshape(-1).astype("int32"),
        note,
    )


def _is_one_hot(y):
    return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))
