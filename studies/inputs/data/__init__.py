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

Modules: `builtin` (the built-in datasets and their scaling), `sources`
(files, `MODULE:FUNCTION`, Python values), `tf_data` (tf.data read into
memory), `checks` (arrays and targets checked), `splits` (validation split
and training subset), `scaling`, `dataset` (the `Dataset` and its
fingerprint). `load` runs them in that order; callers import from here.
"""

from studies.inputs.data import checks, scaling, sources, splits
from studies.inputs.data.builtin import KERAS_DATASETS, NAMES, OFFLINE
from studies.inputs.data.dataset import Dataset, DatasetError
from studies.inputs.data.splits import VALIDATION_FRACTION
from studies.science import tasks

__all__ = [
    "KERAS_DATASETS",
    "NAMES",
    "OFFLINE",
    "VALIDATION_FRACTION",
    "Dataset",
    "DatasetError",
    "load",
]


def load(
    source,
    train_size=None,
    seed=0,
    task=None,
    feature_scaling="auto",
    name=None,
    target_scaling="auto",
    spell=None,
    call=False,
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
        call: `source` is the function a `MODULE:FUNCTION` names: call it
            for the data.

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
    arrays, built_in = sources.arrays(source, name, spell, call)
    x_train, y_train, x_test, y_test = checks.checked(arrays, name)
    task, y_train, y_test, how = checks.targets(y_train, y_test, task, name, spell)
    # the validation split first: scaling statistics come from the rows
    # that are trained on, never from validation or test
    x_train, y_train, x_val, y_val = splits.validation_split(
        x_train, y_train, stratify=task == tasks.CLASSIFICATION
    )
    (x_train, x_val, x_test), description = scaling.scaled(
        (x_train, x_val, x_test), feature_scaling, built_in
    )
    description += how
    if task == tasks.REGRESSION:
        (y_train, y_val, y_test), note = scaling.scaled_targets(
            (y_train, y_val, y_test), target_scaling
        )
        description += note
    x_train, y_train = splits.subsample(x_train, y_train, train_size, seed, name, spell)
    return Dataset(
        name, x_train, y_train, x_val, y_val, x_test, y_test, task, description
    )
