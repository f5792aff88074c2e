"""Ghost BN for any batch: eager, tf.function, fit's short batch, tf.distribute."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_script, to_numpy

import kbn

EPS = 1e-3


def expected_ghosts(x, virtual_batch_size):
    """float64 reference: ceil(n / v) ghost batches, the first n mod g one larger."""
    n = len(x)
    g = max(-(-n // virtual_batch_size), 1)
    sizes = [n // g + (1 if i < n % g else 0) for i in range(g)]
    out, start = [], 0
    axes = tuple(range(x.ndim - 1))
    for size in sizes:
        chunk = x[start : start + size].astype("float64")
        mean = chunk.mean(axis=axes, keepdims=True)
        var = chunk.var(axis=axes, keepdims=True)
        out.append((chunk - mean) / np.sqrt(var + EPS))
        start += size
    return np.concatenate(out), sizes


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * 2 + np.linspace(-5, 5, shape[0]).reshape(
        (-1,) + (1,) * (len(shape) - 1)
    )
    return x.astype("float32")


@pytest.mark.parametrize("compile_moments", ["auto", False])
@pytest.mark.parametrize(
    "rows,virtual_batch_size", [(10, 4), (7, 3), (2, 4), (1, 4), (9, 3), (13, 5)]
)
def test_any_batch_splits_as_evenly_as_possible(
    rows, virtual_batch_size, compile_moments
):
    x = _data((rows, 2, 3))
    layer = kbn.BatchNormalization(
        virtual_batch_size=virtual_batch_size,
        momentum=0.0,
        compile_moments=compile_moments,
    )
    expected, sizes = expected_ghosts(x, virtual_batch_size)
    assert max(sizes) <= virtual_batch_size and max(sizes) - min(sizes) <= 1
    np.testing.assert_allclose(to_numpy(layer(x, training=True)), expected, atol=2e-4)
    # The moving statistics come from the whole batch.
    whole = x.astype("float64").reshape(-1, 3)
    np.testing.assert_allclose(layer.moving_mean.numpy(), whole.mean(0), atol=1e-4)
    np.testing.assert_allclose(layer.moving_variance.numpy(), whole.var(0), rtol=1e-4)


@pytest.mark.parametrize("compile_moments", ["auto", False])
def test_dynamic_batch_size_inside_tf_function(compile_moments):
    layer = kbn.BatchNormalization(
        virtual_batch_size=4, compile_moments=compile_moments
    )
    layer.build((None, 3))

    @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32)])
    def step(x):
        return layer(x, training=True)

    for rows in (8, 10, 3, 1):
        x = _data((rows, 3), seed=rows)
        expected, _ = expected_ghosts(x, 4)
        np.testing.assert_allclose(to_numpy(step(x)), expected, atol=2e-4)


@pytest.mark.parametrize("compile_moments", ["auto", False])
def test_gradients_with_uneven_ghosts_match_the_portable_path(compile_moments):
    x = tf.constant(_data((10, 3)))
    dy = tf.constant(np.random.default_rng(1).normal(size=(10, 3)), tf.float32)
    grads = []
    for mode in (compile_moments, False):
        layer = kbn.BatchNormalization(virtual_batch_size=4, compile_moments=mode)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * dy)
        grads.append([to_numpy(g) for g in tape.gradient(loss, [x, layer.gamma])])
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_fit_with_a_short_last_batch():
    # 10 samples, batch 8, virtual batch 4: the last batch of 2 is one ghost.
    x = _data((10, 6))
    model = keras.Sequential(
        [keras.Input((6,)), kbn.BatchNormalization(virtual_batch_size=4, momentum=0.0)]
    )
    model.compile("sgd", "mse")
    history = model.fit(
        x, np.zeros((10, 6)), batch_size=8, epochs=2, shuffle=False, verbose=0
    )
    assert np.all(np.isfinite(history.history["loss"]))
    layer = model.layers[0]
    last = x[8:].astype("float64")
    np.testing.assert_allclose(layer.moving_mean.numpy(), last.mean(0), atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), last.var(0), rtol=1e-4)


def test_under_mirrored_strategy_with_a_short_batch():
    run_script(
        """
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras
import kbn
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(5),
         kbn.BatchNormalization(virtual_batch_size=3)]
    )
    model.compile("sgd", "mse")
x = np.random.default_rng(0).normal(size=(11, 5)).astype("float32")
# Global batch 8: replicas see 4 + 4, then 2 + 1 rows.
history = model.fit(x, np.zeros((11, 5)), batch_size=8, epochs=2, verbose=0)
assert np.all(np.isfinite(history.history["loss"])), history.history
assert np.all(np.isfinite(model.layers[1].moving_variance.numpy()))
print("ok")
"""
    )
