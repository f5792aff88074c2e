"""The networks a study trains, built for one normalization variant.

Batch normalization goes before the nonlinearity and the layer it follows
has no bias (BN's offset replaces it), as in Ioffe & Szegedy 2015.

Variants: `none` (no normalization), `keras` (the stock
`keras.layers.BatchNormalization`), `bn` (`kbn.BatchNormalization`) and one
per `kbn.noise` model (`bn-batch-statistics`, `bn-covariate-shift`,
`bn-adjustment`); `noisy-bn` is `bn-covariate-shift` under Santurkar et
al.'s name.

The nonlinearities are named `<activation>_<i>` (`sigmoid_1`, ...), so the
instruments' TensorBoard tags are the same in every cell.

Initialization: every kernel gets `family` scaled by `scale`, where the scale
multiplies the initial weights' standard deviation (VarianceScaling with
`scale = scale**2 * base`, or a normal with `stddev = 0.05 * scale`). Each
model's default is the standard init for its nonlinearity
(`STANDARD_INIT`): He for ReLU, and for sigmoid units Glorot & Bengio's
advice of 4x the Glorot-uniform bound (`glorot_sigmoid`).
"""

import functools

import keras

import kbn
from studies.definitions import MODELS as NAMES
from studies.definitions import STANDARD_INIT

_NOISE = {
    "bn-batch-statistics": "batch_statistics",
    "bn-covariate-shift": "covariate_shift",
    "bn-adjustment": "adjustment",
    "noisy-bn": "covariate_shift",
}

# family -> (VarianceScaling base scale, mode, distribution)
_VARIANCE_SCALING = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_sigmoid": (16.0, "fan_avg", "uniform"),  # 4x the bound
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}
_RANDOM_NORMAL_STDDEV = 0.05  # keras.initializers.RandomNormal's default


class ModelError(ValueError):
    """A model that cannot be built for the data, with a message for the user."""


def initializer(family, scale, seed):
    """A kernel initializer of `family` whose std is multiplied by `scale`."""
    if family == "random_normal":
        return keras.initializers.RandomNormal(
            stddev=_RANDOM_NORMAL_STDDEV * scale, seed=seed
        )
    base, mode, distribution = _VARIANCE_SCALING[family]
    return keras.initializers.VarianceScaling(
        scale=scale**2 * base, mode=mode, distribution=distribution, seed=seed
    )


def normalization(variant, seed):
    """The normalization layer of `variant`, or None for `none`."""
    if variant == "none":
        return None
    if variant == "keras":
        return keras.layers.BatchNormalization()
    return kbn.BatchNormalization(noise=_NOISE.get(variant), seed=seed)


def build(
    name,
    *,
    variant,
    input_shape,
    num_classes,
    init=None,
    init_scale=1.0,
    seed=0,
):
    """Builds (uncompiled) model `name` for one variant, init and seed.

    Args:
        name: `mlp-sigmoid` (3 x 100 sigmoid units, the BN paper's MNIST
            network), `mlp-relu` (6 x 100 ReLU units) or `cnn` (a small
            VGG-style net: two blocks of two 3x3 convolutions, 32 and 64
            filters, then global average pooling; Conv1D for sequences).
        variant: The normalization variant.
        input_shape: Shape of one example.
        num_classes: Number of output logits.
        init: Kernel initializer family; None for the model's standard init.
        init_scale: Multiplier of the initial weights' standard deviation.
        seed: Seeds the initializers and any noise.

    Returns:
        A `keras.Model` producing logits.

    Raises:
        ModelError: `cnn` on flat (tabular) inputs.
    """
    init = init or STANDARD_INIT.get(name)
    counter = iter(range(1000))
    blocks = iter(range(1, 1000))

    def kernel():
        return initializer(init, init_scale, seed * 1000 + next(counter))

    def block(make_layer, activation):
        # BN before the nonlinearity; the layer it follows needs no bias.
        norm = normalization(variant, seed * 1000 + next(counter))
        layer = make_layer(use_bias=norm is None, kernel_initializer=kernel())
        norms = [norm] if norm is not None else []
        name = f"{activation}_{next(blocks)}"
        return [layer, *norms, keras.layers.Activation(activation, name=name)]

    layers = [keras.Input(tuple(input_shape))]
    if name in ("mlp-sigmoid", "mlp-relu"):
        depth, activation = (3, "sigmoid") if name == "mlp-sigmoid" else (6, "relu")
        layers.append(keras.layers.Flatten())
        for _ in range(depth):
            layers += block(functools.partial(keras.layers.Dense, 100), activation)
    elif name == "cnn":
        layers += _conv_stack(input_shape, block)
    else:
        raise ModelError(f"unknown model {name!r}")
    layers.append(keras.layers.Dense(num_classes, kernel_initializer=kernel()))
    return keras.Sequential(layers, name=f"{name}-{variant}")


def check(name, input_shape):
    """Raises `ModelError` if model `name` cannot take inputs of `input_shape`."""
    if name not in NAMES:
        raise ModelError(f"unknown model {name!r}: choose one of {', '.join(NAMES)}")
    if name == "cnn" and len(input_shape) not in (2, 3):
        raise ModelError(
            "model 'cnn' needs images (H, W, C) or sequences (L, C); the data "
            f"has examples of shape {tuple(input_shape)}: use mlp-sigmoid or mlp-relu"
        )


def _conv_stack(input_shape, block):
    check("cnn", input_shape)
    rank = len(input_shape) - 1
    conv = keras.layers.Conv2D if rank == 2 else keras.layers.Conv1D
    pool = keras.layers.MaxPooling2D if rank == 2 else keras.layers.MaxPooling1D
    gap = (
        keras.layers.GlobalAveragePooling2D
        if rank == 2
        else keras.layers.GlobalAveragePooling1D
    )
    layers = []
    for filters in (32, 64):
        for _ in range(2):
            layers += block(functools.partial(conv, filters, 3, padding="same"), "relu")
        layers.append(pool(2, padding="same"))
    layers.append(gap())
    return layers


def optimizer(name, learning_rate):
    """`sgd` (plain), `momentum` (SGD, 0.9) or `adam`, at `learning_rate`."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate)
    if name == "momentum":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    raise ModelError(f"unknown optimizer {name!r}")
