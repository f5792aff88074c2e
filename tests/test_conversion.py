"""kbn.convert: same outputs and weights with the other BN class, original untouched."""

import keras
import numpy as np
import pytest
from bn_toolbox import (
    MODELS,
    bn_count,
    bn_types,
    inputs_for,
    layers,
    predict,
    randomize_statistics,
    subclassed_model,
    weights_of,
)

import kbn
from kbn.conversion import CUMULATIVE_AVERAGE_MOMENTUM, convert

STOCK = keras.layers.BatchNormalization
ATOL = 1e-6


def assert_same_model(converted, original, x, atol=ATOL):
    """Same weights (by path) and the same inference outputs."""
    np.testing.assert_allclose(predict(converted, x), predict(original, x), atol=atol)
    want = weights_of(original)
    got = weights_of(converted)
    assert got.keys() == want.keys()
    for path, value in want.items():
        np.testing.assert_array_equal(got[path], value, err_msg=path)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_stock_to_kbn_and_back(name):
    original = randomize_statistics(MODELS[name]())
    x = inputs_for(original)
    before = weights_of(original)

    converted = convert(original)
    assert set(bn_types(converted)) == {kbn.BatchNormalization}
    assert bn_count(converted) == bn_count(original)
    assert_same_model(converted, original, x)

    back = convert(converted, to="keras")
    assert set(bn_types(back)) == {STOCK}
    assert_same_model(back, original, x)

    # The original is untouched: same classes, same weights.
    assert set(bn_types(original)) == {STOCK}
    for path, value in weights_of(original).items():
        np.testing.assert_array_equal(value, before[path])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_kbn_to_keras_and_back(name):
    original = randomize_statistics(MODELS[name](kbn.BatchNormalization), seed=3)
    x = inputs_for(original)
    to_keras = convert(original, to="keras")
    assert set(bn_types(to_keras)) == {STOCK}
    assert_same_model(to_keras, original, x)
    round_trip = convert(to_keras, to="kbn")
    assert set(bn_types(round_trip)) == {kbn.BatchNormalization}
    assert_same_model(round_trip, original, x)
    assert set(bn_types(original)) == {kbn.BatchNormalization}


def test_resnet50_round_trip():
    original = keras.applications.ResNet50(
        weights=None, input_shape=(32, 32, 3), classes=10
    )
    randomize_statistics(original)
    x = inputs_for(original, n=2)
    converted = convert(original)
    assert bn_types(converted) == [kbn.BatchNormalization] * 53
    assert_same_model(converted, original, x)
    back = convert(converted, to="keras")
    assert bn_types(back) == [STOCK] * 53
    assert_same_model(back, original, x)


def test_configuration_is_preserved():
    bn = STOCK(
        axis=1,
        momentum=0.7,
        epsilon=1e-2,
        center=False,
        scale=False,
        name="my_bn",
        renorm=True,
        renorm_clipping={"rmax": 2.0},
        renorm_momentum=0.5,
        gamma_regularizer="l2",
        trainable=False,
    )
    original = keras.Sequential([keras.Input((4, 5)), bn])
    converted = convert(original)
    layer = converted.get_layer("my_bn")
    assert isinstance(layer, kbn.BatchNormalization)
    config = {k: v for k, v in layer.get_config().items() if k in bn.get_config()}
    assert config == bn.get_config()
    assert (layer.momentum, layer.epsilon, layer.axis) == (0.7, 1e-2, 1)
    assert not layer.center and not layer.scale and not layer.trainable
    assert layer.compile_moments == "auto" and layer.noise is None


def test_kbn_only_arguments_are_dropped():
    bn = kbn.BatchNormalization(
        axis=[-1],
        momentum=None,
        compile_moments=False,
        virtual_batch_size=2,
        unbiased_moving_variance=True,
        noise="covariate_shift",
        seed=4,
        name="cumulative",
    )
    original = keras.Sequential([keras.Input((3, 5)), layers.Dense(4), bn])
    x = inputs_for(original, n=8)
    original(x, training=True)  # counts batches in num_batches_tracked
    randomize_statistics(original)

    converted = convert(original, to="keras")
    layer = converted.get_layer("cumulative")
    assert type(layer) is STOCK
    assert layer.momentum == CUMULATIVE_AVERAGE_MOMENTUM == 0.99
    assert layer.axis == -1
    assert [w.name for w in layer.weights] == [
        "gamma",
        "beta",
        "moving_mean",
        "moving_variance",
    ]
    np.testing.assert_allclose(predict(converted, x), predict(original, x), atol=ATOL)

    # Back to kbn: the Keras momentum stays, the counter does not come back.
    again = convert(converted).get_layer("cumulative")
    assert again.momentum == 0.99 and again.num_batches_tracked is None
    assert again.noise is None and again.virtual_batch_size is None


def test_kbn_layers_are_copied_whole_when_converting_to_kbn():
    bn = kbn.BatchNormalization(momentum=None, noise="adjustment", seed=2, name="n")
    original = keras.Sequential([keras.Input((5,)), bn])
    original(np.ones((4, 5), "float32"), training=True)
    layer = convert(original).get_layer("n")
    assert layer is not bn and layer.noise == bn.noise and layer.seed == 2
    assert int(layer.num_batches_tracked.numpy()) == 1


def test_shared_layer_stays_shared():
    shared = STOCK(name="shared")
    inputs = keras.Input((4,))
    outputs = layers.Add()([shared(inputs), shared(layers.Dense(4)(inputs))])
    original = randomize_statistics(keras.Model(inputs, outputs))
    converted = convert(original)
    assert bn_count(converted) == 1
    assert_same_model(converted, original, inputs_for(original))


def test_multi_axis_layer_cannot_go_to_keras():
    original = keras.Sequential(
        [keras.Input((3, 4, 5)), kbn.BatchNormalization(axis=[1, 2], name="two_axes")]
    )
    with pytest.raises(ValueError, match="two_axes"):
        convert(original, to="keras")


@pytest.mark.parametrize("to", ["Keras", "torch", None])
def test_unknown_target(to):
    with pytest.raises(ValueError, match="`to`"):
        convert(MODELS["sequential"](), to=to)


def test_subclassed_and_unbuilt_models_are_refused():
    with pytest.raises(ValueError, match="subclassed"):
        convert(subclassed_model())
    with pytest.raises(ValueError, match="never built"):
        convert(keras.Sequential([layers.Dense(2), STOCK()]))


def test_bn_inside_a_subclassed_layer_is_refused():
    inputs = keras.Input((4,))
    outputs = layers.Dense(2)(subclassed_model()(inputs))
    with pytest.raises(ValueError, match="subclassed"):
        convert(keras.Model(inputs, outputs))
