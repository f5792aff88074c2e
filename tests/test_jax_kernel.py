"""The JAX kernel (`kbn.kernels.jax`) against float64 NumPy and finite differences.

It runs in this process on JAX directly (the kernel imports no Keras); the
layer's use of it on the Keras JAX backend is tested in a fresh interpreter
(`test_layer_on_jax_uses_the_kernel`).
"""

import numpy as np
import pytest
from conftest import batch_norm_reference, run_script

jax = pytest.importorskip("jax")
jnp = jax.numpy
from jax.test_util import check_grads  # noqa: E402

from kbn.kernels import jax as jax_kernel  # noqa: E402

# (view shape, reduced axes): a dense batch, the (rows, channels, 1) view of
# channels-last images, a view with features in the middle, non-contiguous
# feature axes, and a one-row reduction.
CASES = [
    ((37, 5), (0,)),
    ((40, 3, 1), (0, 2)),
    ((6, 4, 5), (0, 2)),
    ((3, 4, 5, 2), (0, 2)),
    ((1, 3, 7), (0, 2)),
    # A ghost-batch view (ghosts, rows, features, 1): axis 0 is not reduced.
    ((3, 8, 4, 1), (1, 3)),
    # Every reduced axis of size 1: one value per statistic.
    ((1, 3, 1), (0, 2)),
]
EPS = 1e-3


def _x64():
    return jax.enable_x64(True)


def _inputs(shape, axes, dtype="float64", offset=3.0, seed=0):
    rng = np.random.default_rng(seed)
    param = tuple(1 if i in axes else n for i, n in enumerate(shape))
    x = rng.normal(size=shape) * 2 + offset
    gamma = rng.uniform(0.5, 1.5, size=param)
    beta = rng.normal(size=param)
    return [np.asarray(t, dtype) for t in (x, gamma, beta)]


def _train(x, gamma, beta, axes, out_dtype="float64"):
    return jax_kernel.batch_norm_train(
        x, gamma, beta, axes=axes, epsilon=EPS, out_dtype=out_dtype
    )


@pytest.mark.parametrize("shape, axes", CASES)
def test_forward_and_vjp_match_float64_reference(shape, axes):
    with _x64():
        x, gamma, beta = _inputs(shape, axes)
        rng = np.random.default_rng(1)
        stat = gamma.shape
        upstream = (
            rng.normal(size=shape),
            rng.normal(size=stat),
            rng.normal(size=stat),
        )
        outputs, vjp = jax.vjp(lambda *a: _train(*a, axes), x, gamma, beta)
        grads = vjp(tuple(jnp.asarray(u) for u in upstream))
        want_out, want_grads = batch_norm_reference(x, gamma, beta, axes, upstream, EPS)
        for got, want in zip(outputs + grads, want_out + want_grads, strict=True):
            assert got.shape == want.shape
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("shape, axes", CASES[:4])
def test_first_and_second_order_match_finite_differences(shape, axes):
    with _x64():
        x, gamma, beta = _inputs(shape, axes, seed=2)

        def loss(x, gamma, beta):
            y, mean, var = _train(x, gamma, beta, axes)
            return jnp.sum(jnp.sin(y)) + jnp.sum(mean**2) + jnp.sum(jnp.cos(var))

        # Reverse mode to second order: the backward rule is differentiated.
        check_grads(loss, (x, gamma, beta), order=2, modes=["rev"], eps=1e-4)


