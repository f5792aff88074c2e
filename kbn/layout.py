"""Where the features are: the canonical view the statistics are computed in.

A batch of any rank is viewed, without copying, as `(pre, F, post)` when its
feature axes are one contiguous block (every single-axis case): statistics
reduce over axes 0 and 2, and XLA sees a plain row or column reduction instead
of a reduction over scattered axes. Ghost BN splits the batch axis in front:
`(ghosts, pre / ghosts, F, post)`, reducing over axes 1 and 3. Non-contiguous
feature axes keep the input's own layout.
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
        ghosts: Number of ghost batches, or None.
    """

    input_rank: int
    feature_axes: tuple
    feature_shape: tuple
    ghosts: int | None = None

    @property
    def contiguous(self):
        first, last = self.feature_axes[0], self.feature_axes[-1]
        return last - first + 1 == len(self.feature_axes)

    @property
    def reduction_axes(self):
        """Axes of the view that statistics reduce over."""
        if self.contiguous:
            axes = (0, 2)
        else:
            axes = tuple(
                i for i in range(self.input_rank) if i not in self.feature_axes
            )
        if self.ghosts is not None:
            axes = tuple(a + 1 for a in axes)
        return axes

    @property
    def param_view_shape(self):
        """Shape that gamma and beta take to broadcast against the view."""
        if self.contiguous:
            shape = (1, math.prod(self.feature_shape), 1)
        else:
            sizes = dict(zip(self.feature_axes, self.feature_shape, strict=True))
            shape = tuple(sizes.get(i, 1) for i in range(self.input_rank))
        if self.ghosts is not None:
            shape = (1,) + shape
        return shape

    def view(self, x):
        """Reshapes `x` (or a broadcast mask) into the statistics view."""
        if self.contiguous:
            shape = ops.shape(x)
            first, last = self.feature_axes[0], self.feature_axes[-1] + 1
            pre = _prod(shape[:first])
            post = _prod(shape[last:])
            view = [pre, math.prod(self.feature_shape), post]
        else:
            view = list(ops.shape(x))
        if self.ghosts is not None:
            view = [self.ghosts, view[0] // self.ghosts] + view[1:]
        return ops.reshape(x, view)

    def params(self, p):
        """Reshapes a parameter or statistic of `feature_shape` to the view."""
        return ops.reshape(p, self.param_view_shape)

    def features(self, stat):
        """Reshapes a keepdims statistic of the view back to `feature_shape`."""
        return ops.reshape(stat, self.feature_shape)


def _prod(dims):
    out = 1
    for d in dims:
        out = out * d
    return out
