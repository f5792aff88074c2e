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
  at least 16 values (`normalizers.FittedGroupNormalization`).
- `bn-after`: kbn after the nonlinearity instead of before it, the other
  placement people argue about (the layer before keeps its bias).
- `bn-residual`: kbn in pre-activation residual blocks, `h + W relu(BN(h))`
  (He et al. 2016's identity mappings), so BN sits on the residual branch
  and the identity path carries the signal and the gradient past it; the
  builder reads `normalization.residual` and builds the skips (the depth
  study's answer to Yang et al. 2019's gradient explosion).

Add one with `register("my-norm", lambda seed, settings: MyNorm())`; it is
then a valid `--variants` value in that process (a `--model` or `--dataset`
module can register variants when it is imported).

This registry is the one list of variant names (the command line's help and
checks read `names()`); it imports no Keras: the built-in layers come from
`studies.inputs.normalizers` when the first one is made.
"""

import dataclasses


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
        residual: Whether the model is built of residual blocks (the
            builder reads `normalization.residual`).
    """

    name: str
    make: object
    after_activation: bool = False
    description: str = ""
    residual: bool = False

    @property
    def normalizes(self):
        return self.make is not None


_REGISTRY = {}


def register(name, make, *, after_activation=False, description="", residual=False):
    """Adds (or replaces) variant `name`; returns the `Variant`.

    Args:
        name: The variant's name (no commas; `none` is reserved).
        make: `make(seed, settings) -> layer`, called once per normalization
            layer of a model.
        after_activation: Place the layer after the nonlinearity.
        description: One line saying what it is.
        residual: Build the model of residual blocks.

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
    variant = Variant(name, make, bool(after_activation), description, bool(residual))
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
    """The registered variants' names, built-in ones first."""
    return tuple(_REGISTRY)


def _built_in(maker, **kwargs):
    """A `make` calling `normalizers.<maker>`, imported (with Keras) on first use."""

    def make(seed, settings):
        from studies.inputs import normalizers

        return getattr(normalizers, maker)(seed, settings, **kwargs)

    return make


_REGISTRY["none"] = Variant("none", None, description="no normalization")
register(
    "keras",
    _built_in("stock_bn"),
    description="the stock keras.layers.BatchNormalization",
)
register("bn", _built_in("kbn_bn"), description="kbn.BatchNormalization")
for _name, _noise in (
    ("bn-batch-statistics", "batch_statistics"),
    ("bn-covariate-shift", "covariate_shift"),
    ("bn-adjustment", "adjustment"),
    ("noisy-bn", "covariate_shift"),
):
    register(
        _name,
        _built_in("kbn_bn", noise=_noise),
        description=f"kbn with noise={_noise!r}",
    )
register(
    "layer-norm",
    _built_in("layer_norm"),
    description="keras.layers.LayerNormalization",
)
register(
    "group-norm",
    _built_in("group_norm"),
    description="keras.layers.GroupNormalization, up to 32 groups",
)
register(
    "ghost-bn",
    _built_in("ghost_bn"),
    description="kbn with virtual_batch_size (Ghost BN)",
)
register(
    "bn-after",
    _built_in("kbn_bn"),
    after_activation=True,
    description="kbn after the nonlinearity",
)
register(
    "bn-residual",
    _built_in("kbn_bn"),
    residual=True,
    description="kbn in pre-activation residual blocks, h + W relu(BN(h))",
)
