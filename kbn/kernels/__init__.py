"""Compiled batch-normalization kernels, one module per Keras backend.

`kbn.kernels.tensorflow` (XLA-compiled `tf.function`s with a hand-written
gradient) and `kbn.kernels.jax` (a `jax.custom_vjp` function with a
hand-written backward) implement the one contract written here; the numerics
they share (the shift, the compute dtype, the counts, the variance, the
normalization and the backward's coefficients) are written once in
`kbn.kernels.common`. The kernels know nothing of Keras layers: they take
tensors (arrays) and static settings and return tensors. The layer picks a
module with `for_backend` and falls back to its portable `keras.ops` path
(`kbn.moments`) where there is none or a call needs what the kernels do not
offer (masks, renormalization, synchronized statistics).

The contract: every backend module provides exactly these functions
(`CONTRACT` lists their signatures, and a test holds both modules to it).

`batch_norm_train(x, gamma, beta, *, axes, epsilon, out_dtype)`:
    Training-mode batch normalization of `x` over `axes`.

    Args:
        x: Input tensor (any float dtype).
        gamma: Scale, float32/float64, broadcastable to `x` (keepdims layout).
        beta: Offset, same shape as `gamma`.
        axes: Tuple of reduced axes (static).
        epsilon: Variance epsilon (static).
        out_dtype: Dtype of the normalized output (static).

    Returns:
        `(y, mean, variance)`: `y` in `out_dtype`; `mean` and the biased
        `variance` in the compute dtype with keepdims shape. All three are
        differentiable, to any order (see below).

`batch_moments(x, *, axes)`:
    Mean and biased variance of `x` over `axes`, not differentiable (for
    state updates that need batch statistics without normalizing by them:
    noise with `normalize_with="moving"`).

    Returns:
        `(mean, variance)` in the compute dtype with keepdims shape.

`batch_norm_infer(x, mean, variance, gamma, beta, *, epsilon, out_dtype)`:
    Normalizes `x` with given statistics (one fused elementwise pass).

    Args:
        x: Input tensor (any float dtype).
        mean, variance, gamma, beta: Per-channel tensors broadcastable to `x`.
        epsilon: Variance epsilon (static).
        out_dtype: Dtype of the output (static).

    Returns:
        The normalized tensor, in `out_dtype`.

Numerical decisions, the same on every backend:

- Statistics accumulate in float32 (float64 stays float64); half-precision
  inputs are upcast inside the kernel, so no float32 copy is materialized.
- Moments are *shifted one-pass* sums: `d = x - k`, with `k` per channel the
  mean of up to 64 of its values spread along the batch (a constant of the
  gradient), then `mean = k + E[d]` and `var = max(E[d^2] - E[d]^2, 0)`, both
  sums from one read of `x`. Shifting by values of the batch removes any
  common offset (1e7 with unit spread keeps its variance to 1e-6). A mean of
  64 values from across the batch is typically within about `std / 8` of the
  batch mean, so `E[d]^2` is tiny next to `E[d^2]` and the cancellation costs
  almost nothing (a single first sample could be two or three standard
  deviations off and cost a digit, enough to fail Keras's own test now and
  then); and by Samuelson's inequality any mean of samples lies within
  `sqrt(n - 1)` standard deviations of the batch mean, which bounds the
  cancellation at about `n * eps` relative whatever the data. The derivative
  stays exact: `mean` and `var` depend on `k` only through rounding.
- Normalization is `(x - mean) * (gamma * rsqrt(var + eps)) + beta`; the
  algebraically equal `x * inv + (beta - mean * inv)` cancels for large
  offsets.
- The backward saves only `x`, `gamma` and per-channel statistics (the
  TensorFlow kernel the mean and the variance; the JAX kernel the shift, the
  centred mean and the variance), no full-size intermediate: its sums
  (`sum(dy)`, `sum(dy * (x - mean))`) read `x` and `dy` once, and `dx` reads
  them once more. Upstream gradients of the returned mean and variance are
  folded into the per-channel coefficients of `dx` at no cost.
- Higher-order gradients are exact (each backend module says how); the JAX
  kernel, a `custom_vjp` function, has no forward mode (`jax.jvp` raises).
- An empty batch gives empty outputs and finite zero gradients (counts are
  floored at 1 in the divisions); its statistics are meaningless and the
  layer does not use them.
"""

import importlib

# Every backend module's public functions, with their signatures.
CONTRACT = {
    "batch_norm_train": "(x, gamma, beta, *, axes, epsilon, out_dtype)",
    "batch_moments": "(x, *, axes)",
    "batch_norm_infer": "(x, mean, variance, gamma, beta, *, epsilon, out_dtype)",
}

# Keras backends with a kernel module of the same name here.
BACKENDS = ("tensorflow", "jax")


def for_backend(name):
    """The kernel module for the Keras backend `name`, or None.

    Args:
        name: A Keras backend name (`keras.backend.backend()`).

    Returns:
        The module (imported on first use, so a backend's framework is only
        imported where it runs), or None for backends without kernels.
    """
    if name not in BACKENDS:
        return None
    return importlib.import_module(f"{__name__}.{name}")
