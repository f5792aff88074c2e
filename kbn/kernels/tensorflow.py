"""Training- and inference-mode batch normalization as XLA-compiled TensorFlow kernels.

The training kernel computes the statistics and the normalization in one
`tf.function(jit_compile=True)` and has a hand-written gradient, so a step is
fused by XLA even when the model around it is not compiled (Keras turns
whole-model XLA off on CPU and under `tf.distribute`). It knows nothing of
Keras layers: it takes tensors and static settings and returns tensors.

Numerical decisions:

- Statistics accumulate in float32 (float64 stays float64); half-precision
  inputs are upcast inside the kernel, so no float32 copy is materialized.
- Moments are *shifted one-pass* sums: `d = x - k`, with `k` per channel the
  mean of up to 64 of its values spread along the batch (a constant), then
  `mean = k + E[d]`
  and `var = max(E[d^2] - E[d]^2, 0)`. Both sums come from one read of `x`
  (`_channel_sums` explains how, on XLA:CPU).
  Shifting by values of the batch removes any common offset (1e7 with unit
  spread keeps its variance to 1e-6). A mean of 64 values from across the
  batch is typically within about `std / 8` of the batch mean, so `E[d]^2`
  is tiny next to `E[d^2]` and the cancellation costs almost nothing (a
  single first sample could be two or three standard deviations off and
  cost a digit, enough to fail Keras's own test now and then); and by
  Samuelson's inequality any mean of samples lies within `sqrt(n - 1)`
  standard deviations of the batch mean, which bounds the cancellation at
  about `n * eps` relative whatever the data.
- Normalization is `(x - mean) * (gamma * rsqrt(var + eps)) + beta`.
- The gradient saves only `x` and the per-channel mean and variance; `xhat` is
  recomputed in the backward kernel, which reads `x` and `dy` twice (both
  reductions in one pass, then `dx`). Upstream gradients of the returned mean
  and variance are honoured, folded into the per-channel coefficients of `dx`
  at no cost.
- Higher-order gradients are exact: the hand-written backward is itself a
  custom-gradient function whose own gradient is the automatic derivative of
  a plain TensorFlow formulation of the same VJP (`_reference_vjp`). First-order
  training never runs it; a gradient penalty or Hessian-vector product pays
  for it only when asked, and every further order is plain autodiff.
- An empty batch gives empty outputs and finite zero gradients (counts are
  floored at 1 in the divisions); its statistics are meaningless and the layer
  does not use them.

Inside an XLA context (a `jit_compile=True` step) the functions here emit the
plain formulation instead (the same shifted moments as plain reductions, left
to TensorFlow's autodiff): the whole step is one XLA program there, and a
nested kernel with its own gradient would only stand in the way of XLA's
fusions across the layer's neighbours.

Memory traffic is the cost (see benchmarks/): the forward pass reads `x` twice
and writes `y`; the backward reads `x` and `dy` twice and writes `dx`. That is
the 8-pass floor, with no full-size intermediate.
"""

import functools

import tensorflow as tf


def batch_norm_train(x, gamma, beta, *, axes, epsilon, out_dtype):
    """Training-mode batch normalization of `x` over `axes`.

    Args:
        x: Input tensor (any float dtype).
        gamma: Scale, float32/float64, broadcastable to `x` (keepdims layout).
        beta: Offset, same shape as `gamma`.
        axes: Tuple of reduced axes (static).
        epsilon: Variance epsilon (static).
        out_dtype: Dtype of the normalized output (static).

    Returns:
        `(y, mean, variance)`: `y` in `out_dtype`; `mean` and the biased
        `variance` in the compute dtype with keepdims shape.
    """
    if _in_xla_context():
        return _plain_train(x, gamma, beta, tuple(axes), epsilon, out_dtype)
    kernel = _train_kernel(
        tuple(gamma.shape), tuple(axes), float(epsilon), tf.as_dtype(out_dtype).name
    )
    return kernel(x, gamma, beta)


def batch_moments(x, *, axes):
    """Mean and biased variance of `x` over `axes` (keepdims), not differentiable.

    For state updates that need batch statistics without normalizing by them
    (noise with `normalize_with="moving"`).
    """
    if _in_xla_context():
        return _plain_moments(tf.stop_gradient(x), tuple(axes))
    return _moments_kernel(tuple(axes))(tf.stop_gradient(x))


