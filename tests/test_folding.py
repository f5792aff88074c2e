"""kbn.fold: BN folded into the layer before it, same inference outputs."""

import keras
import numpy as np
import pytest
from bn_toolbox import (
    BN_CLASSES,
    MODELS,
    bn_count,
    inputs_for,
    layers,
    predict,
    randomize_statistics,
    subclassed_model,
    weights_of,
)
from conftest import run_script

import kbn
from kbn.folding import FOLDABLE, fold, fold_weights

TOL = dict(rtol=1e-4, atol=1e-5)

# (layer, input shape): every foldable class, with and without a bias.
LAYERS = {
    "dense": (lambda: layers.Dense(6), (5,)),
    "dense_sequence": (lambda: layers.Dense(6, use_bias=False), (4, 5)),
    "conv1d": (lambda: layers.Conv1D(6, 3), (9, 3)),
    "conv2d": (lambda: layers.Conv2D(6, 3, use_bias=False, strides=2), (9, 9, 3)),
    "conv3d": (lambda: layers.Conv3D(6, 2), (4, 5, 4, 2)),
    "depthwise1d": (lambda: layers.DepthwiseConv1D(3, depth_multiplier=2), (9, 3)),
    "depthwise2d": (
        lambda: layers.DepthwiseConv2D(3, depth_multiplier=3, use_bias=False),
        (7, 7, 2),
    ),
    "separable1d": (lambda: layers.SeparableConv1D(6, 3, depth_multiplier=2), (9, 3)),
    "separable2d": (lambda: layers.SeparableConv2D(6, 3, use_bias=False), (7, 7, 3)),
}


def assert_same_outputs(folded, original, x):
    np.testing.assert_allclose(predict(folded, x), predict(original, x), **TOL)


def single(name, bn, **bn_kwargs):
    make, shape = LAYERS[name]
    model = keras.Sequential([keras.Input(shape), make(), bn(**bn_kwargs)])
    return randomize_statistics(model)


@pytest.mark.parametrize("bn", sorted(BN_CLASSES))
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_folds_into_every_supported_layer(name, bn):
    original = single(name, BN_CLASSES[bn])
    before = weights_of(original)
    folded = fold(original)
    assert bn_count(folded) == 0 and bn_count(original) == 1
    producer = folded.layers[0]
    assert type(producer) is type(original.layers[0]) and producer.use_bias
    assert isinstance(folded.layers[1], keras.layers.Identity)
    assert folded.layers[1].name == original.layers[1].name
    assert_same_outputs(folded, original, inputs_for(original))
    after = weights_of(original)
    assert all(np.array_equal(after[p], v) for p, v in before.items())


@pytest.mark.parametrize("center,scale", [(False, True), (True, False), (False, False)])
def test_folds_without_center_or_scale(center, scale):
    original = single(
        "conv2d", keras.layers.BatchNormalization, center=center, scale=scale
    )
    folded = fold(original)
    assert bn_count(folded) == 0
    assert_same_outputs(folded, original, inputs_for(original))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_fold_where_they_can(name):
    original = randomize_statistics(MODELS[name]())
    folded = fold(original)
    # conv: the BN after global pooling stays. Sequential: both follow a Dense.
    # nested: all three follow a conv, two of them inside nested models.
    kept = {"functional": 1, "sequential": 0, "nested": 0}[name]
    assert bn_count(folded) == kept
    assert_same_outputs(folded, original, inputs_for(original))


