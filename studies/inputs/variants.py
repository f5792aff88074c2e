"""The normalization variants a study compares, as a registry users can extend.

A variant is a name, a function making one fresh normalization layer (or
None: no normalization), and where the layer goes. The model builder asks
for layers through `builders.Normalization`, so a variant never needs to
know the model. Built in:

- `none`: no normalization; the layers keep their biases.
- `keras`: the stock `keras.layers.BatchNormalization`.
- `bn`: `kbn.BatchNormalization`.
- `bn-batch-statistics`, `bn-covariate-shift`, `bn-adjustment`: kbn with one
  `kbn.noise` model; `noisy-bn` is `bn-covariate-shift` under Santurkar et
  al.'s name.
- `ghost-bn`: kbn with `virtual_batch_size` (the study's
  `virtual_batch_size` setting; Hoffer et al. 2017).
- `layer-norm`: `keras.layers.LayerNormalization` over the last axis (per
  example: no batch dependence at all; in a conv net, per position over the
  channels, as in ConvNeXt).
- `group-norm`: `keras.layers.GroupNormalization` with up to 32 groups
  (Wu & He 2018 use 32), as many as divide the channels and leave a group
  at least 16 values (`FittedGroupNormalization`).
- `bn-after`: kbn after the nonlinearity instead of before it, the other
  placement people argue about (the layer before keeps its bias).

Add one with `register("my-norm", lambda seed, settings: MyNorm())`; it is
then a valid `--variants` value in that process (a `--model` or `--dataset`
module can register variants when it is imported).
"""

import dataclasses

import keras

import kbn


@dataclasses.dataclass(frozen=True)
class Variant:
    """A normalization variant.

    Attributes:
        name: The `--variants` name.
        make: `make(seed, settings) -> keras.layers.Layer`, a fresh layer
            seeded with `seed` (`settings` are the cell's settings, e.g.
            `virtual_batch_size`); None for no normalization.
        after_activation: Whether the layer goes after the nonlinearity.
        description: One line for the README and `--help`.
    """

    name: str
    make: object
    after_activation: bool = False
    description: str = ""

    @property
    def normalizes(self):
        return self.make is not None


_REGISTRY = {}


def register(name, make, *, after_activation=False, description=""):
    """Adds (or replaces) variant `name`; returns the `Variant`.

    Args:
        name: The variant's name (no commas; `none` is reserved).
        make: `make(seed, settings) -> layer`, called once per normalization
            layer of a model.
        after_activation: Place the layer after the nonlinearity.
        description: One line saying what it is.

    Raises:
        ValueError: a name that is empty, has a comma, or is `none`, or a
            `make` that is not callable.
    """
    if not isinstance(name, str) or not name or "," in name or name == "none":
        raise ValueError(
            "variant name must be a non-empty string without ',' other than "
            f"'none', got {name!r}"
        )
    if not callable(make):
        raise ValueError(f"variant {name!r}: make must be callable, got {make!r}")
    variant = Variant(name, make, bool(after_activation), description)
    _REGISTRY[name] = variant
    return variant


def get(name):
    """The variant named `name` (ValueError naming the known ones otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown variant {name}: choose from {', '.join(names())}"
        ) from None


def names():
    return tuple(_REGISTRY)


@keras.saving.register_keras_serializable(package="studies")
class FittedGroupNormalization(keras.layers.GroupNormalization):
    """GroupNormalization with as many groups, up to `groups`, as fit the layer.

    Keras's layer needs `groups` to divide the channel count, and a group
    must hold enough values for its mean and variance to mean something:
    a Dense layer has no spatial positions, so 32 groups of 3 channels would
    normalize over 3 values. The count is fitted when the layer is built:
    the most groups, up to `groups`, that divide the channels and leave at
    least `MIN_GROUP_VALUES` values per group per example (channels per
    group x spatial positions). A 100-unit Dense layer gets 5 groups of 20;
    a 32-filter convolution on 8x8 images gets 32 groups of 1 channel x 64
    positions; a Dense layer of 16 units or fewer gets 1 group (LayerNorm).
    """

    MIN_GROUP_VALUES = 16

    def build(self, input_shape):
        channels = input_shape[self.axis]
        positions = 1
        for i, size in enumerate(input_shape[1:], start=1):
            if i != self.axis % len(input_shape) and size is not None:
                positions *= size
        if channels is not None:
            self.groups = max(
                (
                    g
                    for g in range(1, min(self.groups, channels) + 1)
                    if channels % g == 0
                    and channels // g * positions >= self.MIN_GROUP_VALUES
                ),
                default=1,
            )
        super().build(input_shape)


def _kbn(noise=None, **kwargs):
    def make(seed, settings):
        return kbn.BatchNormalization(noise=noise, seed=seed, **kwargs)

    return make


def _ghost(seed, settings):
    return kbn.BatchNormalization(
        virtual_batch_size=settings["virtual_batch_size"], seed=seed
    )


_REGISTRY["none"] = Variant("none", None, description="no normalization")
register(
    "keras",
    lambda seed, settings: keras.layers.BatchNormalization(),
    description="the stock keras.layers.BatchNormalization",
)
register("bn", _kbn(), description="kbn.BatchNormalization")
for _name, _noise in (
    ("bn-batch-statistics", "batch_statistics"),
    ("bn-covariate-shift", "covariate_shift"),
    ("bn-adjustment", "adjustment"),
    ("noisy-bn", "covariate_shift"),
):
    register(_name, _kbn(_noise), description=f"kbn with noise={_noise!r}")
register("ghost-bn", _ghost, description="kbn with virtual_batch_size (Ghost BN)")
register(
    "layer-norm",
    lambda seed, settings: keras.layers.LayerNormalization(),
    description="keras.layers.LayerNormalization",
)
register(
    "group-norm",
    lambda seed, settings: FittedGroupNormalization(groups=32),
    description="keras.layers.GroupNormalization, up to 32 groups",
)
register(
    "bn-after",
    _kbn(),
    after_activation=True,
    description="kbn after the nonlinearity",
)

# definitions.VARIANTS lists these names without importing Keras (for the CLI)
BUILT_IN = names()
