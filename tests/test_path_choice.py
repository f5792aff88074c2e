"""Which formulation "auto" takes in a layer, and what the view costs.

The rule (`kbn.kernels.common.prefers_kernel`) counts the values of the
layer's input, an unknown batch size as `ASSUMED_BATCH`; the layer's view of
a channels-last batch is `(None, C)`, so the rule must see the input's shape,
not the view's. A dense or channels-last layer's view adds no dynamic shape
ops to the traced step (each is a traced op and a launch in a small model).
"""

import math

import numpy as np
import pytest
import tensorflow as tf

import kbn
from kbn.kernels import common
from kbn.kernels import tensorflow as tf_kernels


def _traced_formulations(monkeypatch, shape, **options):
    seen = []
    real = tf_kernels.batch_norm_train

    def spy(*args, **kwargs):
        seen.append(kwargs["formulation"])
        return real(*args, **kwargs)

    monkeypatch.setattr(tf_kernels, "batch_norm_train", spy)
    layer = kbn.BatchNormalization(**options)
    layer.build(shape)  # variables made outside the trace: one trace

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def step(x):
        return layer(x, training=True)

    step.get_concrete_function()
    return seen


def _expected(shape):
    values = math.prod(common.ASSUMED_BATCH if n is None else n for n in shape)
    return "kernel" if values >= tf_kernels.MIN_KERNEL_VALUES else "plain"


@pytest.mark.parametrize(
    "shape",
    [(None, 8, 8, 32), (None, 8, 8, 31), (None, 100), (None, 4096), (60, 8, 8, 32)],
)
def test_auto_counts_the_inputs_values_not_the_views(monkeypatch, shape):
    seen = _traced_formulations(monkeypatch, shape)
    assert seen == [_expected(shape)]


def test_both_sides_of_the_threshold_are_exercised():
    """The shapes above straddle the threshold (the test would pass
    vacuously if they all fell on one side)."""
    sides = {_expected(s) for s in [(None, 8, 8, 32), (None, 8, 8, 31)]}
    assert sides == {"kernel", "plain"}


def test_compile_moments_true_always_takes_the_kernel(monkeypatch):
    seen = _traced_formulations(monkeypatch, (None, 100), compile_moments=True)
    assert seen == ["kernel"]


@pytest.mark.parametrize("shape", [(None, 100), (None, 8, 8, 16)])
def test_trailing_feature_views_add_no_dynamic_shape_ops(shape):
    layer = kbn.BatchNormalization()
    layer.build(shape)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def step(x):
        return layer(x, training=True)

    graph = step.get_concrete_function().graph
    types = [op.type for op in graph.get_operations()]
    # One Shape: the batch size, for the empty-batch guard; no packed shapes.
    assert types.count("Shape") == 1 and "Pack" not in types
    y = step(np.random.default_rng(0).normal(size=(5,) + shape[1:]))
    assert y.shape == (5,) + shape[1:]
