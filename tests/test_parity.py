"""kbn.BatchNormalization behaves exactly like keras.layers.BatchNormalization."""

import numpy as np
import pytest
from conftest import assert_same_layer_behaviour, make_pair

# (input shape, feature axis): ranks 2 to 5, feature axis first, middle, last.
SHAPES = [
    ((16, 6), -1),
    ((16, 6), 0),
    ((8, 5, 6), -1),
    ((8, 5, 6), 1),
    ((4, 5, 6, 3), -1),
    ((4, 3, 5, 6), 1),
    ((4, 5, 6, 3), 2),
    ((2, 3, 4, 5, 3), -1),
    ((2, 3, 4, 5, 3), 1),
]


@pytest.mark.parametrize("compile_moments", ["auto", True, False])
@pytest.mark.parametrize("shape,axis", SHAPES)
def test_matches_stock_layer(shape, axis, compile_moments):
    stock, ours = make_pair(axis=axis, momentum=0.8, compile_moments=compile_moments)
    assert_same_layer_behaviour(stock, ours, shape)


# The kernel itself (True) in every dtype: slow; the contract tests check it
# in float16 and float32 against float64 NumPy by default.
@pytest.mark.parametrize(
    "compile_moments", ["auto", pytest.param(True, marks=pytest.mark.slow), False]
)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_matches_stock_layer_in_every_dtype(dtype, compile_moments):
    stock, ours = make_pair(momentum=0.5, dtype=dtype, compile_moments=compile_moments)
    assert_same_layer_behaviour(stock, ours, (32, 8, 4), dtype=dtype)


@pytest.mark.parametrize("center,scale", [(False, True), (True, False), (False, False)])
def test_matches_stock_layer_without_center_or_scale(center, scale):
    stock, ours = make_pair(center=center, scale=scale, momentum=0.7)
    assert_same_layer_behaviour(stock, ours, (8, 4, 4, 5))


@pytest.mark.parametrize("shape", [(6, 7, 5), (3, 4, 6, 5)])
def test_matches_stock_layer_with_mask(shape):
    def mask_fn(rng, shape):
        mask = rng.random(shape[:-1]) > 0.3
        mask.flat[0] = True
        return mask

    stock, ours = make_pair(momentum=0.6)
    assert_same_layer_behaviour(stock, ours, shape, mask_fn=mask_fn)


def test_matches_stock_layer_with_renorm():
    kwargs = dict(
        renorm=True,
        renorm_clipping={"rmax": 2.0, "rmin": 0.5, "dmax": 1.0},
        renorm_momentum=0.9,
        momentum=0.8,
    )
    stock, ours = make_pair(**kwargs)
    assert_same_layer_behaviour(stock, ours, (16, 5), steps=4)


def test_matches_stock_layer_with_regularizers_and_constraints():
    stock, ours = make_pair(
        gamma_regularizer="l2",
        beta_regularizer="l1",
        gamma_constraint="non_neg",
        beta_constraint=None,
    )
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    stock(x, training=True)
    ours(x, training=True)
    np.testing.assert_allclose(
        [float(v) for v in ours.losses], [float(v) for v in stock.losses], rtol=1e-6
    )
    assert ours.gamma.constraint is not None


def test_non_trainable_layer_runs_in_inference_mode():
    stock, ours = make_pair()
    stock.trainable = False
    ours.trainable = False
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32") + 3.0
    y = ours(x, training=True)
    np.testing.assert_allclose(
        np.asarray(y), np.asarray(stock(x, training=True)), atol=1e-6
    )
    np.testing.assert_array_equal(ours.moving_mean.numpy(), np.zeros(4, "float32"))


def test_inside_a_fitted_model_matches_stock():
    import keras

    x = np.random.default_rng(0).normal(size=(64, 10)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")

    def model(bn_cls):
        keras.utils.set_random_seed(7)
        return keras.Sequential(
            [
                keras.Input((10,)),
                keras.layers.Dense(16, use_bias=False),
                bn_cls(),
                keras.layers.Activation("relu"),
                keras.layers.Dense(2),
            ]
        )

    import kbn

    histories = []
    for cls in (keras.layers.BatchNormalization, kbn.BatchNormalization):
        m = model(cls)
        m.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        histories.append(m.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False))
    np.testing.assert_allclose(
        histories[0].history["loss"], histories[1].history["loss"], rtol=1e-4
    )
