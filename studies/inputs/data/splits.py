"""The validation split held out of the training split, and the training
subset a study may ask for (`train_size`)."""

import numpy as np

from studies.inputs.data.dataset import DatasetError

VALIDATION_FRACTION = 0.2


def validation_split(x, y, stratify=True):
    """A `VALIDATION_FRACTION` of (x, y) as validation (fixed seed; stratified
    by class for classification): `(x_train, y_train, x_val, y_val)`."""
    from sklearn.model_selection import train_test_split

    if len(x) < 2:
        raise DatasetError(
            f"the training split has {len(x)} example(s); it needs at least 2 to "
            "hold out a validation split"
        )
    try:
        split = train_test_split(
            x,
            y,
            test_size=VALIDATION_FRACTION,
            random_state=0,
            stratify=y if stratify else None,
        )
    except ValueError:  # a class too rare to stratify: a plain random split
        split = train_test_split(x, y, test_size=VALIDATION_FRACTION, random_state=0)
    x_train, x_val, y_train, y_val = split
    return x_train, y_train, x_val, y_val


def subsample(x, y, train_size, seed, name, spell=str):
    """A seeded random subset of `train_size` training examples (None: all);
    `spell(option)` is how the caller spells an option in messages."""
    if train_size is None:
        return x, y
    if train_size > len(x):
        raise DatasetError(
            f"{spell('train_size')} {train_size} is larger than the {len(x)} "
            f"training examples of {name}"
        )
    keep = np.random.default_rng(seed).permutation(len(x))[:train_size]
    return x[keep], y[keep]
