"""Every invalid argument raises a ValueError naming the argument and the value."""

import numpy as np
import pytest

import kbn

BAD_ARGUMENTS = [
    ("epsilon", dict(epsilon=-1e-3)),
    ("momentum", dict(momentum=1.5)),
    ("momentum", dict(momentum=-0.1)),
    ("momentum", dict(momentum="fast")),
    ("renorm_momentum", dict(renorm=True, renorm_momentum=1.5)),
    ("virtual_batch_size", dict(virtual_batch_size=0)),
    ("virtual_batch_size", dict(virtual_batch_size=2.5)),
    ("compile_moments", dict(compile_moments="yes")),
    ("compile_moments", dict(compile_moments=1)),
    ("axis", dict(axis=[])),
    ("axis", dict(axis=[1, 1])),
    ("axis", dict(axis="last")),
    ("seed", dict(seed="abc")),
    ("noise", dict(noise="gaussian")),
    ("compile_moments", dict(compile_moments=True, renorm=True)),
    ("renorm", dict(renorm=True, momentum=None)),
    ("virtual_batch_size", dict(synchronized=True, virtual_batch_size=4)),
    ("epsilon", dict(epsilon=float("nan"))),
]


@pytest.mark.parametrize("name,kwargs", BAD_ARGUMENTS)
def test_invalid_constructor_argument_names_itself(name, kwargs):
    with pytest.raises(ValueError, match=name):
        kbn.BatchNormalization(**kwargs)


@pytest.mark.parametrize("axis", [2, -3, [1, 5]])
def test_axis_out_of_range_for_the_input(axis):
    layer = kbn.BatchNormalization(axis=axis)
    with pytest.raises(ValueError, match=r"axis.*out of range"):
        layer(np.zeros((4, 3), "float32"))


def test_virtual_batch_size_cannot_split_a_feature_axis():
    with pytest.raises(ValueError, match="virtual_batch_size"):
        kbn.BatchNormalization(axis=0, virtual_batch_size=2)(
            np.zeros((4, 3), "float32")
        )


def test_compile_moments_true_refuses_a_mask():
    layer = kbn.BatchNormalization(compile_moments=True)
    x = np.zeros((2, 3, 4), "float32")
    with pytest.raises(ValueError, match="compile_moments"):
        layer(x, training=True, mask=np.ones((2, 3), bool))


def test_mask_of_the_wrong_rank():
    with pytest.raises(ValueError, match="mask"):
        kbn.BatchNormalization()(
            np.zeros((2, 3, 4), "float32"), training=True, mask=np.ones((2, 3, 4), bool)
        )
