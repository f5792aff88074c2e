"""Datasets for the studies: built-in, from a file, or the user's own.

Sources (`load`):

- offline, built in: `digits` (scikit-learn, 1797 8x8 images; the default),
  `mnist1d` (generated locally with `make_dataset`, never downloaded),
  `synthetic` (scikit-learn's `make_classification`);
- online or cached: `mnist`, `fashion_mnist`, `cifar10` (`keras.datasets`);
- a `.npz` file holding `x_train`, `y_train`, `x_test`, `y_test`;
- `MODULE:FUNCTION`: a function returning those four arrays, as a tuple or a
  dict with those keys;
- from Python: the four arrays themselves (tuple or dict), or a pair
  `(train, test)` of `tf.data.Dataset`s yielding `(x, y)` batches, as `fit`
  takes them. They are read once into memory, so every cell sees the same
  examples, split and batches.

The task follows the targets: integer labels (or one-hot rows) mean
classification, float targets regression; `task` overrides it.

Scaling is stated, never silent (`Dataset.scaling`, printed and recorded):
built-in datasets get their documented scaling (digits / 16, MNIST-1D / its
std, pixels / 255); a file or the user's data is used as given unless
`feature_scaling="standardize"` (per feature, from the training split).

Every dataset is split three ways: the source's test split is held out and
only reported; a stratified `VALIDATION_FRACTION` of its training split
(fixed seed) is the validation split that studies select on. Selecting "the
best" on the numbers that are then reported would flatter every variant.

Every failure is a `DatasetError` whose message says what to do, so the
command line can print it in one line.
"""

import dataclasses
import hashlib
import os

import numpy as np

from studies.inputs import plugins
from studies.science import tasks

OFFLINE = ("digits", "mnist1d", "synthetic")
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
NAMES = OFFLINE + KERAS_DATASETS
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
VALIDATION_FRACTION = 0.2
SCALINGS = ("auto", "none", "standardize")  # features and targets
# How each built-in source is scaled (what `auto` does): a description and
# the divisor, computed from the training rows.
_BUILT_IN_SCALING = {
    "digits": ("pixels / 16 (to [0, 1])", lambda x: 16.0),
    "mnist1d": ("divided by the training rows' std", lambda x: float(x.std())),
    "synthetic": ("as generated (unit-variance features)", lambda x: 1.0),
    "mnist": ("pixels / 255 (to [0, 1])", lambda x: 255.0),
    "fashion_mnist": ("pixels / 255 (to [0, 1])", lambda x: 255.0),
    "cifar10": ("pixels / 255 (to [0, 1])", lambda x: 255.0),
}


class DatasetError(ValueError):
    """A dataset that cannot be loaded, with a message for the user."""


@dataclasses.dataclass
class Dataset:
    """Training, validation and test arrays plus what a model needs to know.

    `x_*` keep their natural shape (images as H x W x C, sequences as
    L x 1, tabular data flat) as float32; `y_*` are int32 labels
    (classification) or float32 targets of shape (N, outputs) (regression).
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
    task: str = tasks.CLASSIFICATION
    scaling: str = "as given"

    @property
    def input_shape(self):
        return self.x_train.shape[1:]

    @property
    def outputs(self):
        """Number of logits (classes) or regression targets."""
        if self.task == tasks.REGRESSION:
            return int(self.y_train.shape[1])
        return self.num_classes

    @property
    def num_classes(self):
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1

    @property
    def chance(self):
        """The score of a failed cell on validation: the majority class's
        accuracy, or R² 0 (the constant predictor) for regression."""
        if self.task == tasks.REGRESSION:
            return 0.0
        return _majority(self.y_val)

    @property
    def test_chance(self):
        """The same on the test split."""
        if self.task == tasks.REGRESSION:
            return 0.0
        return _majority(self.y_test)

    def baseline_loss(self, split):
        """MSE of predicting the training targets' mean on `split` (val, test,
        train): the denominator of R²."""
        y = {"train": self.y_train, "val": self.y_val, "test": self.y_test}[split]
        return float(np.mean((y - self.y_train.mean(axis=0)) ** 2))

    def describe(self):
        if self.task == tasks.REGRESSION:
            target = f"regression, {self.outputs} target(s)"
        else:
            target = f"{self.num_classes} classes"
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} validation "
            f"/ {len(self.x_test)} test, input {tuple(self.input_shape)}, "
            f"{target}; features {self.scaling}"
        )

    def fingerprint(self):
        """A hash of every split's values, shapes and dtypes (16 hex digits)."""
        digest = hashlib.sha256()
        for array in (
            self.x_train,
            self.y_train,
            self.x_val,
            self.y_val,
            self.x_test,
            self.y_test,
        ):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()[:16]

    def record(self):
        """What `dataset.json` keeps: enough to rebuild the report, and the
        fingerprint a resumed study must match."""
        info = {
            "description": self.describe(),
            "fingerprint": self.fingerprint(),
            "task": self.task,
            "scaling": self.scaling,
            "chance": self.chance,
            "test_chance": self.test_chance,
        }
        if self.task == tasks.REGRESSION:
            info["baseline_val_loss"] = self.baseline_loss("val")
            info["baseline_test_loss"] = self.baseline_loss("test")
        return info


