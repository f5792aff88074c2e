"""kbn.mc_predict: Monte-Carlo batch normalization."""

import keras
import numpy as np
import pytest

import kbn


def _model(noise=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, use_bias=False),
            kbn.BatchNormalization(noise=noise),
            keras.layers.Activation("tanh"),
            keras.layers.Dense(1),
        ]
    )
    x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    model.compile("sgd", "mse")
    model.fit(x, x[:, :1], epochs=1, batch_size=32, verbose=0)
    return model, x


def test_std_shrinks_as_the_effective_batch_grows():
    model, x = _model()
    stds = [
        kbn.mc_predict(model, x[:64], samples=16, batch_size=m, seed=0)[1].mean()
        for m in (4, 64)
    ]
    # Batch-statistics noise scales as 1/sqrt(M): 16x the batch, ~1/4 the spread.
    assert 2.5 < stds[0] / stds[1] < 6.0


def test_mean_tracks_the_deterministic_prediction_and_leaves_state_alone():
    model, x = _model()
    before = [w.numpy().copy() for w in model.weights]
    mean, std = kbn.mc_predict(model, x, samples=32, batch_size=256, seed=1)
    plain = model.predict(x, verbose=0)
    assert mean.shape == plain.shape == std.shape
    np.testing.assert_allclose(mean, plain, atol=5 * std.max() / np.sqrt(32) + 1e-3)
    for a, b in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    np.testing.assert_array_equal(model.predict(x, verbose=0), plain)


def test_uses_the_layers_own_noise_model_and_is_reproducible():
    model, x = _model(noise=kbn.noise.CovariateShift())
    a = kbn.mc_predict(model, x[:16], samples=4, seed=3)
    b = kbn.mc_predict(model, x[:16], samples=4, seed=3)
    np.testing.assert_array_equal(a[1], b[1])
    assert np.all(a[1] > 0)


def test_errors():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="kbn.BatchNormalization"):
        kbn.mc_predict(plain, np.zeros((2, 3)))
    model, x = _model()
    with pytest.raises(ValueError, match="samples"):
        kbn.mc_predict(model, x, samples=1)
    with pytest.raises(ValueError, match="batch_size"):
        kbn.mc_predict(model, x, batch_size=0)
