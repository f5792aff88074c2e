"""The contract of `kbn.kernels` as XLA-compiled TensorFlow kernels.

The training kernel computes the statistics and the normalization in one
`tf.function(jit_compile=True)` and has a hand-written gradient, so a step is
fused by XLA even when the model around it is not compiled (Keras turns
whole-model XLA off on CPU and under `tf.distribute`). The numerics are those
of `kbn.kernels` (written in `kbn.kernels.common`); what is TensorFlow's own:

- Both shifted sums come from one read of `x` (`_channel_sums` explains how,
  on XLA:CPU).
- The gradient saves only `x` and the per-channel mean and variance; `xhat` is
  recomputed in the backward kernel, which reads `x` and `dy` twice (both
  reductions in one pass, then `dx`).
- Higher-order gradients are exact: the hand-written backward is itself a
  custom-gradient function whose own gradient is the automatic derivative of
  a plain TensorFlow formulation of the same VJP (`_reference_vjp`). First-order
  training never runs it; a gradient penalty or Hessian-vector product pays
  for it only when asked, and every further order is plain autodiff.

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

from kbn.kernels import common, registered_gradient

# Below this many values a call takes the plain formulation under "auto":
# the kernel's launches (forward, backward) and the function call around
# them cost more than the passes it saves. Measured with
# `python -m benchmarks.crossover` (2026-12-03, 2 shared cores, a layer's
# training step traced with an unknown batch size; plain / kernel time,
# medians of two runs; benchmarks/results/crossover.md): (60, 100)
# 0.73-0.77, (256, 100) 0.88, (60, 8, 8, 32) 1.44-1.74, (1024, 512)
# 1.31-2.18, (32, 28, 28, 32) 1.49-1.70, (64, 32, 32, 64) 2.20-2.39; again
# on 2026-12-06 after the plain formulation's op cuts: (60, 100) 0.70-0.77,
# (256, 100) 0.94-0.97, (60, 8, 8, 32) 1.34-1.68, (32, 16, 16, 32)
# 1.44-1.60, (1024, 512) 1.33-1.47, (32, 28, 28, 32) 1.59-1.62. Counted
# on the layer's input (an unknown size as 32). Not counted: the kernel's
# compile, about 0.5 s per program and batch shape, once per process
# (`python -m benchmarks.kernel_compile`).
MIN_KERNEL_VALUES = 1 << 16


def batch_norm_train(x, gamma, beta, *, axes, epsilon, out_dtype, formulation="auto"):
    """Training-mode batch normalization of `x` over `axes` (see `kbn.kernels`)."""
    axes = tuple(axes)
    if _plain(x, formulation):
        return _plain_train(x, gamma, beta, axes, epsilon, out_dtype)
    kernel = _train_kernel(
        tuple(gamma.shape), axes, float(epsilon), tf.as_dtype(out_dtype).name
    )
    return kernel(x, gamma, beta)


def batch_moments(x, *, axes, formulation="auto"):
    """Mean and biased variance of `x` over `axes` (see `kbn.kernels`)."""
    axes = tuple(axes)
    if _plain(x, formulation):
        return _plain_moments(tf.stop_gradient(x), axes)
    return _moments_kernel(axes, len(x.shape))(tf.stop_gradient(x))


def batch_norm_infer(
    x, mean, variance, gamma, beta, *, epsilon, out_dtype, formulation="auto"
):
    """Normalizes `x` with given statistics in one XLA kernel (see `kbn.kernels`)."""
    if _plain(x, formulation):
        return _normalize(x, mean, variance, gamma, beta, epsilon, out_dtype)
    kernel = _infer_kernel(
        tuple(gamma.shape), float(epsilon), tf.as_dtype(out_dtype).name
    )
    return kernel(x, mean, variance, gamma, beta)


def _plain(x, formulation):
    """Whether this call emits the plain formulation instead of a kernel.

    Always inside an XLA context (below); otherwise as `formulation` says,
    "auto" by size (`common.prefers_kernel`).
    """
    common.check_formulation(formulation)
    if _in_xla_context():
        return True
    if formulation == "auto":
        return not common.prefers_kernel(x.shape, MIN_KERNEL_VALUES)
    return formulation == "plain"


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
    """The moments as plain reductions, differentiable by TensorFlow.

    Shifted sums, `mean = k + E[x - k]`, `var = E[(x - k)^2] - E[x - k]^2`,
    with `k` a constant of the gradient (so it stays exact, `kbn.kernels`).
    Inside an XLA context `k` is the kernel's shift and XLA fuses both sums
    into one read of `x`. Elsewhere, which is below `MIN_KERNEL_VALUES`, where
    each op's launch costs more than its passes, `k` is the mean from a first
    pass (the corrected two-pass algorithm, `kbn.moments`): one reduction
    instead of the shift's strided slice, a dozen small ops when the batch
    size is not static.
    """
    ct = common.compute_dtype(x.dtype)
    xc = tf.cast(x, ct)
    # Sums over a count floored at 1 (not reduce_mean): an empty batch whose
    # size is known only at run time gets finite statistics and gradients.
    reciprocal = not _in_xla_context()
    if not reciprocal:
        shift = tf.stop_gradient(_shift(x, axes, ct))
        n = _count(x, shift)
    else:
        total = tf.reduce_sum(xc, axis=axes, keepdims=True)
        # Sums times 1 / n, not divided by n: the count takes no gradient,
        # and a product's gradient skips it where a quotient's is traced.
        n = 1.0 / _count(x, total)
        shift = tf.stop_gradient(total * n)
    d = xc - shift
    centred_mean, variance = common.centred_moments(
        n,
        tf.reduce_sum(d, axis=axes, keepdims=True),
        tf.reduce_sum(d * d, axis=axes, keepdims=True),
        tf.maximum,
        reciprocal=reciprocal,
    )
    return shift + centred_mean, variance


def _plain_train(x, gamma, beta, axes, epsilon, out_dtype):
    mean, variance = _plain_moments(x, axes)
    y = _normalize(x, mean, variance, gamma, beta, epsilon, out_dtype)
    return y, mean, variance


def _normalize(x, mean, variance, gamma, beta, epsilon, out_dtype):
    """`common.normalize` in the compute dtype, cast to `out_dtype`."""
    ct = common.compute_dtype(x.dtype)
    centred = tf.cast(x, ct) - tf.cast(mean, ct)
    y = common.normalize(
        centred,
        tf.cast(variance, ct),
        tf.cast(gamma, ct),
        tf.cast(beta, ct),
        epsilon,
        tf.math.rsqrt,
    )
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


def _shift(x, axes, dtype):
    """A per-channel constant near the mean, keepdims (`common.shift_slice`)."""
    rank = x.shape.rank
    shape = tf.shape(x)
    stop, strides, count = common.shift_slice(
        [shape[i] for i in range(rank)], axes, tf.minimum, tf.maximum
    )
    head = tf.strided_slice(x, [0] * rank, tf.stack(stop), tf.stack(strides))
    # Tensor bounds hide the rank from shape inference; it is x's.
    head = tf.cast(tf.ensure_shape(head, [None] * rank), dtype)
    return tf.reduce_sum(head, axis=axes, keepdims=True) / tf.cast(count, dtype)


def _sum_to(t, shape):
    """Sums `t` over the axes where `shape` (static) has size 1."""
    axes = common.summed_axes(shape)
    return tf.reshape(tf.reduce_sum(t, axis=axes, keepdims=True), shape)


def _shifted_moments(x, axes):
    """Shifted one-pass mean and variance in the compute dtype (keepdims)."""
    ct = common.compute_dtype(x.dtype)
    shift = _shift(x, axes, ct)

    def shifted(v):
        d = tf.cast(v, ct) - shift
        return d, d * d

    centred_sum, square_sum = _channel_sums(shifted, [x], axes)
    centred_mean, variance = common.centred_moments(
        _count(x, shift), centred_sum, square_sum, tf.maximum
    )
    return shift + centred_mean, variance


def _count(x, stat):
    """`common.count` for `x` and one of its statistics, in the stat's dtype.

    The statistic's size is static where known (each op on it is a traced
    op in every step that calls the layer).
    """
    stat_size = stat.shape.num_elements()
    stat_size = tf.size(stat) if stat_size is None else stat_size
    n = common.count(tf.size(x), stat_size, _maximum)
    return tf.cast(n, stat.dtype)


def _maximum(a, b):
    """`max` for Python ints, `tf.maximum` otherwise."""
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    return tf.maximum(a, b)


def _reference_forward(x, gamma, beta, axes, epsilon, out_dtype):
    """The training forward pass as plain, differentiable TensorFlow."""
    ct = common.compute_dtype(x.dtype)
    xc = tf.cast(x, ct)
    # Two-pass, the plainest formulation: this is what second-order gradients
    # differentiate, never what the first-order kernels compute.
    mean = tf.reduce_mean(xc, axis=axes, keepdims=True)
    variance = tf.reduce_mean(tf.square(xc - mean), axis=axes, keepdims=True)
    y = common.normalize(
        xc - mean,
        variance,
        tf.cast(gamma, ct),
        tf.cast(beta, ct),
        epsilon,
        tf.math.rsqrt,
    )
    return tf.cast(y, out_dtype), mean, variance


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
def _moments_kernel(axes, rank):
    # One function per rank: a relaxed retrace across ranks would hide the
    # rank the shift's slice needs.
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
        ct = common.compute_dtype(x.dtype)
        mean, variance = _shifted_moments(x, axes)
        y = common.normalize(
            tf.cast(x, ct) - mean,
            variance,
            tf.cast(gamma, ct),
            tf.cast(beta, ct),
            epsilon,
            tf.math.rsqrt,
        )
        return tf.cast(y, out_dtype), mean, variance

    @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
    def backward(dy, dmean, dvar, x, gamma, mean, variance):
        ct = mean.dtype

        def upstream(e, v):
            e = tf.cast(e, ct)
            return e, e * (tf.cast(v, ct) - mean)

        sums = _channel_sums(upstream, [dy, x], axes)
        dx, sum_dy_xhat = common.input_gradient(
            tf.cast(dy, ct),
            tf.cast(x, ct) - mean,
            sums,
            tf.cast(gamma, ct),
            tf.math.rsqrt(variance + epsilon),
            dmean,
            dvar,
            _count(x, mean),
        )
        dgamma = _sum_to(sum_dy_xhat, param_shape)
        dbeta = _sum_to(sums[0], param_shape)
        return (
            tf.cast(dx, x.dtype),
            tf.cast(dgamma, gamma.dtype),
            tf.cast(dbeta, gamma.dtype),
        )

    def train(x, gamma, beta):
        # Without stop_gradient, a tape around a graph would make TensorFlow
        # call a variant of `forward` that also returns its intermediates for
        # autodiff, which this hand-written gradient never uses.
        return forward(*(tf.stop_gradient(t) for t in (x, gamma, beta)))

    def train_gradient(inputs, results, upstream):
        x, gamma, beta = inputs
        y, mean, variance = results
        upstream = _zeros_for_none(upstream, results)
        return vjp(*upstream, x, gamma, beta, mean, variance)

    def first_order(dy, dmean, dvar, x, gamma, beta, mean, variance):
        # The fused backward kernel. Its own gradient (second order and up)
        # differentiates the plain formulation, so it is exact.
        stopped = [tf.stop_gradient(t) for t in (dy, dmean, dvar, x, gamma)]
        return backward(*stopped, mean, variance)

    def second_order(inputs, results, upper):
        inputs = inputs[:6]  # mean and variance: recomputed in the reference
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            first = _reference_vjp(inputs[:3], inputs[3:], axes, epsilon, out_dtype)
        upper = _zeros_for_none(upper, results)
        out = tape.gradient(first, inputs, output_gradients=upper)
        return _zeros_for_none(out, inputs) + [None, None]

    # Gradients registered once for this cache entry, not per traced graph
    # (`registered_gradient` says why): every model reuses them and the
    # traced and compiled kernels.
    vjp = registered_gradient.differentiable(first_order, second_order, outputs=3)
    return registered_gradient.differentiable(train, train_gradient, outputs=3)


@functools.cache
def _infer_kernel(param_shape, epsilon, out_dtype):

    @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
    def kernel(x, mean, variance, gamma, beta):
        return _normalize(x, mean, variance, gamma, beta, epsilon, out_dtype)

    return kernel
