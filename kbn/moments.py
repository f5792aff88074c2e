"""Portable batch statistics and normalization, written with `keras.ops`.

These functions know nothing of layers or variables; the layer composes them.
They run on every Keras backend and are the reference the compiled kernels
(`kbn.kernels`) are tested against. Unlike the kernels they take weights (a
mask) and return the sums cross-replica reduction needs, so they are not a
backend of the kernels' contract; the variance from shifted sums is the
kernels' own formula (`kbn.kernels.common.centred_moments`).

Numerical decisions, made here once:

- Statistics are accumulated in float32 at least (float64 stays float64);
  float16/bfloat16 inputs are upcast first, since their range is too small for
  sums of squares.
- Moments use the *corrected two-pass* algorithm: a coarse mean `k` is taken
  first and treated as a constant, then `S1 = sum(w (x - k))` and
  `S2 = sum(w (x - k)^2)` give `mean = k + S1/S0` and
  `var = S2/S0 - (S1/S0)^2`. The correction term cancels the first-order error
  of the coarse mean, so inputs with a large offset (1e7 with unit spread) keep
  their variance to float32 rounding, where the one-pass `E[x^2] - E[x]^2`
  loses every digit. The sums form is also what cross-replica reduction needs.
- Variances are clipped at zero: rounding may never make them negative.
- Normalization is `(x - mean) * (gamma * rsqrt(var + eps)) + beta`; the
  algebraically equal `x * inv + (beta - mean * inv)` cancels catastrophically
  for large offsets.
"""

from keras import ops

from kbn.kernels import common
from kbn.layout import prod


def moment_sums(x, axes, weights=None, shift=None):
    """Weighted shifted sums `(S0, S1, S2)` over `axes`, with keepdims.

    Args:
        x: Input tensor, already in the compute dtype.
        axes: Tuple of axes to reduce over.
        weights: Optional tensor broadcastable to `x` (for example a mask cast
            to the compute dtype). `None` weighs every element by 1.
        shift: Optional constant close to the mean, with keepdims shape. When
            `None`, the (weighted) mean of `x` is used.

    Returns:
        `(shift, s0, s1, s2)`, each with keepdims shape: the shift used, the
        total weight, and the weighted sums of `x - shift` and its square.
    """
    if shift is None:
        shift = weighted_mean(x, axes, weights)
    shift = ops.stop_gradient(shift)
    if weights is None:
        s0 = ops.cast(prod(ops.shape(x)[a] for a in axes), x.dtype)
        d = x - shift
        s1 = ops.sum(d, axis=axes, keepdims=True)
        s2 = ops.sum(d * d, axis=axes, keepdims=True)
        return shift, s0 * ops.ones_like(s1), s1, s2
    weights = ops.broadcast_to(weights, ops.shape(x))
    s0 = ops.sum(weights, axis=axes, keepdims=True)
    d = weights * (x - shift)
    s1 = ops.sum(d, axis=axes, keepdims=True)
    s2 = ops.sum(d * (x - shift), axis=axes, keepdims=True)
    return shift, s0, s1, s2


def weighted_sums(x, axes, weights=None):
    """`(sum of weights, weighted sum of x)` over `axes`, with keepdims."""
    if weights is None:
        weighted = ops.sum(x, axis=axes, keepdims=True)
        count = ops.cast(prod(ops.shape(x)[a] for a in axes), x.dtype)
        return count * ops.ones_like(weighted), weighted
    weights = ops.broadcast_to(weights, ops.shape(x))
    total = ops.sum(weights, axis=axes, keepdims=True)
    return total, ops.sum(weights * x, axis=axes, keepdims=True)


def weighted_mean(x, axes, weights=None):
    """Mean of `x` over `axes` (keepdims), weighted when `weights` is given.

    An empty (or fully masked) group has mean 0, not NaN.
    """
    total, weighted = weighted_sums(x, axes, weights)
    return weighted / safe_divisor(total)


def moments_from_sums(shift, s0, s1, s2):
    """Mean and (biased) variance from `moment_sums` output."""
    centred_mean, variance = common.centred_moments(
        safe_divisor(s0), s1, s2, ops.maximum
    )
    return shift + centred_mean, variance


def moments(x, axes, weights=None):
    """Robust weighted mean, variance and count over `axes` (keepdims).

    Returns:
        `(mean, variance, count)`; `count` is the total weight per statistic
        (the number of reduced elements when `weights` is None).
    """
    shift, s0, s1, s2 = moment_sums(x, axes, weights)
    mean, variance = moments_from_sums(shift, s0, s1, s2)
    return mean, variance, s0


def combine_groups(mean, variance, count, axis):
    """Pools per-group statistics along `axis` into whole-batch statistics.

    Uses the law of total variance, so Ghost BN's sub-batch statistics give
    exactly the statistics of the whole batch.
    """
    total = ops.sum(count, axis=axis, keepdims=True)
    w = count / safe_divisor(total)
    pooled_mean = ops.sum(w * mean, axis=axis, keepdims=True)
    spread = mean - pooled_mean
    pooled_var = ops.sum(w * (variance + spread * spread), axis=axis, keepdims=True)
    return pooled_mean, pooled_var, total


def normalize(x, mean, variance, gamma, beta, epsilon):
    """`(x - mean) * gamma / sqrt(variance + epsilon) + beta`, broadcasting.

    `gamma` and `beta` may be None (no scale / no centre).
    """
    inv = ops.rsqrt(variance + epsilon)
    if gamma is not None:
        inv = inv * gamma
    y = (x - mean) * inv
    if beta is not None:
        y = y + beta
    return y


def safe_divisor(total):
    """`total`, with 0 replaced by a tiny number, to divide sums by."""
    # A fully masked group has no weight; divide by a tiny number (as Keras's
    # own masked moments do) so its statistics are 0 rather than NaN.
    return total + 1e-7 * ops.cast(total == 0, total.dtype)
