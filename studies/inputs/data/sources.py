"""Where a dataset's four arrays come from: a built-in name, a `.npz` file,
`MODULE:FUNCTION`, or Python values (the arrays, a dict, or tf.data)."""

import os

import numpy as np

from studies.inputs import plugins
from studies.inputs.data import builtin, tf_data
from studies.inputs.data.dataset import DatasetError

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def arrays(source, name, spell=str, call=False):
    """`((x_train, y_train, x_test, y_test), built_in)` from any source.

    `source` is a built-in name, a `.npz` path, the function a
    `MODULE:FUNCTION` names (loaded once, by `studies.inputs.resolved`), or
    Python values. `built_in` is the source's own scaling (`builtin.SCALING`:
    a description and a divisor) for a built-in dataset, None for any other.
    `spell(option)` is how the caller spells an option in messages. `call`
    says `source` is a `MODULE:FUNCTION`'s function, to be called for the
    arrays; any other callable is not data, and is refused as such.
    """
    if isinstance(source, str):
        if source.endswith(".npz"):
            return _npz(source), None
        if source in builtin.NAMES:
            return builtin.arrays(source), builtin.SCALING[source]
        raise DatasetError(
            f"unknown dataset {source!r}: choose one of {', '.join(builtin.NAMES)}, "
            "a .npz file with x_train, y_train, x_test, y_test, or MODULE:FUNCTION"
        )
    if call:
        return _from_function(source, f"{spell('dataset')} {name}"), None
    return _from_python(source, spell("dataset")), None


def _from_function(function, what):
    try:
        value = function()
    except Exception as error:
        raise DatasetError(
            f"{what} raised {type(error).__name__}: {plugins.first_line(error)}"
        ) from None
    return _from_python(value, what)


def _from_python(value, what):
    """The four arrays from a tuple, a dict, or a `(train, test)` tf.data pair."""
    if isinstance(value, dict):
        return _four_arrays(value, f"{what} returned a dict without")
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(tf_data.is_tf_dataset(v) for v in value)
    ):
        return (
            *tf_data.materialize(value[0], "train"),
            *tf_data.materialize(value[1], "test"),
        )
    if isinstance(value, list | tuple) and len(value) == 4:
        return tuple(value)
    raise DatasetError(
        f"{what} must be (x_train, y_train, x_test, y_test), a dict with those "
        f"keys, or a pair of tf.data.Datasets (train, test); got "
        f"{type(value).__name__}"
        + (f" of length {len(value)}" if isinstance(value, list | tuple) else "")
    )


def _npz(path):
    if not os.path.isfile(path):
        raise DatasetError(f"dataset file {path!r} does not exist")
    try:
        with np.load(path) as data:
            found = {key: data[key] for key in _NPZ_KEYS if key in data}
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read dataset file {path!r}: {error}") from None
    return _four_arrays(found, f"dataset file {path!r} lacks")


def _four_arrays(found, lacks):
    """`found`'s x_train, y_train, x_test, y_test, or a message naming the missing."""
    missing = [key for key in _NPZ_KEYS if key not in found]
    if missing:
        raise DatasetError(
            f"{lacks} {', '.join(missing)} (it needs {', '.join(_NPZ_KEYS)})"
        )
    return tuple(found[key] for key in _NPZ_KEYS)
