"""The kernels' backend-neutral numerics, written once (see `kbn.kernels`).

Plain arithmetic on whatever the caller passes: TensorFlow tensors, JAX
arrays, Keras tensors, or Python integers for static shapes. Where a formula
needs more than the arithmetic operators, it takes the backend's function as
an argument (`maximum=tf.maximum`, `jnp.maximum`, `keras.ops.maximum`, or
Python's `max` on static shapes), so each backend traces exactly the
operations it would write itself and nothing here costs a kernel anything.
This module imports no framework.
"""

# Values along the outermost reduced axis averaged into the shift: enough that
# the shift sits close to the mean (so the shifted sums barely cancel), few
# enough to cost nothing next to the full pass.
SHIFT_ROWS = 64


def compute_dtype(dtype):
    """The dtype statistics accumulate in for inputs of `dtype`.

    Args:
        dtype: A dtype with a `name` (TensorFlow or NumPy) or a dtype name.

    Returns:
        `"float64"` for float64 inputs, `"float32"` for every other (half
        precision is too narrow for sums of squares).
    """
    return "float64" if getattr(dtype, "name", dtype) == "float64" else "float32"


def count(size, stat_size, maximum):
    """Values reduced per statistic, at least 1 (so an empty batch stays finite).

    Args:
        size: Number of elements of the input.
        stat_size: Number of elements of one statistic (its channels).
        maximum: Elementwise maximum of the backend (`max` for Python ints).

    Returns:
        `max(size // max(stat_size, 1), 1)`, of the type of `size`.
    """
    return maximum(size // maximum(stat_size, 1), 1)


def shift_slice(shape, axes, minimum, maximum):
    """Where the values averaged into the shift lie, as a strided slice.

    Up to `SHIFT_ROWS` values spread evenly along the outermost reduced axis
    (the batch, or batch x pixels for channels-last images), at index 0 of the
    other reduced axes, all of every kept axis. Sizes are clamped, so an empty
    input gives an empty slice and a count of 1 instead of a slice error.

    Args:
        shape: The input's dimensions, a list (ints or scalar tensors).
        axes: Reduced axes, sorted.
        minimum: Elementwise minimum of the backend (`min` for Python ints).
        maximum: Elementwise maximum of the backend (`max` for Python ints).

    Returns:
        `(stop, strides, count)`: per axis, where the slice from 0 stops and
        its stride; and the number of values per channel in it, at least 1.
    """
    outer = axes[0]
    rows = minimum(shape[outer], SHIFT_ROWS)
    stride = maximum(shape[outer] // SHIFT_ROWS, 1)
    stop = [
        stride * rows if i == outer else minimum(shape[i], 1) if i in axes else shape[i]
        for i in range(len(shape))
    ]
    strides = [stride if i == outer else 1 for i in range(len(shape))]
    values = rows
    for i in axes[1:]:
        values = values * minimum(shape[i], 1)
    return stop, strides, maximum(values, 1)


def centred_moments(n, centred_sum, square_sum, maximum, *, reciprocal=False):
    """The centred mean and the variance from shifted sums.

    With `d = x - shift`: `E[d]` and `max(E[d^2] - E[d]^2, 0)` (rounding may
    never make a variance negative). The mean is `shift + E[d]`.

    Args:
        n: Values per statistic (nonzero), broadcastable to the sums.
        centred_sum: Sum of `d` per channel.
        square_sum: Sum of `d * d` per channel.
        maximum: Elementwise maximum of the backend.
        reciprocal: Whether `n` is `1 / count` instead (the sums are then
            multiplied by it).

    Returns:
        `(centred_mean, variance)`.
    """
    if reciprocal:
        centred_mean, square_mean = centred_sum * n, square_sum * n
    else:
        centred_mean, square_mean = centred_sum / n, square_sum / n
    variance = maximum(square_mean - centred_mean * centred_mean, 0.0)
    return centred_mean, variance


def normalize(centred, variance, gamma, beta, epsilon, rsqrt):
    """`centred * (gamma * rsqrt(variance + epsilon)) + beta`.

    Args:
        centred: `x - mean`, in the compute dtype.
        variance: Per-channel variance, in the compute dtype.
        gamma: Per-channel scale, in the compute dtype.
        beta: Per-channel offset, in the compute dtype.
        epsilon: Variance epsilon.
        rsqrt: Elementwise reciprocal square root of the backend.

    Returns:
        The normalized values, in the compute dtype.
    """
    return centred * (gamma * rsqrt(variance + epsilon)) + beta


def input_gradient(dy, centred, sums, gamma, rstd, dmean, dvar, n):
    """`dx` of training-mode batch normalization, with per-channel coefficients.

    `dx = g * (dy - mean(dy) - xhat * mean(dy * xhat)) + dmean / n
    + dvar * 2 (x - mean) / n` with `g = gamma * rstd`, written as
    `g * dy + (x - mean) * coef_centred + coef_const` so that the full-size
    work is one multiply-add per term.

    Args:
        dy: Upstream gradient of the output, in the compute dtype.
        centred: `x - mean`, in the compute dtype.
        sums: `(sum(dy), sum(dy * (x - mean)))` per channel (keepdims).
        gamma: Per-channel scale, in the compute dtype.
        rstd: `rsqrt(variance + epsilon)` per channel.
        dmean: Upstream gradient of the returned mean, in the compute dtype.
        dvar: Upstream gradient of the returned variance, same.
        n: Values per statistic (nonzero).

    Returns:
        `(dx, sum_dy_xhat)`: `dx` in the compute dtype, and
        `sum(dy * xhat)` per channel, which summed to gamma's shape is
        `dgamma` (as `sum(dy)` is `dbeta`).
    """
    sum_dy, sum_dy_centred = sums
    sum_dy_xhat = sum_dy_centred * rstd
    g = gamma * rstd
    coef_centred = (2.0 * dvar - g * rstd * sum_dy_xhat) / n
    coef_const = (dmean - g * sum_dy) / n
    return g * dy + centred * coef_centred + coef_const, sum_dy_xhat


def summed_axes(param_shape):
    """Axes where `param_shape` has size 1: those a gradient sums over."""
    return tuple(i for i, n in enumerate(param_shape) if n == 1)


# How a backend function computes: "kernel" (the compiled kernel with its
# hand-written gradient), "plain" (the same shifted moments and
# normalization as ordinary ops, differentiated by the framework) or "auto"
# (`prefers_kernel` decides from the static shape).
FORMULATIONS = ("auto", "kernel", "plain")

# The batch size assumed for a batch axis whose size is unknown when the step
# is traced (Keras traces `fit`'s step with an unknown batch size): Keras's
# default `batch_size`.
ASSUMED_BATCH = 32


def check_formulation(formulation):
    """`formulation`, or a ValueError naming the argument."""
    if formulation not in FORMULATIONS:
        raise ValueError(
            f"Argument `formulation` must be one of {FORMULATIONS}. "
            f"Received: formulation={formulation!r}"
        )
    return formulation


def prefers_kernel(shape, min_values):
    """Whether the kernel is expected to beat the plain formulation.

    The kernel's cost is one or two compiled launches per call whatever the
    size, and it saves passes over memory; the plain formulation is a dozen
    small ops that a framework runs, or fuses, with the rest of the step. So
    the kernel pays from some number of values on, which each backend
    measured (its `MIN_KERNEL_VALUES`, with the figures behind it).

    Args:
        shape: The input's static shape; an unknown size counts as
            `ASSUMED_BATCH` (the batch axis is the one left unknown).
        min_values: The backend's threshold, in values.

    Returns:
        True when the input holds at least `min_values` values.
    """
    size = 1
    for n in shape:
        size *= ASSUMED_BATCH if n is None else n
    return size >= min_values
