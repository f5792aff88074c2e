"""Datasets for the studies, as float32 arrays with integer labels.

Offline: `digits` (scikit-learn, 1797 8x8 images; the default), `mnist1d`
(generated locally with `make_dataset`, never downloaded), `synthetic`
(scikit-learn's `make_classification`) and any `.npz` file holding
`x_train`, `y_train`, `x_test`, `y_test`. Online or cached: `mnist`,
`fashion_mnist`, `cifar10` through `keras.datasets`.

Every dataset is split three ways: the source's test split is held out and
only reported; a stratified `VALIDATION_FRACTION` of its training split
(fixed seed) is the validation split that studies select on. Selecting "the
best" on the numbers that are then reported would flatter every variant.

Every failure is a `DatasetError` whose message says what to do, so the
command line can print it in one line.
"""

import dataclasses
import os

import numpy as np

OFFLINE = ("digits", "mnist1d", "synthetic")
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
NAMES = OFFLINE + KERAS_DATASETS
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
VALIDATION_FRACTION = 0.2


class DatasetError(ValueError):
    """A dataset that cannot be loaded, with a message for the user."""


@dataclasses.dataclass
class Dataset:
    """Training, validation and test arrays plus what a model needs to know.

    `x_*` keep their natural shape (images as H x W x C, sequences as
    L x 1, tabular data flat), scaled to about unit range; `y_*` are int32.
    The validation split comes out of the source's training split; the test
    split is the source's own.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def input_shape(self):
        return self.x_train.shape[1:]

    @property
    def num_classes(self):
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1

    @property
    def chance(self):
        """Accuracy of always predicting the most frequent validation class."""
        return _majority(self.y_val)

    @property
    def test_chance(self):
        """Accuracy of always predicting the most frequent test class."""
        return _majority(self.y_test)

    def describe(self):
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} validation "
            f"/ {len(self.x_test)} test, input {tuple(self.input_shape)}, "
            f"{self.num_classes} classes"
        )


def _majority(labels):
    return float(np.bincount(labels).max() / len(labels))


def is_dataset_name(name):
    return name in NAMES or str(name).endswith(".npz")


def load(name, train_size=None, seed=0):
    """Loads a dataset by name (or `.npz` path), optionally subsampling training.

    Args:
        name: One of `NAMES` or a path ending in `.npz`.
        train_size: Keep this many training examples (a seeded random subset),
            or None for all of them.
        seed: Seed of the training subset.

    Returns:
        A `Dataset` (its validation split taken from the training split
        before any subsampling).

    Raises:
        DatasetError: unknown name, missing file or keys, a download that
            failed, or a `train_size` larger than the training set.
    """
    if str(name).endswith(".npz"):
        arrays = _npz(name)
    elif name == "digits":
        arrays = _digits()
    elif name == "mnist1d":
        arrays = _mnist1d()
    elif name == "synthetic":
        arrays = _synthetic()
    elif name in KERAS_DATASETS:
        arrays = _keras_dataset(name)
    else:
        raise DatasetError(
            f"unknown dataset {name!r}: choose one of {', '.join(NAMES)} "
            "or a .npz file with x_train, y_train, x_test, y_test"
        )
    x_train, y_train, x_test, y_test = (np.asarray(a) for a in arrays)
    x_train, x_test = _scale(x_train), _scale(x_test)
    y_train = y_train.reshape(-1).astype("int32")
    y_test = y_test.reshape(-1).astype("int32")
    x_train, y_train, x_val, y_val = _validation_split(x_train, y_train)
    if train_size is not None:
        if train_size > len(x_train):
            raise DatasetError(
                f"--train-size {train_size} is larger than the {len(x_train)} "
                f"training examples of {name}"
            )
        keep = np.random.default_rng(seed).permutation(len(x_train))[:train_size]
        x_train, y_train = x_train[keep], y_train[keep]
    return Dataset(str(name), x_train, y_train, x_val, y_val, x_test, y_test)


def _validation_split(x, y):
    """A stratified `VALIDATION_FRACTION` of (x, y) as validation (fixed seed)."""
    from sklearn.model_selection import train_test_split

    if len(x) < 2:
        raise DatasetError(
            f"the training split has {len(x)} example(s); it needs at least 2 to "
            "hold out a validation split"
        )
    try:
        split = train_test_split(
            x, y, test_size=VALIDATION_FRACTION, random_state=0, stratify=y
        )
    except ValueError:  # a class too rare to stratify: a plain random split
        split = train_test_split(x, y, test_size=VALIDATION_FRACTION, random_state=0)
    x_train, x_val, y_train, y_val = split
    return x_train, y_train, x_val, y_val


def _scale(x):
    """Integer pixels to [0, 1], everything as float32."""
    if np.issubdtype(x.dtype, np.integer):
        x = x / 255.0
    return x.astype("float32")


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32").reshape(-1, 8, 8, 1)
    split = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return _reorder(split)


def _reorder(split):
    """sklearn's (x_train, x_test, y_train, y_test) as (x_train, y_train, ...)."""
    x_train, x_test, y_train, y_test = split
    return x_train, y_train, x_test, y_test


def _mnist1d():
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(
        get_dataset_args()
    )  # generated locally; get_dataset would download
    x, x_test = data["x"].astype("float32"), data["x_test"].astype("float32")
    scale = x.std()
    return x[..., None] / scale, data["y"], x_test[..., None] / scale, data["y_test"]


def _synthetic():
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=2500,
        n_features=32,
        n_informative=16,
        n_redundant=4,
        n_classes=10,
        n_clusters_per_class=1,
        class_sep=1.5,
        random_state=0,
    )
    x = x.astype("float32")
    return x[:2000], y[:2000], x[2000:], y[2000:]


def _keras_dataset(name):
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as error:  # a download failure surfaces in many types
        cache = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
        raise DatasetError(
            f"dataset {name!r} is not cached in {cache} and could not be "
            f"downloaded ({type(error).__name__}: {error}); use an offline "
            "dataset (digits, mnist1d, synthetic) or a .npz file"
        ) from None
    if x_train.ndim == 3:  # grey images get a channel axis for Conv2D
        x_train, x_test = x_train[..., None], x_test[..., None]
    return x_train, y_train, x_test, y_test


def _npz(path):
    if not os.path.isfile(path):
        raise DatasetError(f"dataset file {path!r} does not exist")
    try:
        with np.load(path) as data:
            found = {key: data[key] for key in _NPZ_KEYS if key in data}
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read dataset file {path!r}: {error}") from None
    missing = [key for key in _NPZ_KEYS if key not in found]
    if missing:
        raise DatasetError(
            f"dataset file {path!r} lacks {', '.join(missing)} "
            f"(it needs {', '.join(_NPZ_KEYS)})"
        )
    arrays = tuple(found[key] for key in _NPZ_KEYS)
    for x, y, split in (
        (arrays[0], arrays[1], "train"),
        (arrays[2], arrays[3], "test"),
    ):
        if len(x) != len(y) or len(x) == 0:
            raise DatasetError(
                f"dataset file {path!r}: x_{split} and y_{split} must be non-empty "
                f"and the same length (got {len(x)} and {len(y)})"
            )
    return arrays