def test_gradient_penalty_and_hessian_vector_product_match_plain_autodiff():
    """Second order through the hand-written backward, against JAX's own
    derivative of the plain formulation (float64), both reverse-over-reverse
    (a gradient penalty) and forward-over-reverse (jax.jvp of jax.grad)."""
    shape, axes = (12, 4, 1), (0, 2)
    with _x64():
        x, gamma, beta = _inputs(shape, axes, seed=4)
        w = np.random.default_rng(5).normal(size=shape)

        def plain(x, gamma, beta):
            mean = x.mean(axes, keepdims=True)
            var = x.var(axes, keepdims=True)
            return (x - mean) * jax.lax.rsqrt(var + EPS) * gamma + beta

        def kernel(x, gamma, beta):
            return _train(x, gamma, beta, axes)[0]

        def penalty(normalize):
            def inner(x, gamma, beta):
                grad = jax.grad(lambda x: jnp.sum(w * normalize(x, gamma, beta) ** 2))
                return jnp.sum(grad(x) ** 2)

            return inner

        got = jax.grad(penalty(kernel), (0, 1, 2))(x, gamma, beta)
        want = jax.grad(penalty(plain), (0, 1, 2))(x, gamma, beta)
        for g, v in zip(got, want, strict=True):
            np.testing.assert_allclose(g, v, rtol=1e-8, atol=1e-10)

        def loss(normalize):
            return lambda x: jnp.sum(w * normalize(x, gamma, beta) ** 3)

        tangent = np.random.default_rng(6).normal(size=shape)
        hvp = jax.jvp(jax.grad(loss(kernel)), (x,), (tangent,))[1]
        want_hvp = jax.jvp(jax.grad(loss(plain)), (x,), (tangent,))[1]
        np.testing.assert_allclose(hvp, want_hvp, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("offset", [1e4, 1e7])
def test_large_offsets_keep_float32_variance(offset):
    shape, axes = (512, 8), (0,)
    x, gamma, beta = _inputs(shape, axes, dtype="float32", offset=offset)
    x = x - np.float32(3.0)  # unit-ish spread (2) around the offset
    _, mean, var = _train(x, gamma, beta, axes, out_dtype="float32")
    ref = x.astype("float64")
    np.testing.assert_allclose(var, ref.var(0, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(mean, ref.mean(0, keepdims=True), rtol=1e-7)
    moments = jax_kernel.batch_moments(x, axes=axes)
    np.testing.assert_allclose(moments[1], ref.var(0, keepdims=True), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs_keep_float32_statistics(dtype):
    shape, axes = (256, 6, 1), (0, 2)
    x, gamma, beta = _inputs(shape, axes, dtype="float32", offset=40.0)
    xh = jnp.asarray(x).astype(dtype)
    y, mean, var = _train(xh, gamma, beta, axes, out_dtype=dtype)
    assert y.dtype == jnp.dtype(dtype) and mean.dtype == jnp.float32
    ref = np.asarray(xh.astype("float32"), "float64")
    np.testing.assert_allclose(var, ref.var((0, 2), keepdims=True), rtol=1e-5)
    dx = jax.grad(lambda x: jnp.sum(_train(x, gamma, beta, axes, dtype)[0]))(xh)
    assert dx.dtype == jnp.dtype(dtype) and np.all(np.isfinite(dx))


def test_empty_batch_gives_empty_outputs_and_zero_gradients():
    axes = (0,)
    x, gamma, beta = _inputs((0, 3), axes, dtype="float32")
    gamma, beta = np.ones((1, 3), "float32"), np.zeros((1, 3), "float32")

    def loss(x, gamma, beta):
        y, mean, var = _train(x, gamma, beta, axes, out_dtype="float32")
        return jnp.sum(y) + jnp.sum(mean) + jnp.sum(var)

    grads = jax.grad(loss, (0, 1, 2))(x, gamma, beta)
    assert grads[0].shape == (0, 3)
    for g in grads[1:]:
        np.testing.assert_array_equal(g, 0.0)


def test_inference_matches_reference():
    shape, axes = (9, 4), (0,)
    x, gamma, beta = _inputs(shape, axes, dtype="float32")
    mean, var = np.full((1, 4), 2.0, "float32"), np.full((1, 4), 3.0, "float32")
    y = jax_kernel.batch_norm_infer(
        x, mean, var, gamma, beta, epsilon=EPS, out_dtype="float16"
    )
    want = (x - mean) / np.sqrt(var + EPS) * gamma + beta
    assert y.dtype == jnp.float16
    np.testing.assert_allclose(np.asarray(y, "float32"), want, rtol=2e-3, atol=2e-3)


LAYER_SCRIPT = """
import jax, keras, numpy as np
assert keras.backend.backend() == "jax"
import kbn
rng = np.random.default_rng(0)
x = rng.normal(size=(10, 4, 4, 3)).astype("float32") * 3 + 2

def step(layer, x):
    if not layer.built:
        layer.build(x.shape)
    tv = [v.value for v in layer.trainable_variables]
    ntv = [v.value for v in layer.non_trainable_variables]
    weights = np.arange(x.size, dtype="float32").reshape(x.shape) / x.size
    def loss(tv, x):
        y, state = layer.stateless_call(tv, ntv, x, training=True)
        return keras.ops.sum(y * weights), state
    grad = jax.value_and_grad(loss, (0, 1), has_aux=True)
    (value, state), grads = jax.jit(grad)(tv, x)
    return [np.asarray(t) for t in [value, *state, *grads[0], grads[1]]]

def kernel_used(layer, x):
    if not layer.built:
        layer.build(x.shape)
    tv = [v.value for v in layer.trainable_variables]
    ntv = [v.value for v in layer.non_trainable_variables]
    jaxpr = jax.make_jaxpr(lambda x: layer.stateless_call(tv, ntv, x, training=True))(x)
    return "custom_vjp" in str(jaxpr)

from kbn.kernels import jax as jax_kernel
# By cost, "auto" takes JAX's autodiff of the plain formulation below
# MIN_KERNEL_VALUES values and the kernel from there on.
def kernel_used_at(shape):
    layer = kbn.BatchNormalization()
    return kernel_used(layer, jax.ShapeDtypeStruct(shape, "float32"))
edge = jax_kernel.MIN_KERNEL_VALUES
assert kernel_used_at((edge // 4, 4)) and not kernel_used_at((edge // 4 - 1, 4))
default_auto = step(kbn.BatchNormalization(), x)  # x is small: plain
portable = step(kbn.BatchNormalization(compile_moments=False), x)
for got, want in zip(default_auto, portable):
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
# From here on "auto" takes the kernel at every size.
jax_kernel.MIN_KERNEL_VALUES = 0
moments_calls = []
original_moments = jax_kernel.batch_moments
def counting_moments(*args, **kwargs):
    moments_calls.append(1)
    return original_moments(*args, **kwargs)
jax_kernel.batch_moments = counting_moments

for options in [dict(), dict(axis=[1, 3]), dict(virtual_batch_size=4),
                dict(noise="adjustment", seed=1),
                dict(noise=kbn.noise.BatchStatistics(normalize_with="moving"), seed=2)]:
    auto = kbn.BatchNormalization(**options)
    plain = kbn.BatchNormalization(compile_moments=False, **options)
    assert kernel_used(auto, x) == ("noise" not in options or
        options["noise"] == "adjustment"), options
    assert not kernel_used(plain, x)
    # normalize_with="moving" takes the kernel's moments, not its custom_vjp.
    calls = len(moments_calls)
    kernel_used(kbn.BatchNormalization(**options), x)
    moving = "noise" in options and options["noise"] != "adjustment"
    assert (len(moments_calls) > calls) == moving, options
    for got, want in zip(step(auto, x), step(plain, x), strict=True):
        np.testing.assert_allclose(
            got, want, rtol=2e-4, atol=2e-5, err_msg=str(options))
# compile_moments=True is honoured on JAX; a mask needs the portable path.
forced = kbn.BatchNormalization(compile_moments=True)
assert kernel_used(forced, x)
try:
    kbn.BatchNormalization(compile_moments=True)(
        x[..., 0, :], training=True, mask=np.ones((10, 4), bool))
except ValueError as e:
    assert "compile_moments" in str(e)
else:
    raise AssertionError("a mask with compile_moments=True must be refused")
# A model's fit with a short last batch, and inference, agree with the stock layer.
def fitted(bn):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5), bn,
                              keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    data = rng.normal(size=(22, 6)).astype("float32")
    model.fit(data, data[:, :1], batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model.predict(data, verbose=0)
rng = np.random.default_rng(1)
a = fitted(kbn.BatchNormalization())
rng = np.random.default_rng(1)
b = fitted(keras.layers.BatchNormalization())
np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
print("jax kernel ok")
"""


def test_layer_on_jax_uses_the_kernel():
    """On the Keras JAX backend, `compile_moments="auto"` runs the kernel (its
    custom_vjp is in the traced program) from `MIN_KERNEL_VALUES` values on and
    the plain formulation below, and a jitted training step on either gives
    the portable path's outputs, moving statistics and gradients."""
    out = run_script(LAYER_SCRIPT, env={"KERAS_BACKEND": "jax"})
    assert "jax kernel ok" in out
