"""The contract of `kbn.kernels` as a JAX kernel.

The training statistics and the normalization are one `jax.custom_vjp`
function whose backward is written by hand, so JAX's autodiff of the portable
`keras.ops` path (which on XLA:CPU ran the layer's training step 12x slower
than the stock layer's, broadcasting its per-channel terms back to full size)
is never used for first-order gradients. It runs under `jax.jit` like any
other JAX function (the caller jits; Keras does in `fit`). The numerics are
those of `kbn.kernels` (written in `kbn.kernels.common`); what is JAX's own:

- The backward saves only `x`, `gamma` and per-channel statistics (the shift,
  the centred mean, the variance); it reduces `d = x - shift` and `dy`, then
  reads them once more for `dx`.
- Higher-order gradients are exact: the backward is plain differentiable JAX,
  and the saved statistics are differentiable functions of `x` computed by the
  forward rule, so `jax.grad` of a gradient (or `jax.hessian`, forward over
  reverse) differentiates the true VJP. Forward mode on the kernel itself
  (`jax.jvp`, `jax.jacfwd` of the layer's output) is not available for a
  `custom_vjp` function: JAX raises a `TypeError` that says so.
- Reduced axes of size 1 are reshaped away first (`_unit_axes` says why).
"""

import jax
import jax.numpy as jnp

from kbn.kernels import common

# Below this many values a call takes the plain formulation under "auto".
# Under `jax.jit` both are one XLA program and differ only in the backward's
# formulas, so they are close: measured with `python -m benchmarks.crossover`
# (2026-12-03, 2 shared cores, jitted training step; plain / kernel time,
# medians of two runs; benchmarks/results/crossover.md): (60, 100)
# 0.98-1.01, (256, 100) 1.03-1.08, (60, 8, 8, 32) 1.05-1.07, (1024, 512)
# 1.14-1.24, (32, 28, 28, 32) 0.98-1.29, (64, 32, 32, 64) 1.01-1.11. The
# plain formulation also has forward mode (`jax.jvp`).
MIN_KERNEL_VALUES = 1 << 15


def batch_norm_train(x, gamma, beta, *, axes, epsilon, out_dtype, formulation="auto"):
    """Training-mode batch normalization of `x` over `axes` (see `kbn.kernels`)."""
    x, gamma, beta = (jnp.asarray(t) for t in (x, gamma, beta))
    axes_in = tuple(axes)
    squeeze, axes = _unit_axes(x.shape, axes)
    settings = (axes, float(epsilon), jnp.dtype(out_dtype).name)
    train = _plain_train if _plain(x, formulation) else _train
    y, mean, variance = train(*(_drop(t, squeeze) for t in (x, gamma, beta)), settings)
    stat_shape = _keepdims_shape(x.shape, axes_in)
    return y.reshape(x.shape), mean.reshape(stat_shape), variance.reshape(stat_shape)


def batch_moments(x, *, axes, formulation="auto"):
    """Mean and biased variance of `x` over `axes` (see `kbn.kernels`).

    One formulation on JAX (plain reductions under the caller's jit), so
    `formulation` is only checked.
    """
    common.check_formulation(formulation)
    x = jax.lax.stop_gradient(jnp.asarray(x))
    squeeze, kept = _unit_axes(x.shape, axes)
    mean, variance = _shifted_moments(_drop(x, squeeze), kept)
    shape = _keepdims_shape(x.shape, axes)
    return mean.reshape(shape), variance.reshape(shape)


def batch_norm_infer(
    x, mean, variance, gamma, beta, *, epsilon, out_dtype, formulation="auto"
):
    """Normalizes `x` with given statistics (see `kbn.kernels`).

    One elementwise formula whatever `formulation` says (it is checked).
    """
    common.check_formulation(formulation)
    x = jnp.asarray(x)
    ct = common.compute_dtype(x.dtype)
    y = common.normalize(
        x.astype(ct) - _cast(mean, ct),
        _cast(variance, ct),
        _cast(gamma, ct),
        _cast(beta, ct),
        epsilon,
        jax.lax.rsqrt,
    )
    return y.astype(out_dtype)


def _plain(x, formulation):
    """Whether this call uses JAX's autodiff of the formula, not the kernel."""
    common.check_formulation(formulation)
    if formulation == "auto":
        return not common.prefers_kernel(x.shape, MIN_KERNEL_VALUES)
    return formulation == "plain"


def _unit_axes(shape, axes):
    """`(dropped, kept)`: reduced axes of size 1 and the others, renumbered.

    XLA:CPU compiles a reduction whose view ends in a reduced axis of size 1
    (the `(rows, channels, 1)` view of channels-last data) into a loop 10 to
    80 times slower than the same reduction without it, so those axes are
    reshaped away (free) while at least one reduced axis is left.
    """
    axes = tuple(sorted(axes))
    dropped = tuple(a for a in axes if shape[a] == 1)
    if len(dropped) == len(axes):
        dropped = dropped[1:]
    kept = tuple(a - sum(d < a for d in dropped) for a in axes if a not in dropped)
    return dropped, kept