def _majority(labels):
    return float(np.bincount(labels).max() / len(labels))


def load(
    source,
    train_size=None,
    seed=0,
    task=None,
    feature_scaling="auto",
    name=None,
    target_scaling="auto",
    spell=None,
):
    """Loads a dataset, optionally subsampling its training split.

    Args:
        source: One of `NAMES`, a path ending in `.npz`, the function a
            `MODULE:FUNCTION` names (loaded by `studies.inputs.resolved`),
            the arrays `(x_train, y_train, x_test, y_test)` (or a dict with
            those keys), or a pair of `tf.data.Dataset`s `(train, test)`.
        train_size: Keep this many training examples (a seeded random subset),
            or None for all of them.
        seed: Seed of the training subset.
        task: `classification`, `regression`, or None to follow the targets.
        feature_scaling: `auto` (built-in datasets: their own scaling; other
            data: none), `none`, or `standardize` (per feature, with the
            training split's mean and std).
        name: The dataset's name in reports (default: from `source`).
        target_scaling: Regression targets: `auto` or `standardize` (per
            target, with the training split's mean and std: R² is the same
            in any units, and the learning-rate grids suit unit-scale
            targets), or `none` (as given; losses in the targets' units).
        spell: Option name -> how the caller spells it, for messages
            (`--train-size` or `train_size`); default: the name itself.

    Returns:
        A `Dataset` (its validation split taken from the training split
        before any subsampling).

    Raises:
        DatasetError: unknown name, missing file or keys, a function that
            fails, arrays that do not fit together or hold NaN or inf,
            targets that do not fit `task`, a download that failed, or a
            `train_size` larger than the training set.
    """
    spell = spell or str
    name = name or (str(source) if isinstance(source, str) else "arrays")
    arrays, built_in = _arrays(source, name, spell)
    x_train, y_train, x_test, y_test = _checked(arrays, name)
    task, y_train, y_test, how = _targets(y_train, y_test, task, name, spell)
    # the validation split first: scaling statistics come from the rows
    # that are trained on, never from validation or test
    x_train, y_train, x_val, y_val = _validation_split(
        x_train, y_train, stratify=task == tasks.CLASSIFICATION
    )
    (x_train, x_val, x_test), scaling = _scaled(
        (x_train, x_val, x_test),
        feature_scaling,
        _BUILT_IN_SCALING.get(source) if built_in else None,
    )
    scaling += how
    if task == tasks.REGRESSION:
        (y_train, y_val, y_test), note = _scaled_targets(
            (y_train, y_val, y_test), target_scaling
        )
        scaling += note
    if train_size is not None:
        if train_size > len(x_train):
            raise DatasetError(
                f"{spell('train_size')} {train_size} is larger than the {len(x_train)} "
                f"training examples of {name}"
            )
        keep = np.random.default_rng(seed).permutation(len(x_train))[:train_size]
        x_train, y_train = x_train[keep], y_train[keep]
    return Dataset(name, x_train, y_train, x_val, y_val, x_test, y_test, task, scaling)


def _arrays(source, name, spell):
    """`((x_train, y_train, x_test, y_test), built_in)` from any source."""
    if isinstance(source, str):
        if source.endswith(".npz"):
            return _npz(source), False
        if source in _LOADERS:
            return _LOADERS[source](), True
        if source in KERAS_DATASETS:
            return _keras_dataset(source), True
        raise DatasetError(
            f"unknown dataset {source!r}: choose one of {', '.join(NAMES)}, "
            "a .npz file with x_train, y_train, x_test, y_test, or MODULE:FUNCTION"
        )
    if callable(source):
        return _from_function(source, f"{spell('dataset')} {name}"), False
    return _from_python(source, spell("dataset")), False


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
        and all(_is_tf_dataset(v) for v in value)
    ):
        return (*_materialize(value[0], "train"), *_materialize(value[1], "test"))
    if isinstance(value, list | tuple) and len(value) == 4:
        return tuple(value)
    raise DatasetError(
        f"{what} must be (x_train, y_train, x_test, y_test), a dict with those "
        f"keys, or a pair of tf.data.Datasets (train, test); got "
        f"{type(value).__name__}"
        + (f" of length {len(value)}" if isinstance(value, list | tuple) else "")
    )