def batch_norm_infer(x, mean, variance, gamma, beta, *, epsilon, out_dtype):
    """Normalizes `x` with given statistics in one fused XLA kernel."""
    if _in_xla_context():
        return _normalize(x, mean, variance, gamma, beta, epsilon, out_dtype)
    kernel = _infer_kernel(
        tuple(gamma.shape), float(epsilon), tf.as_dtype(out_dtype).name
    )
    return kernel(x, mean, variance, gamma, beta)


def _in_xla_context():
    """Whether the caller is being traced into an XLA computation already.

    Under `jit_compile=True` (a Keras `compile(jit_compile=True)` step) the
    whole step is one XLA program: a nested kernel with its own gradient
    would only stand between XLA and the fusions it makes across the layer's
    neighbours, so the plain formulation is emitted instead and XLA
    differentiates and fuses it with the rest.
    """
    from tensorflow.python.framework import ops
    from tensorflow.python.ops import control_flow_util

    graph = ops.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)


def _plain_moments(x, axes):
    """The shifted moments as plain reductions, differentiable by TensorFlow.

    The shift is a constant of the gradient; the derivative is still exact,
    since `mean = k + E[x - k]` and `var = E[(x - k)^2] - E[x - k]^2` depend on
    `k` only through rounding.
    """
    ct = _compute_dtype(x.dtype)
    shift = tf.stop_gradient(_shift(x, axes, ct))
    d = tf.cast(x, ct) - shift
    # Sums over a count floored at 1 (not reduce_mean): an empty batch whose
    # size is known only at run time gets finite statistics and gradients.
    n = _count(x, shift)
    centred_mean = tf.reduce_sum(d, axis=axes, keepdims=True) / n
    square_mean = tf.reduce_sum(d * d, axis=axes, keepdims=True) / n
    variance = tf.maximum(square_mean - centred_mean * centred_mean, 0.0)
    return shift + centred_mean, variance


def _plain_train(x, gamma, beta, axes, epsilon, out_dtype):
    mean, variance = _plain_moments(x, axes)
    y = _normalize(x, mean, variance, gamma, beta, epsilon, out_dtype)
    return y, mean, variance


def _normalize(x, mean, variance, gamma, beta, epsilon, out_dtype):
    """`(x - mean) * (gamma * rsqrt(variance + epsilon)) + beta`, upcast."""
    ct = _compute_dtype(x.dtype)
    scale = tf.cast(gamma, ct) * tf.math.rsqrt(tf.cast(variance, ct) + epsilon)
    y = (tf.cast(x, ct) - tf.cast(mean, ct)) * scale + tf.cast(beta, ct)
    return tf.cast(y, out_dtype)


# Rows added elementwise per row of the partial sums in `_channel_sums`: enough
# to make the partial small (1/32 of the input), few enough that the unrolled
# loop fusion stays cheap to compile and its 32 input streams stay in cache.
_SLICES = 32


