"""Config round trips, .keras files, weight interchange with the stock layer, export."""

import keras
import numpy as np
import pytest

import kbn

FULL_CONFIG = dict(
    axis=[1, 2],
    momentum=None,
    epsilon=1e-4,
    center=False,
    scale=True,
    gamma_initializer="random_uniform",
    gamma_regularizer="l2",
    gamma_constraint="non_neg",
    compile_moments=False,
    virtual_batch_size=2,
    unbiased_moving_variance=True,
    noise=kbn.noise.Adjustment(scale_range=0.2, shift_range=0.3, seed=5),
    seed=11,
)


def test_get_config_round_trips_every_argument():
    layer = kbn.BatchNormalization(**FULL_CONFIG)
    config = layer.get_config()
    clone = kbn.BatchNormalization.from_config(config)
    assert clone.get_config() == config
    for name in ("axis", "momentum", "epsilon", "virtual_batch_size", "seed"):
        assert getattr(clone, name) == FULL_CONFIG[name]
    assert clone.noise == FULL_CONFIG["noise"]
    assert clone.unbiased_moving_variance is True
    assert clone.compile_moments is False


def test_registered_under_the_kbn_package():
    assert keras.saving.get_registered_name(kbn.BatchNormalization) == (
        "kbn>BatchNormalization"
    )
    layer = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(kbn.BatchNormalization(momentum=0.5))
    )
    assert isinstance(layer, kbn.BatchNormalization) and layer.momentum == 0.5


def _model(bn):
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras.layers.Conv2D(4, 3, use_bias=False),
            bn,
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )


@pytest.mark.parametrize("noise", [None, "covariate_shift"])
def test_keras_file_loads_in_safe_mode_with_identical_outputs(tmp_path, noise):
    model = _model(kbn.BatchNormalization(momentum=0.5, noise=noise, seed=1))
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 3)).astype("float32")
    model.fit(x, np.zeros((8, 2)), epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.layers[1], kbn.BatchNormalization)
    assert loaded.layers[1].noise == model.layers[1].noise
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_weights_interchange_with_the_stock_layer(tmp_path):
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 3)).astype("float32")
    stock = _model(keras.layers.BatchNormalization(momentum=0.5))
    stock.compile("sgd", "mse")
    stock.fit(x, np.zeros((8, 2)), epochs=2, verbose=0)
    stock.save_weights(tmp_path / "stock.weights.h5")
    ours = _model(kbn.BatchNormalization(momentum=0.5))
    ours.compile("sgd", "mse")
    ours.load_weights(tmp_path / "stock.weights.h5")
    np.testing.assert_allclose(
        ours.predict(x, verbose=0), stock.predict(x, verbose=0), atol=1e-5
    )
    ours.fit(x, np.ones((8, 2)), epochs=1, verbose=0)
    ours.save_weights(tmp_path / "kbn.weights.h5")
    stock.load_weights(tmp_path / "kbn.weights.h5")
    np.testing.assert_allclose(
        stock.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-5
    )


def test_export_to_saved_model(tmp_path):
    import tensorflow as tf

    model = _model(kbn.BatchNormalization())
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 3)).astype("float32")
    model(x, training=True)
    model.export(str(tmp_path / "exported"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "exported"))
    np.testing.assert_allclose(
        reloaded.serve(tf.constant(x)).numpy(), model.predict(x, verbose=0), atol=1e-5
    )
