"""A user's `tf.data.Dataset`s read once into memory, so every cell sees the
same examples, split and batches."""

import numpy as np

from studies.inputs.data.dataset import DatasetError


def is_tf_dataset(value):
    """Whether `value` is a `tf.data.Dataset` (without importing TensorFlow)."""
    return type(value).__module__.startswith("tensorflow") and hasattr(
        value, "as_numpy_iterator"
    )


def materialize(dataset, split):
    """A finite, batched tf.data.Dataset of `(x, y)` as two arrays.

    Batched as `model.fit` takes it: every element is a batch whose x and y
    have the same leading size. An unbatched dataset is refused rather than
    guessed at (its vector elements would read as batches).

    Raises:
        DatasetError: the dataset is infinite, empty, unbatched, does not
            yield `(x, y)` pairs, or its batches do not fit together.
    """
    import tensorflow as tf

    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise DatasetError(
            f"the {split} tf.data.Dataset is infinite (a .repeat()?); give a "
            "finite one: the study reads it once into memory"
        )
    xs, ys = [], []
    for element in dataset.as_numpy_iterator():
        x, y = _batch(element, split)
        xs.append(x)
        ys.append(y)
    if not xs:
        raise DatasetError(f"the {split} tf.data.Dataset is empty")
    try:
        return np.concatenate(xs), np.concatenate(ys)
    except ValueError as error:
        raise DatasetError(
            f"the {split} tf.data.Dataset's batches do not fit together: {error}"
        ) from None


def _batch(element, split):
    """One element of the dataset as an `(x, y)` batch of arrays, checked."""
    if not isinstance(element, tuple) or len(element) != 2:
        what = (
            f"{len(element)}-tuples"
            if isinstance(element, tuple)
            else (type(element).__name__)
        )
        raise DatasetError(
            f"the {split} tf.data.Dataset must yield (x, y) pairs, got {what} "
            "(sample weights and dict inputs are not supported)"
        )
    x, y = (np.asarray(a) for a in element)
    if x.ndim < 2 or y.ndim < 1 or len(x) != len(y):
        raise DatasetError(
            f"the {split} tf.data.Dataset does not yield batches (x of shape "
            f"{x.shape}, y of shape {y.shape}): call .batch(n) on it, as "
            "model.fit needs"
        )
    return x, y
