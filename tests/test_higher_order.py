"""Second-order gradients on both paths against float64 central differences.

Batch Renorm holds its correction constant in the gradient (a stop_gradient
of a function of x), so finite differences do not apply to it; it is compared
with the stock layer's second order instead.

The quantity is a gradient penalty, `P = ||dL/dx||^2` with
`L = sum(w * y^2)`: its gradient with respect to `x` and `gamma` needs the
derivative of the layer's backward pass, which a first-order test never sees.
"""

import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import central_differences

import kbn

OPTIONS = {
    "plain": {},
    "ghost-uneven": dict(virtual_batch_size=3),  # 7 rows: ghosts of 3, 2, 2
    "noise": dict(noise=kbn.noise.BatchStatistics(strength=0.5), seed=3),
}


def _layer(compile_moments, **options):
    return kbn.BatchNormalization(
        dtype="float64",
        compile_moments=compile_moments,
        gamma_initializer=keras.initializers.RandomUniform(0.5, 1.5, seed=3),
        beta_initializer=keras.initializers.RandomUniform(-1, 1, seed=4),
        **options,
    )


# By the layer itself, not id(layer): a dead layer's id is reused by the next
# one, which then got the dead layer's state (a flaky length mismatch).
_INITIAL_STATE = weakref.WeakKeyDictionary()


def _penalty(layer, x, w):
    """`||dL/dx||^2`, reproducible: the layer's state is reset on every call.

    Renorm's correction reads statistics that each call moves, and the noise
    seed advances, so both go back to where they started.
    """
    if not layer.built:
        layer.build(x.shape)
    state = layer.non_trainable_variables
    if getattr(layer, "_seed_generator", None) is not None:
        state = state + [layer._seed_generator.state]
    if layer not in _INITIAL_STATE:
        _INITIAL_STATE[layer] = [v.numpy() for v in state]
    initial = _INITIAL_STATE[layer]
    for variable, value in zip(state, initial, strict=True):
        variable.assign(value)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(w * layer(x, training=True) ** 2)
    return tf.reduce_sum(tape.gradient(loss, x) ** 2)


def _central_differences(f, value):
    return central_differences(f, value, h=1e-5)


# "auto" is the plain formulation at these sizes; the kernel (True) runs by
# default on the plain options and in full with -m slow.
@pytest.mark.parametrize(
    "compile_moments,option",
    [
        (compile_moments, option)
        if compile_moments != True or option == "plain"  # noqa: E712
        else pytest.param(compile_moments, option, marks=pytest.mark.slow)
        for compile_moments in ("auto", True, False)
        for option in sorted(OPTIONS)
    ],
)
@pytest.mark.parametrize("shape", [(7, 3), (7, 2, 2)])
def test_gradient_penalty_matches_central_differences(option, compile_moments, shape):
    rng = np.random.default_rng(5)
    layer = _layer(compile_moments, **OPTIONS[option])
    layer.build(shape)
    x = tf.constant(rng.normal(size=shape) * 2 + 1)
    w = tf.constant(rng.normal(size=shape))
    with tf.GradientTape() as outer:
        outer.watch(x)
        penalty = _penalty(layer, x, w)
    dx, dgamma = outer.gradient(penalty, [x, layer.gamma])

    expected_dx = _central_differences(
        lambda v: _penalty(layer, tf.constant(v), w), x.numpy()
    )
    scale = max(1.0, np.abs(expected_dx).max())
    np.testing.assert_allclose(dx.numpy(), expected_dx, atol=1e-5 * scale)

    original = layer.gamma.numpy()

    def with_gamma(value):
        layer.gamma.assign(value)
        out = _penalty(layer, x, w)
        layer.gamma.assign(original)
        return out

    expected_dgamma = _central_differences(with_gamma, original)
    scale = max(1.0, np.abs(expected_dgamma).max())
    np.testing.assert_allclose(dgamma.numpy(), expected_dgamma, atol=1e-5 * scale)


