"""The arguments kbn adds, each against a float64 NumPy reference."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import to_numpy

import kbn

EPS = 1e-3


def reference_bn(x, reduce_axes):
    x = x.astype("float64")
    mean = x.mean(axis=reduce_axes, keepdims=True)
    var = x.var(axis=reduce_axes, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS), mean, var


@pytest.mark.parametrize("compile_moments", ["auto", False])
@pytest.mark.parametrize("shape", [(12, 5), (8, 3, 4, 2)])
def test_virtual_batch_size_normalizes_each_ghost_batch(shape, compile_moments):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=shape) * 2 + rng.normal(size=shape[-1:]) * 3).astype("float32")
    x[: shape[0] // 2] += 5.0  # ghost batches with different statistics
    layer = kbn.BatchNormalization(
        virtual_batch_size=shape[0] // 4, momentum=0.0, compile_moments=compile_moments
    )
    y = to_numpy(layer(x, training=True))
    reduce = tuple(range(1, len(shape)))[:-1]
    ghosts = np.split(x, 4)
    expected = np.concatenate([reference_bn(g, (0,) + reduce)[0] for g in ghosts])
    np.testing.assert_allclose(y, expected, atol=1e-4)
    whole = tuple(range(len(shape) - 1))
    np.testing.assert_allclose(layer.moving_mean.numpy(), x.mean(axis=whole), atol=1e-4)
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), x.astype("float64").var(axis=whole), rtol=1e-4
    )


def test_virtual_batch_size_model_saves_and_reloads(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(4),
            kbn.BatchNormalization(virtual_batch_size=4),
        ]
    )
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    model.fit(x, np.zeros((16, 4)), batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "ghost.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.layers[-1].virtual_batch_size == 4
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    loaded.fit(x, np.zeros((16, 4)), batch_size=8, epochs=1, verbose=0)


@pytest.mark.parametrize("compile_moments", ["auto", False])
def test_unbiased_moving_variance_uses_bessel_correction(compile_moments):
    x = np.random.default_rng(1).normal(size=(4, 3, 5)).astype("float32")
    layer = kbn.BatchNormalization(
        momentum=0.0, unbiased_moving_variance=True, compile_moments=compile_moments
    )
    layer(x, training=True)
    m = 4 * 3
    expected = x.astype("float64").var(axis=(0, 1)) * m / (m - 1)
    np.testing.assert_allclose(layer.moving_variance.numpy(), expected, rtol=1e-5)
    # The batch itself is still normalized with the biased variance.
    y = to_numpy(layer(x, training=True))
    np.testing.assert_allclose(y, reference_bn(x, (0, 1))[0], atol=1e-4)


def test_unbiased_moving_variance_counts_only_unmasked_values():
    x = np.random.default_rng(1).normal(size=(4, 6, 3)).astype("float32")
    mask = np.ones((4, 6), bool)
    mask[:, 3:] = False
    layer = kbn.BatchNormalization(momentum=0.0, unbiased_moving_variance=True)
    layer(x, training=True, mask=mask)
    kept = x[:, :3].reshape(-1, 3).astype("float64")
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), kept.var(axis=0, ddof=1), rtol=1e-4
    )


@pytest.mark.parametrize("compile_moments", ["auto", False])
def test_momentum_none_is_a_cumulative_average(compile_moments, tmp_path):
    rng = np.random.default_rng(2)
    batches = [
        (rng.normal(size=(10, 3)) * (i + 1) + i).astype("float32") for i in range(5)
    ]
    layer = kbn.BatchNormalization(momentum=None, compile_moments=compile_moments)
    for b in batches:
        layer(b, training=True)
    assert int(layer.num_batches_tracked.numpy()) == 5
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), np.mean([b.mean(0) for b in batches], 0), rtol=1e-5
    )
    np.testing.assert_allclose(
        layer.moving_variance.numpy(),
        np.mean([b.var(0) for b in batches], 0),
        rtol=1e-5,
    )
    # The counter is saved with the layer, so a reloaded layer keeps averaging.
    model = keras.Sequential([keras.Input((3,)), layer])
    model.save(tmp_path / "cma.keras")
    loaded = keras.saving.load_model(tmp_path / "cma.keras", safe_mode=True)
    assert int(loaded.layers[0].num_batches_tracked.numpy()) == 5
    assert loaded.layers[0].momentum is None


@pytest.mark.parametrize("compile_moments", ["auto", False])
@pytest.mark.parametrize(
    "axis,reduce", [([1, 3], (0, 2)), ((1, 2), (0, 3)), ([-1, 1], (0, 2))]
)
def test_axis_may_be_a_list(axis, reduce, compile_moments):
    x = np.random.default_rng(3).normal(size=(6, 3, 4, 5)).astype("float32") * 2 + 1
    layer = kbn.BatchNormalization(
        axis=axis, momentum=0.0, compile_moments=compile_moments
    )
    y = to_numpy(layer(x, training=True))
    expected, mean, var = reference_bn(x, reduce)
    np.testing.assert_allclose(y, expected, atol=1e-4)
    assert layer.gamma.shape == tuple(x.shape[i] for i in sorted(a % 4 for a in axis))
    np.testing.assert_allclose(layer.moving_mean.numpy(), np.squeeze(mean), atol=1e-5)
    # Inference normalizes with the moving statistics (here: this batch's).
    np.testing.assert_allclose(to_numpy(layer(x)), expected, atol=1e-4)


def test_compiled_and_portable_paths_agree_inside_tf_function():
    x = tf.random.normal((16, 4, 4, 8), seed=1) * 3 + 2
    layers = [kbn.BatchNormalization(compile_moments=c) for c in (True, False)]
    outs = [tf.function(lambda t, la=la: la(t, training=True))(x) for la in layers]
    np.testing.assert_allclose(outs[0].numpy(), outs[1].numpy(), atol=1e-5)
    np.testing.assert_allclose(
        layers[0].moving_variance.numpy(), layers[1].moving_variance.numpy(), rtol=1e-5
    )
