"""Argument checks for `kbn.BatchNormalization`, in one place.

Each check raises a `ValueError` that names the argument and the value it got.
They accept every value the stock Keras layer accepts with the stock meaning
(`momentum=1.0` freezes the statistics, `epsilon=0` adds nothing, a NumPy
integer is an axis), and refuse what would be silently wrong.
"""

import math
import operator

COMPILE_CHOICES = ("auto", True, False)


def axes_argument(axis):
    """`axis` as an int or a list of ints (NumPy integers accepted)."""
    items = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    try:
        if any(isinstance(a, bool) for a in items):
            raise TypeError
        values = [operator.index(a) for a in items]
    except TypeError:
        values = None
    if not values or len(set(values)) != len(values):
        raise ValueError(
            "Argument `axis` must be an integer or a non-empty list of distinct "
            f"integers. Received: axis={axis!r}"
        )
    return values if isinstance(axis, (list, tuple)) else values[0]


def normalize_axes(axis, rank):
    """Sorted, non-negative feature axes for an input of `rank`."""
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    for a in axes:
        if not -rank <= a < rank:
            raise ValueError(
                f"Argument `axis` is out of range for an input of rank {rank}. "
                f"Received: axis={axis}"
            )
    normalized = sorted(a % rank for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ValueError(
            f"Argument `axis` names the same axis twice for rank {rank}. "
            f"Received: axis={axis}"
        )
    return tuple(normalized)


def unit_interval(name, value, allow_none=False):
    """A float in [0, 1] (1 freezes a moving average), or None if allowed."""
    if value is None and allow_none:
        return None
    number = _finite(value)
    if number is None or not 0.0 <= number <= 1.0:
        allowed = "a float in [0, 1]" + (" or None" if allow_none else "")
        raise ValueError(
            f"Argument `{name}` must be {allowed}. Received: {name}={value!r}"
        )
    return number


def non_negative(name, value):
    number = _finite(value)
    if number is None or number < 0.0:
        raise ValueError(
            f"Argument `{name}` must be a float >= 0. Received: {name}={value!r}"
        )
    return number


def positive_int_or_none(name, value):
    if value is None:
        return None
    number = _integer(value)
    if number is None or number < 1:
        raise ValueError(
            f"Argument `{name}` must be a positive integer or None. "
            f"Received: {name}={value!r}"
        )
    return number


def seed(value):
    if value is None:
        return None
    number = _integer(value)
    if number is None:
        raise ValueError(
            f"Argument `seed` must be an integer or None. Received: seed={value!r}"
        )
    return number


def compile_choice(value):
    if not isinstance(value, (str, bool)) or value not in COMPILE_CHOICES:
        raise ValueError(
            "Argument `compile_moments` must be one of 'auto', True or "
            f"False. Received: compile_moments={value!r}"
        )
    return value


def combination(
    *, backend, compile_moments, renorm, synchronized, momentum, virtual_batch_size
):
    """Refuses, at construction, combinations no path can honour."""
    if synchronized and virtual_batch_size is not None:
        raise ValueError(
            "Argument `synchronized=True` cannot be combined with "
            "`virtual_batch_size`: ghost batches are local by design. Received: "
            f"synchronized={synchronized}, virtual_batch_size={virtual_batch_size}"
        )
    if renorm and momentum is None:
        raise ValueError(
            "Argument `renorm=True` cannot be combined with `momentum=None` (a "
            "cumulative average has no renorm counterpart). Received: "
            f"renorm={renorm}, momentum={momentum}"
        )
    if compile_moments is not True:
        return
    if backend not in ("tensorflow", "jax"):
        raise ValueError(
            "compile_moments=True needs the TensorFlow or JAX backend; the "
            f"current backend is {backend!r}. Use compile_moments='auto'."
        )
    if renorm or synchronized:
        raise ValueError(
            "compile_moments=True cannot be combined with renorm=True or "
            "synchronized=True, which use the portable path. "
            f"Received: renorm={renorm}, synchronized={synchronized}"
        )


def _integer(value):
    """`value` as an int (NumPy integers too), or None; bools are not integers."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _finite(value):
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
