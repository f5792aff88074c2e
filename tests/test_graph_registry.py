"""Models with kbn leave nothing more in TensorFlow's gradient registry than
models with the stock layer: no traced graph is kept alive per model.

A graph-mode `tf.custom_gradient` registers its gradient function, which holds
the graph it was traced in, under a fresh `CustomGradient-<n>` name that
nothing removes; kbn's kernel registers its gradients once per parameter
shape and settings (`kbn.kernels.registered_gradient`), and its plain
formulation has none. Every entry counts, whatever its name.
"""

import keras
import numpy as np
from tensorflow.python.framework import ops

import kbn

X = np.random.default_rng(0).normal(size=(96, 3, 4)).astype("float32")
Y = np.zeros((96, 1), "float32")


def _entries():
    return sum(
        n.startswith("CustomGradient-") for n in ops._gradient_registry._registry
    )


def _fit_and_drop(norm):
    keras.backend.clear_session()
    model = keras.Sequential(
        [keras.Input((3, 4)), keras.layers.Dense(8), norm(), keras.layers.Flatten()]
        + [keras.layers.Dense(1)]
    )
    model.compile("sgd", "mse")
    # A short last batch: two traces of the training step.
    model.fit(X, Y, batch_size=40, epochs=1, verbose=0)


def _left_per_model(norm, models=1):
    _fit_and_drop(norm)  # the first model may trace what every later one reuses
    start = _entries()
    for _ in range(models):
        _fit_and_drop(norm)
    return (_entries() - start) / models


def test_kbn_models_leave_no_more_registry_entries_than_stock():
    """With every call on the kernel (`compile_moments=True`); "auto" at this
    size takes the plain formulation, which registers nothing at all."""
    stock = _left_per_model(keras.layers.BatchNormalization)
    ours = _left_per_model(lambda: kbn.BatchNormalization(compile_moments=True))
    assert ours <= stock, (ours, stock)
