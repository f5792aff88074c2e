"""Shared fixtures and helpers for the kbn tests (TensorFlow backend)."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import kbn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tolerances for comparing two float implementations, by input dtype.
TOLERANCE = {
    "float64": dict(rtol=1e-9, atol=1e-9),
    "float32": dict(rtol=1e-4, atol=2e-5),
    "float16": dict(rtol=2e-2, atol=2e-2),
    "bfloat16": dict(rtol=5e-2, atol=5e-2),
}


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(x, "float64")))


def central_differences(f, value, h):
    """float64 central differences of the scalar function `f` at `value`."""
    value = np.array(value, dtype="float64")
    grad = np.zeros_like(value)
    for i in np.ndindex(value.shape):
        for sign in (1, -1):
            bumped = value.copy()
            bumped[i] += sign * h
            grad[i] += sign * float(f(bumped)) / (2 * h)
    return grad


def batch_norm_reference(x, gamma, beta, axes, upstream, epsilon):
    """Float64 NumPy batch normalization over `axes` and its VJP, by the
    textbook formulas: `((y, mean, var), (dx, dgamma, dbeta))` for the
    upstream gradients `(dy, dmean, dvar)` of the three outputs."""
    dy, dmean, dvar = upstream
    n = x.size // gamma.size
    mean = x.mean(axes, keepdims=True)
    var = x.var(axes, keepdims=True)
    rstd = 1 / np.sqrt(var + epsilon)
    xhat = (x - mean) * rstd
    dxhat = dy * gamma
    dx = rstd * (
        dxhat
        - dxhat.mean(axes, keepdims=True)
        - xhat * (dxhat * xhat).mean(axes, keepdims=True)
    )
    dx = dx + dmean / n + dvar * 2 * (x - mean) / n
    grads = (dx, (dy * xhat).sum(axes, keepdims=True), dy.sum(axes, keepdims=True))
    return (xhat * gamma + beta, mean, var), grads


def make_pair(**kwargs):
    """A stock layer and a kbn layer with the same arguments and initial weights."""
    kbn_only = {k: kwargs.pop(k) for k in ("compile_moments",) if k in kwargs}
    init = dict(
        gamma_initializer=keras.initializers.RandomUniform(0.5, 1.5, seed=1),
        beta_initializer=keras.initializers.RandomUniform(-0.5, 0.5, seed=2),
    )
    init.update(kwargs)
    return (
        keras.layers.BatchNormalization(**init),
        kbn.BatchNormalization(**init, **kbn_only),
    )


def train_step(layer, x, dy, mask=None):
    """One training call: outputs and gradients for x and every trainable weight."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True, mask=mask)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * dy)
    grads = tape.gradient(loss, [x] + list(layer.trainable_weights))
    return y, grads


def assert_same_layer_behaviour(
    stock, ours, shape, dtype="float32", steps=3, mask_fn=None, offset=0.0, seed=0
):
    """Trains both layers side by side and compares everything observable."""
    rng = np.random.default_rng(seed)
    tol = TOLERANCE[dtype]
    for _ in range(steps):
        x = (rng.normal(size=shape) * 2.0 + offset).astype(dtype)
        dy = rng.normal(size=shape).astype("float32")
        mask = None if mask_fn is None else mask_fn(rng, shape)
        y_ref, g_ref = train_step(stock, x, dy, mask)
        y, g = train_step(ours, x, dy, mask)
        assert y.dtype == y_ref.dtype
        np.testing.assert_allclose(to_numpy(y), to_numpy(y_ref), **tol)
        for a, b in zip(g, g_ref, strict=True):
            scale = max(1.0, float(np.abs(to_numpy(b)).max()))
            np.testing.assert_allclose(to_numpy(a) / scale, to_numpy(b) / scale, **tol)
    assert [w.name for w in ours.weights] == [w.name for w in stock.weights]
    for a, b in zip(
        ours.non_trainable_weights, stock.non_trainable_weights, strict=True
    ):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), **tol)
    x = (rng.normal(size=shape) + offset).astype(dtype)
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(stock(x)), **tol)


def run_script(code, env=None, timeout=600):
    """Runs Python code in a fresh interpreter (for backends and device setups)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout
