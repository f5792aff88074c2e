"""The built-in datasets: offline (digits, MNIST-1D, synthetic) or through
`keras.datasets` (MNIST, Fashion-MNIST, CIFAR-10), and how each is scaled.
"""

import os

from studies.inputs.data.dataset import DatasetError

OFFLINE = ("digits", "mnist1d", "synthetic")
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
NAMES = OFFLINE + KERAS_DATASETS
# Rows of each source's training split, before the validation split takes
# its share: what a dry run (`studies.surfaces.plan`) sizes an epoch by
# without loading anything (tests/studies/test_cli_surface.py checks digits).
TRAIN_ROWS = {
    "digits": 1347,
    "mnist1d": 4000,
    "synthetic": 2000,
    "mnist": 60000,
    "fashion_mnist": 60000,
    "cifar10": 50000,
}
# How each built-in source is scaled (what `auto` does): a description and
# the divisor, computed from the training rows.
SCALING = {
    "digits": ("pixels / 16 (to [0, 1])", lambda x: 16.0),
    "mnist1d": ("divided by the training rows' std", lambda x: float(x.std())),
    "synthetic": ("as generated (unit-variance features)", lambda x: 1.0),
    "mnist": ("pixels / 255 (to [0, 1])", lambda x: 255.0),
    "fashion_mnist": ("pixels / 255 (to [0, 1])", lambda x: 255.0),
    "cifar10": ("pixels / 255 (to [0, 1])", lambda x: 255.0),
}


def arrays(name):
    """`(x_train, y_train, x_test, y_test)` of the built-in dataset `name`."""
    if name in _LOADERS:
        return _LOADERS[name]()
    return _keras_dataset(name)


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x.astype("float32").reshape(-1, 8, 8, 1)  # 0..16; scaled by SCALING
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


_LOADERS = {"digits": _digits, "mnist1d": _mnist1d, "synthetic": _synthetic}
