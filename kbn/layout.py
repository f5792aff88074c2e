"""Where the features are, and how a batch splits into ghost batches.

A batch of any rank is viewed, without copying, as `(pre, F, post)` when its
feature axes are one contiguous block (every single-axis case): statistics
reduce over axes 0 and 2, and XLA sees a plain row or column reduction instead
of a reduction over scattered axes. Features that end the shape (dense and
channels-last layers) drop `post`: the view is `(rows, F)`, reducing over
axis 0, which is the input itself at rank 2 and one static reshape otherwise
(each dynamic shape op is a traced op and a launch in a small model's step).
Non-contiguous feature axes keep the input's own layout. Ghost BN puts a
ghost axis in front: `(ghosts, pre / ghosts, F, post)`, reducing over axes 1
and 3.

Ghost batches for any batch size (`ghost_blocks`): `n` rows and a virtual
batch size `v` give `g = ceil(n / v)` ghost batches (one when `n <= v`) whose
sizes differ by at most one: the first `n mod g` have `n // g + 1` rows, the
others `n // g`. No ghost batch is larger than `v`. The split is two regular
blocks, so each is a reshape, and the sizes may be tensors (a `fit` batch
whose size is known only at run time) as well as Python ints.

The sizes here may be Python ints (static shapes) or scalar tensors (dynamic
ones); every helper works with both.
"""

import dataclasses
import math

from keras import ops


@dataclasses.dataclass(frozen=True)
class FeatureLayout:
    """A static plan mapping an input of one rank onto its statistics view.

    Attributes:
        input_rank: Rank of the layer's input.
        feature_axes: Sorted, non-negative feature axes.
        feature_shape: Sizes of the feature axes (the parameter shape).
        ghosted: Whether views carry a leading ghost axis.
    """

    input_rank: int
    feature_axes: tuple
    feature_shape: tuple
    ghosted: bool = False

    @property
    def contiguous(self):
        first, last = self.feature_axes[0], self.feature_axes[-1]
        return last - first + 1 == len(self.feature_axes)

    @property
    def trailing(self):
        """Whether the view is `(rows, F)`: contiguous features ending the
        shape, no ghost axis."""
        last = self.feature_axes[-1] == self.input_rank - 1
        return self.contiguous and last and not self.ghosted

    @property
    def reduction_axes(self):
        """Axes of the view that statistics reduce over."""
        if self.trailing:
            return (0,)
        if self.contiguous:
            axes = (0, 2)
        else:
            axes = tuple(
                i for i in range(self.input_rank) if i not in self.feature_axes
            )
        if self.ghosted:
            axes = tuple(a + 1 for a in axes)
        return axes

    @property
    def param_view_shape(self):
        """Shape that gamma and beta take to broadcast against the view."""
        if self.trailing:
            return (1, math.prod(self.feature_shape))
        if self.contiguous:
            shape = (1, math.prod(self.feature_shape), 1)
        else:
            sizes = dict(zip(self.feature_axes, self.feature_shape, strict=True))
            shape = tuple(sizes.get(i, 1) for i in range(self.input_rank))
        if self.ghosted:
            shape = (1,) + shape
        return shape

    def view(self, x, ghosts=None):
        """Reshapes `x` (or a broadcast mask) into the statistics view.

        Args:
            x: A tensor of the layer's input rank.
            ghosts: With a ghosted layout, the number of ghost batches in `x`
                (all of one size).
        """
        if self.trailing:
            if self.input_rank == 2 and len(self.feature_axes) == 1:
                return x
            return ops.reshape(x, (-1, math.prod(self.feature_shape)))
        shape = ops.shape(x)
        per_row = 1  # values per batch row in front of the features
        if self.contiguous:
            first, last = self.feature_axes[0], self.feature_axes[-1] + 1
            view = [prod(shape[:first]), math.prod(self.feature_shape)]
            view.append(prod(shape[last:]))
            per_row = prod(shape[1:first])
        else:
            view = list(shape)
        if self.ghosted:
            # Ghost BN never has a feature axis 0, so view[0] = rows * per_row.
            size = shape[0] // maximum(ghosts, 1)
            view = [ghosts, size * per_row] + view[1:]
        return ops.reshape(x, view)

    def unview(self, y, like):
        """Reshapes a view `y` back to the shape of `like` (the input).

        No op where the static shapes already agree (a rank-2 input); a
        static target, with -1 for one unknown size, where that is
        unambiguous; the input's dynamic shape otherwise.
        """
        static = tuple(like.shape)
        if tuple(y.shape) == static:
            return y
        if 0 not in static and sum(d is None for d in static) <= 1:
            return ops.reshape(y, tuple(-1 if d is None else d for d in static))
        return ops.reshape(y, ops.shape(like))

    def params(self, p):
        """Reshapes a parameter or statistic of `feature_shape` to the view."""
        return ops.reshape(p, self.param_view_shape)

    def broadcastable(self, p):
        """A parameter of `feature_shape` in a shape that broadcasts against
        the view: itself where it already does (a `(rows, F)` view with one
        feature axis), saving a traced op; else `params(p)`."""
        if self.trailing and len(self.feature_axes) == 1:
            return ops.cast(p, p.dtype)  # a Variable read as a tensor
        return self.params(p)

    def features(self, stat):
        """Reshapes a keepdims statistic of the view back to `feature_shape`."""
        return ops.reshape(stat, self.feature_shape)

    def reduced_count(self, view, like):
        """Values behind each statistic of `view`, shaped like `like`."""
        shape = ops.shape(view)
        n = prod(shape[a] for a in self.reduction_axes)
        return ops.ones_like(like) * ops.cast(n, like.dtype)

    def values_per_feature(self, shape):
        """Number of values one statistic reduces over an input of `shape`."""
        return prod(d for i, d in enumerate(shape) if i not in self.feature_axes)


@dataclasses.dataclass(frozen=True)
class GhostBlock:
    """`ghosts` ghost batches of `size` rows each, from row `start` on."""

    start: object
    ghosts: object
    size: object

    @property
    def stop(self):
        return self.start + self.ghosts * self.size


def ghost_blocks(rows, virtual_batch_size):
    """Splits `rows` into ghost batches as evenly as possible.

    Returns:
        `(count, blocks)`: the number of ghost batches and a list of one or two
        `GhostBlock`s covering the rows in order. With static sizes, a block
        known to be empty is left out.
    """
    v = virtual_batch_size
    count = maximum((rows + v - 1) // v, 1)
    size = rows // count
    larger = rows - count * size  # ghost batches of size + 1 rows, first
    if all(isinstance(n, int) for n in (rows, larger)):
        if larger == 0:
            return count, [GhostBlock(0, count, size)]
    head = GhostBlock(0, larger, size + 1)
    tail = GhostBlock(head.stop, count - larger, size)
    return count, [head, tail]


def prod(dims):
    """Product of sizes that may be Python ints or scalar tensors (no
    multiplication by a leading 1: in a traced graph each is an op)."""
    out = None
    for d in dims:
        out = d if out is None else out * d
    return 1 if out is None else out


def maximum(a, b):
    """`max` for Python ints, `ops.maximum` for tensors."""
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    return ops.maximum(a, b)