def _is_tf_dataset(value):
    return type(value).__module__.startswith("tensorflow") and hasattr(
        value, "as_numpy_iterator"
    )


def _materialize(dataset, split):
    """A finite, batched tf.data.Dataset of `(x, y)` as two arrays.

    Batched as `model.fit` takes it: every element is a batch whose x and y
    have the same leading size. An unbatched dataset is refused rather than
    guessed at (its vector elements would read as batches).
    """
    import tensorflow as tf

    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise DatasetError(
            f"the {split} tf.data.Dataset is infinite (a .repeat()?); give a "
            "finite one: the study reads it once into memory"
        )
    xs, ys = [], []
    for element in dataset.as_numpy_iterator():
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


def _checked(arrays, name):
    """The four arrays as NumPy, checked to fit together and be finite."""
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
        if not (
            np.issubdtype(array.dtype, np.number)
            or np.issubdtype(array.dtype, np.bool_)
        ):
            raise DatasetError(f"{name}: {label} is not numeric ({array.dtype})")
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            bad = int(np.sum(~np.isfinite(array)))
            raise DatasetError(f"{name}: {label} holds {bad} NaN or inf value(s)")
    return x_train, y_train, x_test, y_test


def _targets(y_train, y_test, task, name, spell):
    """`(task, y_train, y_test, note)`: labels as int32 or targets as float32 (N, k)."""
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
    note = ""
    if task == tasks.CLASSIFICATION:
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
            task,
            y_train.reshape(-1).astype("int32"),
            y_test.reshape(-1).astype("int32"),
            note,
        )
    y_train, y_test = (
        y.reshape(len(y), -1).astype("float32") for y in (y_train, y_test)
    )
    return task, y_train, y_test, note


def _is_one_hot(y):
    return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))


def _standardized(splits):
    """The splits standardized with the first one's per-column mean and std."""
    mean = splits[0].mean(axis=0)
    std = splits[0].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    scaled = tuple(((a - mean) / std).astype("float32") for a in splits)
    return scaled, mean, std


def _scaled(splits, feature_scaling, built_in):
    """`(splits, description)`: features after the scaling asked for
    (`built_in`: the source's own, from `_BUILT_IN_SCALING`, or None)."""
    splits = tuple(a.astype("float32") for a in splits)
    if feature_scaling == "standardize":
        scaled, _, _ = _standardized(splits)
        return scaled, "standardized per feature with the training split's mean and std"
    if feature_scaling == "auto" and built_in:
        description, divisor = built_in
        factor = divisor(splits[0])
        return tuple((a / factor).astype("float32") for a in splits), description
    return splits, "as given (no scaling)"


def _scaled_targets(splits, target_scaling):
    """`(splits, note)`: regression targets, standardized unless `none`."""
    if target_scaling == "none":
        return splits, "; targets as given"
    scaled, mean, std = _standardized(splits)
    shown = ", ".join(f"{m:.4g} +- {s:.4g}" for m, s in zip(mean, std, strict=True))
    return scaled, (
        f"; targets standardized with the training split's mean +- std ({shown}), "
        "so losses are in those units"
    )


def _validation_split(x, y, stratify=True):
    """A `VALIDATION_FRACTION` of (x, y) as validation (fixed seed; stratified
    by class for classification)."""
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


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.astype("float32").reshape(-1, 8, 8, 1)  # 0..16; scaled in _scaled
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
    return x[..., None], data["y"], x_test[..., None], data["y_test"]


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
    from studies import quiet

    quiet.import_backend()
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
    return _four_arrays(found, f"dataset file {path!r} lacks")


def _four_arrays(found, lacks):
    """`found`'s x_train, y_train, x_test, y_test, or a message naming the missing."""
    missing = [key for key in _NPZ_KEYS if key not in found]
    if missing:
        raise DatasetError(
            f"{lacks} {', '.join(missing)} (it needs {', '.join(_NPZ_KEYS)})"
        )
    return tuple(found[key] for key in _NPZ_KEYS)


_LOADERS = {"digits": _digits, "mnist1d": _mnist1d, "synthetic": _synthetic}
