"""The kernels' one contract (`kbn.kernels`) and their shared numerics.

Both backend modules must provide exactly the functions `kbn.kernels.CONTRACT`
lists, with those signatures, and keep the contract's promises (shapes,
dtypes, values, gradients, empty batches) against one float64 NumPy
reference; `kbn.kernels.common` is checked against plain NumPy formulas.
"""

import inspect

import numpy as np
import pytest
import tensorflow as tf
from conftest import batch_norm_reference

from kbn import kernels
from kbn.kernels import common

jax = pytest.importorskip("jax")
jnp = jax.numpy

EPS = 1e-3


def _public_functions(module):
    return {
        name: f
        for name, f in inspect.getmembers(module, inspect.isfunction)
        if not name.startswith("_") and f.__module__ == module.__name__
    }


@pytest.mark.parametrize("name", kernels.BACKENDS)
def test_backend_module_provides_exactly_the_contract(name):
    module = kernels.for_backend(name)
    assert module.__name__ == f"kbn.kernels.{name}"
    functions = _public_functions(module)
    assert sorted(functions) == sorted(kernels.CONTRACT)
    for function, signature in kernels.CONTRACT.items():
        assert str(inspect.signature(functions[function])) == signature, function


def test_backends_have_the_same_signatures():
    """Independent of `CONTRACT`: the modules agree with each other."""
    tf_functions, jax_functions = (
        _public_functions(kernels.for_backend(name)) for name in ("tensorflow", "jax")
    )
    assert tf_functions.keys() == jax_functions.keys()
    for name, function in tf_functions.items():
        assert inspect.signature(function) == inspect.signature(jax_functions[name])


def test_for_backend_has_no_kernels_for_other_backends():
    assert kernels.for_backend("torch") is None
    assert kernels.for_backend("numpy") is None
    assert kernels.for_backend("tensorflow") is kernels.tensorflow


def _run_tensorflow(x, gamma, beta, axes, upstream, dtype, formulation):
    module = kernels.for_backend("tensorflow")
    how = dict(formulation=formulation)
    inputs = [tf.constant(x, dtype), tf.constant(gamma), tf.constant(beta)]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = module.batch_norm_train(
            *inputs, axes=axes, epsilon=EPS, out_dtype=dtype, **how
        )
    upstream = [tf.cast(u, o.dtype) for u, o in zip(upstream, outputs, strict=True)]
    grads = tape.gradient(outputs, inputs, output_gradients=upstream)
    moments = module.batch_moments(inputs[0], axes=axes, **how)
    infer = module.batch_norm_infer(
        inputs[0], *outputs[1:], *inputs[1:], epsilon=EPS, out_dtype=dtype, **how
    )
    return outputs, grads, moments, infer


def _run_jax(x, gamma, beta, axes, upstream, dtype, formulation):
    module = kernels.for_backend("jax")
    how = dict(formulation=formulation)
    inputs = [jnp.asarray(x, dtype), jnp.asarray(gamma), jnp.asarray(beta)]

    def train(*inputs):
        return module.batch_norm_train(
            *inputs, axes=axes, epsilon=EPS, out_dtype=dtype, **how
        )

    outputs, vjp = jax.vjp(train, *inputs)
    grads = vjp(
        tuple(jnp.asarray(u, o.dtype) for u, o in zip(upstream, outputs, strict=True))
    )
    moments = module.batch_moments(inputs[0], axes=axes, **how)
    infer = module.batch_norm_infer(
        inputs[0], *outputs[1:], *inputs[1:], epsilon=EPS, out_dtype=dtype, **how
    )
    return outputs, grads, moments, infer


RUNNERS = {"tensorflow": _run_tensorflow, "jax": _run_jax}