def _drop(t, axes):
    """`t` without its size-1 `axes` (a reshape)."""
    return t.reshape([n for i, n in enumerate(t.shape) if i not in axes])


def _keepdims_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _cast(t, dtype):
    return jnp.asarray(t).astype(dtype)


def _count(x, stat):
    """`common.count` for `x` and one of its statistics (static, a Python int)."""
    return common.count(x.size, stat.size, max)


def _shift(x, axes, dtype):
    """A per-channel constant near the mean, keepdims (`common.shift_slice`)."""
    stop, strides, count = common.shift_slice(list(x.shape), axes, min, max)
    index = tuple(slice(0, *bounds) for bounds in zip(stop, strides, strict=True))
    head = jax.lax.stop_gradient(x[index]).astype(dtype)
    return jnp.sum(head, axis=axes, keepdims=True) / count


def _shifted_sums(x, axes):
    """`(shift, centred_mean, variance)`, the mean being `shift + centred_mean`.

    The shift is a constant of the gradient (`stop_gradient`): the mean and the
    variance do not depend on it, so their derivatives stay exact.
    """
    ct = common.compute_dtype(x.dtype)
    shift = _shift(x, axes, ct)
    d = x.astype(ct) - shift
    centred_mean, variance = common.centred_moments(
        _count(x, shift),
        jnp.sum(d, axis=axes, keepdims=True),
        jnp.sum(d * d, axis=axes, keepdims=True),
        jnp.maximum,
    )
    return shift, centred_mean, variance


def _shifted_moments(x, axes):
    """Shifted one-pass mean and variance in the compute dtype (keepdims)."""
    shift, centred_mean, variance = _shifted_sums(x, axes)
    return shift + centred_mean, variance


def _sum_to(t, shape):
    """Sums `t` over the axes where `shape` has size 1."""
    axes = common.summed_axes(shape)
    return jnp.sum(t, axis=axes, keepdims=True).reshape(shape)


def _normalize(x, gamma, beta, axes, epsilon, out_dtype):
    """`(y, saved)`: the output and what the backward needs besides x and gamma.

    Every full-size term is written from `d = x - shift`, the very expression
    the sums reduce, so XLA computes it once for the forward pass and, when
    the backward is compiled with it (a jitted training step), once for both.
    """
    ct = common.compute_dtype(x.dtype)
    shift, centred_mean, variance = _shifted_sums(x, axes)
    d = x.astype(ct) - shift
    y = common.normalize(
        d - centred_mean,
        variance,
        gamma.astype(ct),
        beta.astype(ct),
        epsilon,
        jax.lax.rsqrt,
    )
    return y.astype(out_dtype), (shift, centred_mean, variance)


def _plain_train(x, gamma, beta, settings):
    """The plain formulation: `_normalize`, differentiated by JAX (any mode)."""
    y, (shift, centred_mean, variance) = _normalize(x, gamma, beta, *settings)
    return y, shift + centred_mean, variance


_train = jax.custom_vjp(_plain_train, nondiff_argnums=(3,))


def _train_forward(x, gamma, beta, settings):
    y, saved = _normalize(x, gamma, beta, *settings)
    shift, centred_mean, variance = saved
    return (y, shift + centred_mean, variance), (x, gamma, *saved)


def _train_backward(settings, saved, upstream):
    axes, epsilon, _ = settings
    x, gamma, shift, centred_mean, variance = saved
    dy, dmean, dvar = upstream
    ct = variance.dtype
    n = _count(x, variance)
    d = x.astype(ct) - shift
    dy = dy.astype(ct)
    # sum(dy * (x - mean)) = sum(dy * d) - centred_mean * sum(dy): the two
    # sums read what the forward's do, and centred_mean is small (the shift
    # is near the mean), so the correction cancels nothing.
    sum_dy = jnp.sum(dy, axis=axes, keepdims=True)
    sum_dy_centred = jnp.sum(dy * d, axis=axes, keepdims=True) - centred_mean * sum_dy
    dx, sum_dy_xhat = common.input_gradient(
        dy,
        d - centred_mean,
        (sum_dy, sum_dy_centred),
        gamma.astype(ct),
        jax.lax.rsqrt(variance + epsilon),
        dmean.astype(ct),
        dvar.astype(ct),
        n,
    )
    dgamma = _sum_to(sum_dy_xhat, gamma.shape)
    dbeta = _sum_to(sum_dy, gamma.shape)
    return dx.astype(x.dtype), dgamma.astype(gamma.dtype), dbeta.astype(gamma.dtype)


_train.defvjp(_train_forward, _train_backward)
