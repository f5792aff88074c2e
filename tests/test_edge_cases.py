"""Odd-but-legal values, empty batches, and option combinations once wrong."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_same_layer_behaviour, make_pair, to_numpy

import kbn
from kbn.kernels import tensorflow as tf_kernel


class RecordingNoise(kbn.noise.NoiseModel):
    """Records the `M` the layer hands to the noise model; adds no noise."""

    def __init__(self, seed=None):
        super().__init__(seed)
        self.counts = []

    def affine(self, gamma, beta, *, feature_shape, count, seed):
        self.counts.append(np.asarray(keras.ops.convert_to_numpy(count)).ravel()[0])
        return gamma, beta


# ------------------------------------------------------- values Keras accepts


@pytest.mark.parametrize("compile_moments", ["auto", False])
def test_momentum_one_freezes_the_statistics_as_in_keras(compile_moments):
    stock, ours = make_pair(momentum=1.0, compile_moments=compile_moments)
    assert_same_layer_behaviour(stock, ours, (8, 3))
    np.testing.assert_array_equal(ours.moving_mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(ours.moving_variance.numpy(), np.ones(3))


@pytest.mark.parametrize("compile_moments", ["auto", False])
def test_epsilon_zero_matches_keras(compile_moments):
    stock, ours = make_pair(epsilon=0.0, compile_moments=compile_moments)
    assert_same_layer_behaviour(stock, ours, (8, 3))


def test_numpy_integer_axis_is_an_axis_and_serializes():
    layer = kbn.BatchNormalization(axis=np.int64(1))
    y = layer(np.ones((4, 3, 2), "float32"), training=True)
    assert y.shape == (4, 3, 2)
    assert layer.moving_mean.shape == (3,)
    config = layer.get_config()
    json.dumps(config)
    assert kbn.BatchNormalization.from_config(config).axis == 1
    assert kbn.BatchNormalization(axis=[np.int32(1), 2]).axis == [1, 2]


# ------------------------------------------------------------- empty batches


@pytest.mark.parametrize("momentum", [0.5, None])
@pytest.mark.parametrize("compile_moments", ["auto", False])
@pytest.mark.parametrize("virtual_batch_size", [None, 4])
@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_empty_batch_passes_through_and_changes_nothing(
    compile_moments, momentum, virtual_batch_size, jit
):
    layer = kbn.BatchNormalization(
        momentum=momentum,
        compile_moments=compile_moments,
        virtual_batch_size=virtual_batch_size,
    )
    layer(np.random.default_rng(0).normal(size=(6, 3)).astype("float32"), training=True)
    before = [v.numpy().copy() for v in layer.non_trainable_variables]

    @tf.function(
        input_signature=[tf.TensorSpec((None, 3), tf.float32)], jit_compile=jit
    )
    def dynamic(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y)
        return y, tape.gradient(loss, [x, layer.gamma, layer.beta])

    empty = np.zeros((0, 3), "float32")
    assert layer(empty, training=True).shape == (0, 3)  # static shape
    y, grads = dynamic(empty)
    assert y.shape == (0, 3)
    assert all(np.all(np.isfinite(to_numpy(g))) for g in grads)
    for variable, value in zip(layer.non_trainable_variables, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)


@pytest.mark.parametrize(
    "options, shape",
    [
        (dict(renorm=True), (None, 3)),
        (dict(momentum=None, virtual_batch_size=2), (None, 3)),
        (dict(unbiased_moving_variance=True), (None, 3)),
        (dict(compile_moments=True), (None, 4, 4, 3)),
        (dict(axis=1), (None, 3, 4)),
        (dict(noise=kbn.noise.BatchStatistics(normalize_with="moving")), (None, 3)),
    ],
    ids=["renorm", "cma_ghosts", "unbiased", "kernel_rank4", "axis1", "moving"],
)
def test_empty_batch_leaves_every_statistic_bit_for_bit(options, shape):
    """An empty batch whose size is known only at run time moves no
    statistic (the update's rate is 0 there), on every path and option."""
    layer = kbn.BatchNormalization(**options)
    rng = np.random.default_rng(0)
    full = (6,) + shape[1:]
    for _ in range(2):  # statistics away from their initial values
        layer(rng.normal(size=full).astype("float32") * 3 + 1, training=True)
    before = [v.numpy().copy() for v in layer.non_trainable_variables]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def step(x):
        return layer(x, training=True)

    assert step(np.zeros((0,) + shape[1:], "float32")).shape[0] == 0
    for variable, value in zip(layer.non_trainable_variables, before, strict=True):
        if "seed_generator" in variable.path:  # noise draws advance; no statistic
            continue
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)


def test_empty_masked_batch_leaves_the_statistics():
    layer = kbn.BatchNormalization()
    x = np.random.default_rng(0).normal(size=(4, 5, 3)).astype("float32")
    layer(x, training=True, mask=np.ones((4, 5), bool))
    before = [v.numpy().copy() for v in layer.non_trainable_variables]

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, 5, 3), tf.float32),
            tf.TensorSpec((None, 5), tf.bool),
        ]
    )
    def step(x, mask):
        return layer(x, training=True, mask=mask)

    step(np.zeros((0, 5, 3), "float32"), np.zeros((0, 5), bool))
    for variable, value in zip(layer.non_trainable_variables, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)