def test_compiled_and_portable_second_order_agree_inside_tf_function():
    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(size=(16, 4)) * 3, tf.float32)
    w = tf.constant(rng.normal(size=(16, 4)), tf.float32)
    results = []
    for compile_moments in ("auto", True, False):
        layer = kbn.BatchNormalization(compile_moments=compile_moments)
        _penalty(layer, x, w)  # records the initial state eagerly

        @tf.function
        def hessian_vector(x, layer=layer):
            with tf.GradientTape() as outer:
                outer.watch(x)
                penalty = _penalty(layer, x, w)
            return outer.gradient(penalty, x)

        results.append(hessian_vector(x).numpy())
    for got in results[:-1]:
        np.testing.assert_allclose(got, results[-1], rtol=1e-4, atol=1e-4)


def test_third_order_is_finite_and_matches_the_portable_path():
    x = tf.constant(np.random.default_rng(7).normal(size=(6, 2)))
    out = []
    for compile_moments in ("auto", True, False):
        layer = _layer(compile_moments)
        with tf.GradientTape() as t3:
            t3.watch(x)
            with tf.GradientTape() as t2:
                t2.watch(x)
                with tf.GradientTape() as t1:
                    t1.watch(x)
                    y = tf.reduce_sum(layer(x, training=True) ** 3)
                g1 = tf.reduce_sum(t1.gradient(y, x) ** 2)
            g2 = tf.reduce_sum(t2.gradient(g1, x) ** 2)
        out.append(t3.gradient(g2, x).numpy())
    for got in out[:-1]:
        np.testing.assert_allclose(got, out[-1], rtol=1e-8, atol=1e-8)


def test_renorm_second_order_matches_the_stock_layer():
    rng = np.random.default_rng(8)
    x = tf.constant(rng.normal(size=(8, 3)) * 2 + 1)
    w = tf.constant(rng.normal(size=(8, 3)))
    options = dict(
        renorm=True,
        renorm_clipping={"rmax": 1.5, "dmax": 0.5},
        dtype="float64",
        gamma_initializer=keras.initializers.RandomUniform(0.5, 1.5, seed=3),
    )
    grads = []
    for layer in (
        keras.layers.BatchNormalization(**options),
        kbn.BatchNormalization(**options),
    ):
        layer.build(x.shape)
        with tf.GradientTape() as outer:
            outer.watch(x)
            penalty = _penalty(layer, x, w)
        grads.append([g.numpy() for g in outer.gradient(penalty, [x, layer.gamma])])
    for ours, stock in zip(grads[1], grads[0], strict=True):
        np.testing.assert_allclose(ours, stock, rtol=1e-9, atol=1e-9)


def test_inside_jit_compile_the_plain_formulation_is_exact_to_second_order(
    monkeypatch,
):
    """Under `jit_compile=True` the layer emits plain TensorFlow (no nested
    kernel: building one fails the test) and XLA differentiates it: outputs,
    moving statistics and a Hessian-vector product match the portable path."""
    from kbn.kernels import tensorflow as tf_kernel

    def refuse(*args):
        raise AssertionError("a nested kernel was built inside XLA")

    monkeypatch.setattr(tf_kernel, "_train_kernel", refuse)
    monkeypatch.setattr(tf_kernel, "_infer_kernel", refuse)
    rng = np.random.default_rng(9)
    x = tf.constant(rng.normal(size=(16, 2, 3)) * 3 + 1e4, tf.float32)
    w = tf.constant(rng.normal(size=(16, 2, 3)), tf.float32)
    results = []
    for compile_moments, jit in (("auto", True), (False, False)):
        layer = kbn.BatchNormalization(compile_moments=compile_moments, momentum=0.5)
        layer.build(x.shape)

        @tf.function(jit_compile=jit)
        def step(x, layer=layer):
            with tf.GradientTape() as outer:
                outer.watch(x)
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    y = layer(x, training=True)
                    loss = tf.reduce_sum(w * y**2)
                penalty = tf.reduce_sum(inner.gradient(loss, x) ** 2)
            return y, outer.gradient(penalty, x), layer(x, training=False)

        out = [t.numpy() for t in step(x)]
        results.append(out + [layer.moving_mean.numpy(), layer.moving_variance.numpy()])
    for got, want in zip(*results, strict=True):
        scale = max(1.0, np.abs(want).max())
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)