def _channel_sums(terms, inputs, axes):
    """Sums each of `terms(*inputs)` over `axes` (keepdims), in one read.

    XLA:CPU does not fuse elementwise work into a reduction over a major
    dimension, which is what the batch axis of channels-last data is: it
    would write each term out in full and read it back (two extra passes
    per term). Instead the outermost reduced axis, of size n, is split into
    (n // S, S), and the S slices are added elementwise. That is a loop fusion
    computing the terms on the fly; it writes a partial sum S times smaller
    than the input, whose plain reduction is cheap. The `n % S` rows left
    over are summed directly.

    Args:
        terms: Function from slices of `inputs` to a tuple of same-shaped
            tensors; elementwise, so it applies to any slice.
        inputs: Tensors of one shape.
        axes: Reduced axes, sorted.

    Returns:
        A list with one keepdims sum per term.
    """
    rank = inputs[0].shape.rank
    a = axes[0]
    shape = tf.shape(inputs[0])
    n = shape[a]
    main = n - n % _SLICES
    split = tf.concat([shape[:a], [n // _SLICES, _SLICES], shape[a + 1 :]], 0)
    along = tf.one_hot(a, rank, dtype=shape.dtype)
    main_size = shape + (main - n) * along
    heads = [tf.reshape(tf.slice(t, [0] * rank, main_size), split) for t in inputs]
    partial = None
    for r in range(_SLICES):
        index = (slice(None),) * (a + 1) + (r,)
        # Stacking next to the split axis keeps each row's terms adjacent in
        # memory, so the fusion reads every input element once.
        row = tf.stack(terms(*[h[index] for h in heads]), axis=a + 1)
        partial = row if partial is None else partial + row
    stacked_axes = tuple(i if i <= a else i + 1 for i in axes)
    sums = tf.reduce_sum(partial, axis=stacked_axes, keepdims=True)
    rest = [tf.slice(t, main * along, shape - main * along) for t in inputs]
    return [
        s + tf.reduce_sum(t, axis=axes, keepdims=True)
        for s, t in zip(tf.unstack(sums, axis=a + 1), terms(*rest), strict=True)
    ]


def _compute_dtype(dtype):
    return tf.float64 if dtype == tf.float64 else tf.float32


# Values along the outermost reduced axis averaged into the shift: enough that
# the shift sits close to the mean (so the shifted sums barely cancel), few
# enough to cost nothing next to the full pass.
_SHIFT_ROWS = 64


def _shift(x, axes, dtype):
    """A per-channel constant near the mean, with keepdims shape.

    The mean of up to `_SHIFT_ROWS` values spread evenly along the outermost
    reduced axis (the batch, or batch x pixels for channels-last images), at
    index 0 of the other reduced axes. Sizes are clamped, so an empty input
    gives zeros of the right shape instead of a slice error.
    """
    rank = x.shape.rank
    shape = tf.shape(x)
    outer = axes[0]
    rows = tf.minimum(shape[outer], _SHIFT_ROWS)
    stride = tf.maximum(shape[outer] // _SHIFT_ROWS, 1)
    end = [
        stride * rows
        if i == outer
        else tf.minimum(shape[i], 1)
        if i in axes
        else shape[i]
        for i in range(rank)
    ]
    strides = [stride if i == outer else 1 for i in range(rank)]
    head = tf.strided_slice(x, [0] * rank, tf.stack(end), tf.stack(strides))
    # Tensor bounds hide the rank from shape inference; it is x's.
    head = tf.cast(tf.ensure_shape(head, [None] * rank), dtype)
    count = rows
    for i in axes[1:]:
        count = count * tf.minimum(shape[i], 1)
    count = tf.maximum(count, 1)
    return tf.reduce_sum(head, axis=axes, keepdims=True) / tf.cast(count, dtype)


def _sum_to(t, shape):
    """Sums `t` over the axes where `shape` (static) has size 1."""
    axes = [i for i, n in enumerate(shape) if n == 1]
    return tf.reshape(tf.reduce_sum(t, axis=axes, keepdims=True), shape)


def _shifted_moments(x, axes):
    """Shifted one-pass mean and variance in the compute dtype (keepdims)."""
    ct = _compute_dtype(x.dtype)
    shift = _shift(x, axes, ct)

    def shifted(v):
        d = tf.cast(v, ct) - shift
        return d, d * d

    centred_sum, square_sum = _channel_sums(shifted, [x], axes)
    n = _count(x, shift)
    centred_mean = centred_sum / n
    variance = tf.maximum(square_sum / n - centred_mean * centred_mean, 0.0)
    return shift + centred_mean, variance


def _count(x, stat):
    """Values reduced per statistic, at least 1 (so an empty batch stays finite)."""
    n = tf.size(x) // tf.maximum(tf.size(stat), 1)
    return tf.cast(tf.maximum(n, 1), stat.dtype)


def _reference_forward(x, gamma, beta, axes, epsilon, out_dtype):
    """The training forward pass as plain, differentiable TensorFlow."""
    ct = _compute_dtype(x.dtype)
    xc = tf.cast(x, ct)
    mean = tf.reduce_mean(xc, axis=axes, keepdims=True)
    variance = tf.reduce_mean(tf.square(xc - mean), axis=axes, keepdims=True)
    y = (xc - mean) * (tf.cast(gamma, ct) * tf.math.rsqrt(variance + epsilon))
    return tf.cast(y + tf.cast(beta, ct), out_dtype), mean, variance


def _reference_vjp(upstream, inputs, axes, epsilon, out_dtype):
    """`(dx, dgamma, dbeta)` of the plain forward pass, by autodiff."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = _reference_forward(*inputs, axes, epsilon, out_dtype)
    grads = tape.gradient(outputs, inputs, output_gradients=upstream)
    return _zeros_for_none(grads, inputs)


def _zeros_for_none(grads, like):
    return [
        tf.zeros_like(v) if g is None else g for g, v in zip(grads, like, strict=True)
    ]


@functools.cache
def _moments_kernel(axes):
    @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
    def kernel(x):
        return _shifted_moments(x, axes)

    return kernel


@functools.cache
def _train_kernel(param_shape, axes, epsilon, out_dtype):
    # One function per parameter shape (so per rank): the other dimensions may
    # then vary without retracing warnings, while gamma's shape stays static.

    @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
    def forward(x, gamma, beta):
        ct = _compute_dtype(x.dtype)
        mean, variance = _shifted_moments(x, axes)
        scale = tf.cast(gamma, ct) * tf.math.rsqrt(variance + epsilon)
        y = (tf.cast(x, ct) - mean) * scale + tf.cast(beta, ct)
        return tf.cast(y, out_dtype), mean, variance

    @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
    def backward(dy, dmean, dvar, x, gamma, mean, variance):
        ct = mean.dtype

        def upstream(e, v):
            e = tf.cast(e, ct)
            return e, e * (tf.cast(v, ct) - mean)

        sum_dy, sum_dy_centred = _channel_sums(upstream, [dy, x], axes)
        n = _count(x, mean)
        rstd = tf.math.rsqrt(variance + epsilon)
        sum_dy_xhat = sum_dy_centred * rstd
        centred = tf.cast(x, ct) - mean
        dy = tf.cast(dy, ct)
        g = tf.cast(gamma, ct) * rstd
        # dx = g * (dy - mean(dy) - xhat * mean(dy * xhat)) + dmean / n
        #      + dvar * 2 (x - mean) / n, with per-channel coefficients.
        coef_centred = (2.0 * dvar - g * rstd * sum_dy_xhat) / n
        coef_const = (dmean - g * sum_dy) / n
        dx = g * dy + centred * coef_centred + coef_const
        dgamma = _sum_to(sum_dy_xhat, param_shape)
        dbeta = _sum_to(sum_dy, param_shape)
        return (
            tf.cast(dx, x.dtype),
            tf.cast(dgamma, gamma.dtype),
            tf.cast(dbeta, gamma.dtype),
        )

    @tf.custom_gradient
    def kernel(x, gamma, beta):
        # Without stop_gradient, a tape around a graph would make TensorFlow
        # call a variant of `forward` that also returns its intermediates for
        # autodiff, which this hand-written gradient never uses.
        y, mean, variance = forward(
            tf.stop_gradient(x), tf.stop_gradient(gamma), tf.stop_gradient(beta)
        )

        def grad(dy, dmean, dvar):
            upstream = _zeros_for_none([dy, dmean, dvar], [y, mean, variance])
            return vjp(*upstream, x, gamma, beta, mean, variance)

        return (y, mean, variance), grad

    @tf.custom_gradient
    def vjp(dy, dmean, dvar, x, gamma, beta, mean, variance):
        # First order: the fused backward kernel. Its own gradient (second
        # order and up) differentiates the plain formulation, so it is exact.
        stopped = [tf.stop_gradient(t) for t in (dy, dmean, dvar, x, gamma)]
        grads = backward(*stopped, mean, variance)

        def second(*upper):
            inputs = [dy, dmean, dvar, x, gamma, beta]
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                first = _reference_vjp(inputs[:3], inputs[3:], axes, epsilon, out_dtype)
            upper = _zeros_for_none(upper, grads)
            out = tape.gradient(first, inputs, output_gradients=upper)
            # mean and variance are recomputed from x inside the reference.
            return _zeros_for_none(out, inputs) + [None, None]

        return grads, second

    return kernel


@functools.cache
def _infer_kernel(param_shape, epsilon, out_dtype):

    @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
    def kernel(x, mean, variance, gamma, beta):
        return _normalize(x, mean, variance, gamma, beta, epsilon, out_dtype)

    return kernel