@pytest.mark.parametrize("compile_moments", ["auto", False])
@pytest.mark.parametrize(
    "options",
    [dict(renorm=True), dict(noise="batch_statistics"), dict(noise="adjustment")],
    ids=["renorm", "batch_statistics", "adjustment"],
)
@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_empty_batch_gradients_stay_finite_with_renorm_and_noise(
    options, compile_moments, jit
):
    layer = kbn.BatchNormalization(compile_moments=compile_moments, **options)
    layer.build((None, 3))

    @tf.function(
        input_signature=[tf.TensorSpec((None, 3), tf.float32)], jit_compile=jit
    )
    def grads(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True))
        return tape.gradient(loss, layer.trainable_weights)

    for grad in grads(np.zeros((0, 3), "float32")):
        np.testing.assert_array_equal(to_numpy(grad), 0.0)


# ------------------------------------------------------------------- renorm


def test_renorm_with_moving_mode_noise_updates_every_statistic():
    noise = kbn.noise.BatchStatistics(strength=0.0, normalize_with="moving")
    layer = kbn.BatchNormalization(renorm=True, momentum=0.5, noise=noise)
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32") * 3 + 2
    layer(x, training=True)
    stock = keras.layers.BatchNormalization(renorm=True, momentum=0.5)
    stock(x, training=True)
    for name in ("moving_mean", "moving_variance", "renorm_mean", "renorm_stddev"):
        np.testing.assert_allclose(
            getattr(layer, name).numpy(), getattr(stock, name).numpy(), rtol=1e-5
        )
        assert not np.allclose(
            getattr(layer, name).numpy(), 0.0 if "mean" in name else 1.0
        )


def test_unbiased_moving_variance_does_not_leak_into_renorm():
    x = np.random.default_rng(1).normal(size=(6, 3)).astype("float32") * 2
    biased, unbiased = (
        kbn.BatchNormalization(renorm=True, momentum=0.0, unbiased_moving_variance=u)
        for u in (False, True)
    )
    for _ in range(3):
        y_biased = to_numpy(biased(x, training=True))
        y_unbiased = to_numpy(unbiased(x, training=True))
    # Renorm's correction and outputs are those of the batch's own statistics...
    np.testing.assert_allclose(y_unbiased, y_biased, rtol=1e-6)
    np.testing.assert_allclose(
        unbiased.renorm_stddev.numpy(), biased.renorm_stddev.numpy(), rtol=1e-6
    )
    # ...while the inference statistics are Bessel-corrected.
    m = len(x)
    np.testing.assert_allclose(
        unbiased.moving_variance.numpy(),
        x.astype("float64").var(0) * m / (m - 1),
        rtol=1e-4,
    )


def test_renorm_with_ghost_batches_corrects_each_ghost():
    x = np.concatenate(
        [
            np.random.default_rng(2).normal(size=(4, 2)) * s + o
            for s, o in ((1, 0), (3, 5))
        ]
    ).astype("float32")
    layer = kbn.BatchNormalization(
        renorm=True, virtual_batch_size=4, renorm_clipping={"rmax": 1.0, "dmax": 0.0}
    )
    y = to_numpy(layer(x, training=True))
    expected = []
    for ghost in np.split(x.astype("float64"), 2):
        std = np.sqrt(ghost.var(0) + 1e-3)
        r = np.minimum(std / 1.0, 1.0)  # renorm_stddev starts at 1
        expected.append((ghost - ghost.mean(0)) / std * r)
    np.testing.assert_allclose(y, np.concatenate(expected), atol=1e-5)


# ----------------------------------------------------------- compile_moments


def test_compile_moments_true_is_honoured_in_moving_mode(monkeypatch):
    calls = []
    original = tf_kernel.batch_moments
    monkeypatch.setattr(
        tf_kernel,
        "batch_moments",
        lambda *a, **k: calls.append(1) or original(*a, **k),
    )
    noise = kbn.noise.BatchStatistics(strength=0.0, normalize_with="moving")
    layer = kbn.BatchNormalization(compile_moments=True, noise=noise, momentum=0.0)
    x = (np.random.default_rng(3).normal(size=(64, 3)) + 1e4).astype("float32")
    layer(x, training=True)
    assert calls, "the compiled moments were not used"
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), x.astype("float64").var(0), rtol=1e-3
    )
    with pytest.raises(ValueError, match="compile_moments"):
        layer(np.zeros((2, 3), "float32"), training=True, mask=np.ones((2,)))


# --------------------------------------------------------------- noise's M


def test_batch_statistics_noise_counts_only_unmasked_values():
    noise = RecordingNoise()
    layer = kbn.BatchNormalization(noise=noise)
    x = np.ones((4, 5, 3), "float32")
    mask = np.zeros((4, 5), bool)
    mask[:, :2] = True  # 8 of 20 positions
    layer(x, training=True, mask=mask)
    layer(x, training=True)
    assert noise.counts == [8.0, 20.0]


@pytest.mark.parametrize("compile_moments", ["auto", False])
def test_noise_m_is_the_ghost_batch_size(compile_moments):
    noise = RecordingNoise()
    layer = kbn.BatchNormalization(
        noise=noise, virtual_batch_size=4, compile_moments=compile_moments
    )
    layer(np.ones((8, 2, 3), "float32"), training=True)  # 2 ghosts of 4 rows x 2
    layer(np.ones((10, 2, 3), "float32"), training=True)  # 3 ghosts: 4, 3, 3 rows
    np.testing.assert_allclose(noise.counts, [8.0, 20.0 / 3.0])


def test_mc_predict_uses_the_same_m_for_every_chunk_and_ghost_batches():
    noise = RecordingNoise()
    model = keras.Sequential(
        [keras.Input((3,)), kbn.BatchNormalization(noise=noise, virtual_batch_size=8)]
    )
    x = np.random.default_rng(4).normal(size=(70, 3)).astype("float32")
    kbn.mc_predict(model, x, samples=2, batch_size=32)  # chunks 32, 32, 6
    assert noise.counts and set(noise.counts) == {8.0}
    assert model.layers[0].inference_noise is None  # restored afterwards
