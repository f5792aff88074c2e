"""BN's scale invariance, measured: hidden kernels scaled by `a` and trained
by plain SGD at rate `a**2 * lr` (every other variable at `lr`) follow the
scale-1 trajectory at rate `lr`, up to the factor `a`, but for BN's epsilon;
without BN they do not.

Why: BN of `a * z` is `(z - mean) / sqrt(var + eps / a**2)`, so the net
computes the same function but for epsilon; the gradient of a kernel scaled
by `a` is `1 / a` times the scale-1 one, so a step of rate `a**2 * lr` moves
`W_a / a` by the scale-1 step. What epsilon changes is the normalization's
denominator, by a relative `(eps / 2 var) * |1 - 1 / a**2|` at most (`var`:
the smallest variance of a normalized unit at the start); that, added up over
the steps, is the tolerance (measured: 1 to 7 times the per-step change).
At Keras's default epsilon (1e-3) and `a = 0.1` the per-step change is 2%,
as large as the difference without BN: the invariance needs `eps / a**2`
small against the units' variances.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kbn

STEPS, BATCH, LR = 20, 32, 0.1


def _mlp(normalize, epsilon):
    """8 -> 16 -> 16 -> 3, ReLU; BN (no bias) after each hidden Dense."""
    layers = [keras.Input((8,))]
    for i in range(2):
        layers.append(
            keras.layers.Dense(
                16,
                use_bias=not normalize,
                kernel_initializer=keras.initializers.HeNormal(seed=i),
                name=f"hidden_{i}",
            )
        )
        if normalize:
            layers.append(kbn.BatchNormalization(epsilon=epsilon))
        layers.append(keras.layers.Activation("relu"))
    layers.append(
        keras.layers.Dense(3, kernel_initializer=keras.initializers.HeNormal(seed=9))
    )
    return keras.Sequential(layers)


def _batches():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS, BATCH, 8))
    y = np.argmax(x[..., :3] + 0.5 * rng.normal(size=(STEPS, BATCH, 3)), -1)
    return x, y


def _hidden(model):
    return [model.get_layer(f"hidden_{i}").kernel for i in range(2)]


def _train(model, a, batches):
    """Plain SGD: the hidden kernels at `a**2 * LR`, everything else at `LR`."""
    hidden = {id(v) for v in _hidden(model)}
    for x, y in zip(*batches, strict=True):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y, logits, True)
            )
        variables = model.trainable_variables
        for v, g in zip(variables, tape.gradient(loss, variables), strict=True):
            v.assign_sub((a**2 * LR if id(v) in hidden else LR) * g)


def _trajectories(a, normalize, epsilon):
    """Max relative difference of `W_a / a` from `W_1` per hidden kernel after
    training, and the smallest variance of a normalized unit at the start."""
    batches = _batches()
    models = []
    for scale in (1.0, a):
        model = _mlp(normalize, epsilon)
        for kernel in _hidden(model):
            kernel.assign(kernel * scale)
        models.append(model)
    first = _hidden(models[0])[0]
    variance = float(np.min(np.var(batches[0][0] @ np.asarray(first), axis=(0, 1))))
    for model, scale in zip(models, (1.0, a), strict=True):
        _train(model, scale, batches)
    return [
        float(np.max(np.abs(np.asarray(w) / a - np.asarray(w1))) / np.max(np.abs(w1)))
        for w, w1 in zip(_hidden(models[1]), _hidden(models[0]), strict=True)
    ], variance


@pytest.mark.parametrize("a", [0.1, 10.0])
@pytest.mark.parametrize("epsilon", [1e-10, 1e-6])
def test_bn_hidden_weights_follow_the_scale_1_trajectory_but_for_epsilon(a, epsilon):
    keras.config.set_dtype_policy("float64")
    differences, variance = _trajectories(a, True, epsilon)
    # the relative change of BN's denominator from epsilon, at most
    per_step = epsilon / (2 * variance) * abs(1 - a**-2)
    tolerance = STEPS * per_step + 1e-13  # and float64 round-off
    assert max(differences) < tolerance, (differences, tolerance)


@pytest.mark.parametrize("a", [0.1, 10.0])
def test_without_bn_the_scaled_net_does_not_follow(a):
    keras.config.set_dtype_policy("float64")
    differences, _ = _trajectories(a, False, 1e-3)
    assert min(differences) > 0.05, differences
