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

`batch_norm_train(x, gamma, beta, *, axes, epsilon, out_dtype, formulation)`:
    Training-mode batch normalization of `x` over `axes`.

    Args:
        x: Input tensor (any float dtype).
        gamma: Scale, float32/float64, broadcastable to `x` (keepdims layout).
        beta: Offset, same shape as `gamma`.
        axes: Tuple of reduced axes (static).
        epsilon: Variance epsilon (static).
        out_dtype: Dtype of the normalized output (static).
        formulation: `"kernel"`: the compiled kernel with its hand-written
            gradient; `"plain"`: the same shifted moments and normalization
            as ordinary ops, differentiated by the framework (inside a step,
            it fuses with its neighbours and costs no launch of its own);
            `"auto"` (default): the kernel from the backend's
            `MIN_KERNEL_VALUES` values on (`common.prefers_kernel`; an
            unknown batch size counts as `common.ASSUMED_BATCH`), measured
            where the kernel starts to win. On TensorFlow an XLA context
            (a `jit_compile=True` step) always gets the plain formulation.

    Returns:
        `(y, mean, variance)`: `y` in `out_dtype`; `mean` and the biased
        `variance` in the compute dtype with keepdims shape. All three are
        differentiable, to any order (see below).

`batch_moments(x, *, axes, formulation)`:
    Mean and biased variance of `x` over `axes`, not differentiable (for
    state updates that need batch statistics without normalizing by them:
    noise with `normalize_with="moving"`). `formulation` as above.

    Returns:
        `(mean, variance)` in the compute dtype with keepdims shape.

`batch_norm_infer(x, mean, variance, gamma, beta, *, epsilon, out_dtype,
formulation)`:
    Normalizes `x` with given statistics (one fused elementwise pass).

    Args:
        x: Input tensor (any float dtype).
        mean, variance, gamma, beta: Per-channel tensors broadcastable to `x`.
        epsilon: Variance epsilon (static).
        out_dtype: Dtype of the output (static).
        formulation: As above.

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
- Both formulations compute the same statistics to rounding: the plain one
  is the kernel's formula without its hand-written gradient, so its
  derivatives (to any order, and forward mode on JAX) are the framework's
  autodiff of it. On TensorFlow outside XLA its shift is the two-pass mean
  (one reduction, fewer ops than the spread sample at these small sizes).
- A kernel and its gradient are traced and compiled once per process for a
  given parameter shape, rank and settings; later layers and models of the
  same shapes reuse them. On TensorFlow the custom gradients are traced inside
  the cached function, so building models leaves nothing in TensorFlow's
  gradient registry (a graph-mode `tf.custom_gradient` registers a gradient
  function per trace of the graph it is called in, holding that graph).
- An empty batch gives empty outputs and finite zero gradients (counts are
  floored at 1 in the divisions); its statistics are meaningless and the
  layer does not use them.
"""

import importlib

# Every backend module's public functions, with their signatures.
CONTRACT = {
    "batch_norm_train": "(x, gamma, beta, *, axes, epsilon, out_dtype, "
    "formulation='auto')",
    "batch_moments": "(x, *, axes, formulation='auto')",
    "batch_norm_infer": "(x, mean, variance, gamma, beta, *, epsilon, out_dtype, "
    "formulation='auto')",
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