def test_bn_after_an_activation_is_kept():
    inputs = keras.Input((6, 6, 3))
    h = layers.Conv2D(4, 3, activation="relu")(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = layers.Conv2D(4, 3)(layers.ReLU()(h))
    original = randomize_statistics(
        keras.Model(inputs, keras.layers.BatchNormalization()(h))
    )
    folded = fold(original)
    assert bn_count(folded) == 1
    assert_same_outputs(folded, original, inputs_for(original))


def test_output_read_twice_is_not_folded():
    inputs = keras.Input((6, 6, 3))
    conv = layers.Conv2D(4, 3)(inputs)
    h = keras.layers.BatchNormalization()(conv)
    model = keras.Model(inputs, layers.Add()([h, layers.ReLU()(conv)]))
    original = randomize_statistics(model)
    folded = fold(original)
    assert bn_count(folded) == 1
    assert_same_outputs(folded, original, inputs_for(original))
    # The same when the other reader is the model's output.
    both = randomize_statistics(keras.Model(inputs, [conv, h]))
    assert bn_count(fold(both)) == 1


def test_shared_layers_are_not_folded():
    conv = layers.Conv2D(3, 1)
    inputs = keras.Input((5, 5, 3))
    h = keras.layers.BatchNormalization()(conv(inputs))
    h = conv(h)
    original = randomize_statistics(keras.Model(inputs, h))
    folded = fold(original)
    assert bn_count(folded) == 1
    assert_same_outputs(folded, original, inputs_for(original))


def test_nested_model_called_twice_is_folded_once():
    block = keras.Sequential(
        [keras.Input((4,)), layers.Dense(4), keras.layers.BatchNormalization()]
    )
    inputs = keras.Input((4,))
    original = randomize_statistics(keras.Model(inputs, block(block(inputs))))
    folded = fold(original)
    assert bn_count(folded) == 0
    assert_same_outputs(folded, original, inputs_for(original))


@pytest.mark.parametrize(
    "producer,shape",
    [(lambda: layers.Dense(4), (4, 5)), (lambda: layers.Conv1D(4, 1), (6, 3))],
)
def test_bn_over_another_axis_is_kept(producer, shape):
    original = keras.Sequential(
        [keras.Input(shape), producer(), keras.layers.BatchNormalization(axis=1)]
    )
    randomize_statistics(original)
    folded = fold(original)
    assert bn_count(folded) == 1
    assert_same_outputs(folded, original, inputs_for(original))


def test_bn_over_several_axes_is_kept():
    original = single("conv1d", kbn.BatchNormalization, axis=[1, 2])
    assert bn_count(fold(original)) == 1


def test_only_the_exact_classes_fold():
    class MyDense(layers.Dense):
        pass

    original = keras.Sequential(
        [keras.Input((4,)), MyDense(3), keras.layers.BatchNormalization()]
    )
    assert bn_count(fold(original)) == 1
    assert set(FOLDABLE) == {
        layers.Dense,
        layers.Conv1D,
        layers.Conv2D,
        layers.Conv3D,
        layers.DepthwiseConv1D,
        layers.DepthwiseConv2D,
        layers.SeparableConv1D,
        layers.SeparableConv2D,
    }


def test_subclassed_models_are_refused():
    with pytest.raises(ValueError, match="subclassed"):
        fold(subclassed_model())


def test_fold_weights_arithmetic():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 2, 4))  # depthwise: 2 inputs x multiplier 4
    bias, mean, beta = rng.normal(size=(3, 8))
    variance, gamma = rng.uniform(0.5, 2.0, size=(2, 8))
    new_kernel, new_bias = fold_weights(
        kernel, bias, mean, variance, 1e-3, gamma, beta, channel_axes=2
    )
    scale = gamma / np.sqrt(variance + 1e-3)
    for i in range(2):
        for m in range(4):
            channel = i * 4 + m
            np.testing.assert_allclose(
                new_kernel[..., i, m], kernel[..., i, m] * scale[channel]
            )
    np.testing.assert_allclose(new_bias, (bias - mean) * scale + beta)
    no_bias, _ = fold_weights(kernel.reshape(9, 8), None, mean, variance, 1e-3)
    np.testing.assert_allclose(no_bias, kernel.reshape(9, 8) / np.sqrt(variance + 1e-3))
    with pytest.raises(ValueError, match="output channels"):
        fold_weights(kernel, bias, mean, variance, 1e-3, channel_axes=1)


def test_channels_first_on_jax():
    # TensorFlow runs no channels_first convolution on CPU; JAX does.
    out = run_script(
        """
import keras, numpy as np
assert keras.backend.backend() == "jax"
import kbn
from kbn.folding import fold
from kbn.conversion import convert
rng = np.random.default_rng(0)
L = keras.layers
for make, shape in [
    (lambda: L.Conv2D(4, 3, data_format="channels_first"), (3, 7, 7)),
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=2, data_format="channels_first"),
     (3, 7, 7)),
    (lambda: L.SeparableConv1D(4, 3, data_format="channels_first"), (3, 9)),
    (lambda: L.Conv3D(4, 2, data_format="channels_first", use_bias=False),
     (2, 4, 4, 4)),
]:
    for bn in (keras.layers.BatchNormalization, kbn.BatchNormalization):
        layer = bn(axis=1)
        model = keras.Sequential([keras.Input(shape), make(), layer])
        n = layer.moving_mean.shape
        layer.moving_mean.assign(rng.normal(size=n))
        layer.moving_variance.assign(rng.uniform(0.5, 2, size=n))
        layer.gamma.assign(rng.uniform(0.5, 2, size=n))
        layer.beta.assign(rng.normal(size=n))
        x = rng.normal(size=(3,) + shape).astype("float32")
        folded = fold(model)
        assert not any(isinstance(la, keras.layers.BatchNormalization)
                       for la in folded.layers)
        np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)),
                                   rtol=1e-4, atol=1e-5)
        # Last-axis BN after a channels_first layer: not its channel axis.
        other = keras.Sequential([keras.Input(shape), make(), bn()])
        assert isinstance(fold(other).layers[-1], keras.layers.BatchNormalization)
        to = "keras" if bn is kbn.BatchNormalization else "kbn"
        converted = convert(model, to=to)
        np.testing.assert_allclose(np.asarray(converted(x)), np.asarray(model(x)),
                                   atol=1e-5)
print("jax ok")
""",
        env={"KERAS_BACKEND": "jax"},
    )
    assert "jax ok" in out