@pytest.mark.parametrize("formulation", ["kernel", "plain"])
@pytest.mark.parametrize("backend", kernels.BACKENDS)
@pytest.mark.parametrize(
    "shape, axes, dtype",
    [
        ((37, 5), (0,), "float32"),
        ((6, 4, 5), (0, 2), "float32"),
        ((40, 3, 1), (0, 2), "float16"),
    ],
)
def test_backend_keeps_the_contract(backend, formulation, shape, axes, dtype):
    """Shapes, dtypes (float32 statistics for half inputs), the shifted moments
    under a large offset, and the VJP with upstream gradients of the returned
    statistics, against float64 NumPy."""
    rng = np.random.default_rng(0)
    stat = tuple(1 if i in axes else n for i, n in enumerate(shape))
    offset = 3.0 if dtype == "float16" else 1e4
    x = (rng.normal(size=shape) * 2 + offset).astype(dtype).astype("float64")
    gamma, beta = rng.uniform(0.5, 1.5, size=stat), rng.normal(size=stat)
    upstream = [rng.normal(size=shape), rng.normal(size=stat), rng.normal(size=stat)]
    params = [t.astype("float32") for t in (gamma, beta)]
    # dy has the output's dtype; the reference takes the same rounded values.
    upstream = [upstream[0].astype(dtype)] + upstream[1:]
    upstream = [u.astype("float32") for u in upstream]
    outputs, grads, moments, infer = RUNNERS[backend](
        x, *params, axes, upstream, dtype, formulation
    )
    want, want_grads = batch_norm_reference(
        x, *(t.astype("float64") for t in params), axes, upstream, EPS
    )
    tolerance = dict(rtol=2e-2, atol=2e-2) if dtype == "float16" else {}
    stat_tolerance = dict(rtol=1e-5, atol=1e-4)
    y, mean, variance = (np.asarray(t) for t in outputs)
    assert y.dtype == dtype and y.shape == shape
    assert mean.dtype == variance.dtype == "float32"
    assert mean.shape == variance.shape == stat
    np.testing.assert_allclose(y, want[0], **(tolerance or dict(atol=2e-3)))
    np.testing.assert_allclose(mean, want[1], **stat_tolerance)
    np.testing.assert_allclose(variance, want[2], rtol=1e-4, atol=1e-4)
    for got, ref in zip(moments, want[1:], strict=True):
        np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=1e-4)
    assert np.asarray(infer).dtype == dtype
    np.testing.assert_allclose(np.asarray(infer), y.astype("float64"), atol=1e-2)
    dx, dgamma, dbeta = (np.asarray(g) for g in grads)
    assert dx.dtype == dtype and dgamma.dtype == dbeta.dtype == "float32"
    np.testing.assert_allclose(dx, want_grads[0], **(tolerance or dict(atol=2e-3)))
    np.testing.assert_allclose(dgamma, want_grads[1], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dbeta, want_grads[2], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("formulation", ["kernel", "plain"])
@pytest.mark.parametrize("backend", kernels.BACKENDS)
def test_backend_gives_empty_batches_finite_zero_gradients(backend, formulation):
    shape, axes = (0, 3, 2), (0, 2)
    stat = (1, 3, 1)
    ones = np.ones(stat, "float32")
    upstream = [np.ones(shape, "float32"), ones, ones]
    outputs, grads, moments, infer = RUNNERS[backend](
        np.zeros(shape), ones, ones, axes, upstream, "float32", formulation
    )
    assert np.asarray(outputs[0]).shape == shape
    assert np.asarray(infer).shape == shape
    for t in [*outputs[1:], *moments]:
        assert np.asarray(t).shape == stat and np.isfinite(np.asarray(t)).all()
    dx, dgamma, dbeta = (np.asarray(g) for g in grads)
    assert dx.shape == shape
    np.testing.assert_array_equal(dgamma, np.zeros(stat))
    np.testing.assert_array_equal(dbeta, np.zeros(stat))


@pytest.mark.parametrize("backend", kernels.BACKENDS)
def test_an_unknown_formulation_is_refused_by_name(backend):
    module = kernels.for_backend(backend)
    x = np.ones((4, 3), "float32")
    with pytest.raises(ValueError, match="formulation"):
        module.batch_moments(x, axes=(0,), formulation="fast")


def test_tensorflow_moments_kernel_takes_the_same_axes_at_another_rank():
    """The compiled moments were cached by axes alone: the same axes at a
    second rank raised a TypeError (noise with normalize_with="moving")."""
    module = kernels.for_backend("tensorflow")
    rng = np.random.default_rng(0)
    for shape in [(8, 3), (8, 3, 2), (9, 3)]:
        x = rng.normal(size=shape).astype("float32")
        mean, variance = module.batch_moments(x, axes=(0,), formulation="kernel")
        np.testing.assert_allclose(mean, x.mean(0, keepdims=True), atol=1e-6)
        np.testing.assert_allclose(variance, x.var(0, keepdims=True), rtol=1e-5)


def test_prefers_kernel_counts_an_unknown_batch_as_the_assumed_one():
    edge = kernels.tensorflow.MIN_KERNEL_VALUES
    assert common.prefers_kernel((edge, 1), edge)
    assert not common.prefers_kernel((edge - 1, 1), edge)
    rows = edge // common.ASSUMED_BATCH
    assert common.prefers_kernel((None, rows), edge)
    assert not common.prefers_kernel((None, rows - 1), edge)


# ------------------------------------------------------------- common numerics


def test_compute_dtype_upcasts_half_and_keeps_float64():
    for dtype, want in [
        (tf.float16, "float32"),
        (tf.bfloat16, "float32"),
        (tf.float32, "float32"),
        (tf.float64, "float64"),
        (np.dtype("float16"), "float32"),
        (np.dtype("float64"), "float64"),
        ("float64", "float64"),
        ("bfloat16", "float32"),
    ]:
        assert common.compute_dtype(dtype) == want, dtype


def test_count_is_values_per_statistic_floored_at_one():
    assert common.count(120, 5, max) == 24
    assert common.count(0, 5, max) == 1
    assert common.count(7, 0, max) == 7
    assert int(common.count(tf.constant(120), tf.constant(5), tf.maximum)) == 24


@pytest.mark.parametrize(
    "shape, axes",
    [((130, 3), (0,)), ((40, 3, 5), (0, 2)), ((5, 2, 4), (0, 2)), ((0, 3), (0,))],
)
def test_shift_slice_selects_up_to_64_spread_rows(shape, axes):
    """The slice holds min(n, 64) rows of the outer axis at an even stride
    (n // 64, at least 1), index 0 of the other reduced axes, every kept
    value; its count is what the slice holds per channel (at least 1)."""
    x = np.arange(np.prod(shape), dtype="float64").reshape(shape)
    stop, strides, count = common.shift_slice(list(shape), axes, min, max)
    head = x[tuple(slice(0, e, s) for e, s in zip(stop, strides, strict=True))]
    n = shape[0]
    rows = x[: max(n // 64, 1) * min(n, 64) : max(n // 64, 1)]
    want = rows[:, :, :1] if len(shape) == 3 else rows
    np.testing.assert_array_equal(head, want)
    assert count == max(want.size // shape[1], 1)
    tf_stop, tf_strides, tf_count = common.shift_slice(
        [tf.constant(s) for s in shape], axes, tf.minimum, tf.maximum
    )
    assert [int(s) for s in tf_stop] == stop
    assert [int(s) for s in tf_strides] == strides
    assert int(tf_count) == count


def test_centred_moments_recover_variance_under_an_offset():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3)) * 2 + 1e6
    shift = x[:64].mean(0, keepdims=True)
    d = x - shift
    centred_mean, variance = common.centred_moments(
        len(x), d.sum(0, keepdims=True), (d * d).sum(0, keepdims=True), np.maximum
    )
    np.testing.assert_allclose(shift + centred_mean, x.mean(0, keepdims=True))
    np.testing.assert_allclose(variance, x.var(0, keepdims=True), rtol=1e-9)
    # Rounding can never make a variance negative.
    _, variance = common.centred_moments(
        2, np.array([2.0]), np.array([1.0]), np.maximum
    )
    np.testing.assert_array_equal(variance, [0.0])


def test_input_gradient_is_the_textbook_vjp():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(9, 4)) * 3 + 1
    gamma, beta = rng.uniform(0.5, 1.5, (1, 4)), rng.normal(size=(1, 4))
    upstream = [
        rng.normal(size=(9, 4)),
        rng.normal(size=(1, 4)),
        rng.normal(size=(1, 4)),
    ]
    _, (dx, dgamma, _) = batch_norm_reference(x, gamma, beta, (0,), upstream, EPS)
    dy, dmean, dvar = upstream
    centred = x - x.mean(0, keepdims=True)
    rstd = 1 / np.sqrt(x.var(0, keepdims=True) + EPS)
    sums = (dy.sum(0, keepdims=True), (dy * centred).sum(0, keepdims=True))
    got, sum_dy_xhat = common.input_gradient(
        dy, centred, sums, gamma, rstd, dmean, dvar, len(x)
    )
    np.testing.assert_allclose(got, dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sum_dy_xhat, dgamma, rtol=1e-12)
    variance = x.var(0, keepdims=True)
    y = common.normalize(centred, variance, gamma, beta, EPS, lambda v: 1 / np.sqrt(v))
    np.testing.assert_allclose(y, centred / np.sqrt(variance + EPS) * gamma + beta)


def test_summed_axes_are_the_unit_axes_of_the_parameter():
    assert common.summed_axes((1, 4, 1)) == (0, 2)
    assert common.summed_axes((3,)) == ()
