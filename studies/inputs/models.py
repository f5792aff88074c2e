"""The built-in model builders (see `studies.inputs.builders` for the seam).

Each is a builder `build(normalization, kernel_initializer, input_shape,
outputs)`: normalization goes before the nonlinearity and the layer it
follows has no bias (BN's offset replaces it), as in Ioffe & Szegedy 2015;
for an after-activation variant (`bn-after`) it goes after the nonlinearity
and the layer keeps its bias.

The nonlinearities are named `<activation>_<i>` (`sigmoid_1`, ...), so the
instruments' TensorBoard tags are the same in every cell.

Depth: the MLPs take `depth`, their number of hidden layers (None: their
own default, 6 for `mlp-relu` and 3 for `mlp-sigmoid`); `cnn` has a fixed
structure and takes none (the depth study refuses it). For a residual
variant (`normalization.residual`: `bn-residual`) the MLPs are built of
pre-activation residual blocks (`_residual`); `cnn` never reads it, so the
seam refuses that variant for it.

Initialization: every hidden kernel gets `family` scaled by `scale`, where
the scale multiplies the initial weights' standard deviation
(VarianceScaling with `scale = scale**2 * base`, or a normal with `stddev =
0.05 * scale`); the output layer gets `kernel_initializer.output`, the same
family at scale 1 unless the study sets `scale_output`. No normalization
follows the output layer: scaling it too would make the init axis measure
the output layer's init as well as the normalized layers' (with BN, the only
part of the net the scale changes at all). Each
model's default is the standard init for its nonlinearity
(`STANDARD_INIT`, also the builder's `standard_init`): He for ReLU, and for
sigmoid units Glorot & Bengio's advice of 4x the Glorot-uniform bound
(`glorot_sigmoid`).

The names of the built-in models are `definitions.STANDARD_INIT`'s keys (the
one list; the presets below the inputs name them); each name's builder is the
function of that name (`mlp-relu`: `mlp_relu`). Keras is imported when a model
is built, not with this module, so the command line can resolve a model name
before any backend loads.
"""

import functools

from studies.science.definitions import MODELS as NAMES
from studies.science.definitions import STANDARD_INIT

# family -> (VarianceScaling base scale, mode, distribution)
_VARIANCE_SCALING = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_sigmoid": (16.0, "fan_avg", "uniform"),  # 4x the bound
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}
_RANDOM_NORMAL_STDDEV = 0.05  # keras.initializers.RandomNormal's default
WIDTH = 100  # units of every hidden layer of the MLPs


class ModelError(ValueError):
    """A model that cannot be built for the data, with a message for the user."""


def initializer(family, scale, seed):
    """A kernel initializer of `family` whose std is multiplied by `scale`."""
    import keras

    if family == "random_normal":
        return keras.initializers.RandomNormal(
            stddev=_RANDOM_NORMAL_STDDEV * scale, seed=seed
        )
    base, mode, distribution = _VARIANCE_SCALING[family]
    return keras.initializers.VarianceScaling(
        scale=scale**2 * base, mode=mode, distribution=distribution, seed=seed
    )


def _output(kernel_initializer):
    """The output layer's initializer (`builders.CellInitializer.output`);
    a plain Keras initializer is used for every layer."""
    return getattr(kernel_initializer, "output", kernel_initializer)


def _block(normalization, make_layer, activation, name):
    """A layer, its normalization (before or after the nonlinearity) and the
    nonlinearity; the layer keeps its bias unless BN comes right after it."""
    import keras

    norm = normalization()
    after = normalization.after_activation
    layer = make_layer(use_bias=norm is None or after)
    act = keras.layers.Activation(activation, name=name)
    if norm is None:
        return [layer, act]
    return [layer, act, norm] if after else [layer, norm, act]


def _plain(layers, normalization, kernel_initializer, depth, activation):
    """`depth` blocks Dense(100) -> normalization -> nonlinearity."""
    import keras

    for i in range(1, depth + 1):
        dense = functools.partial(
            keras.layers.Dense, WIDTH, kernel_initializer=kernel_initializer
        )
        layers += _block(normalization, dense, activation, f"{activation}_{i}")
    return layers


def _residual(x, normalization, kernel_initializer, depth, activation):
    """A Dense(100) stem, then `depth - 1` pre-activation residual blocks
    `h + Dense(act(norm(h)))` (He et al. 2016's identity mappings: the
    normalization sits on the branch, the skip is the identity), then a last
    norm and nonlinearity before the head: `depth` hidden kernels and
    `depth` normalization layers, as in the plain net. `<activation>_<i>`
    is the nonlinearity on the stream after hidden layer `i`."""
    import keras

    def dense(use_bias=True):
        return keras.layers.Dense(
            WIDTH, use_bias=use_bias, kernel_initializer=kernel_initializer
        )

    def pre_activation(h, i):
        norm = normalization()
        h = h if norm is None else norm(h)
        return keras.layers.Activation(activation, name=f"{activation}_{i}")(h)

    h = dense()(x)
    for i in range(1, depth):
        h = keras.layers.Add()([h, dense()(pre_activation(h, i))])
    return pre_activation(h, depth)


def _mlp(depth, activation):
    def build(normalization, kernel_initializer, input_shape, outputs):
        import keras

        if depth < 1:
            raise ModelError(f"an MLP needs at least 1 hidden layer, got {depth}")
        output = keras.layers.Dense(
            outputs, kernel_initializer=_output(kernel_initializer)
        )
        if getattr(normalization, "residual", False):
            inputs = keras.Input(tuple(input_shape))
            h = keras.layers.Flatten()(inputs)
            h = _residual(h, normalization, kernel_initializer, depth, activation)
            return keras.Model(inputs, output(h))
        layers = [keras.Input(tuple(input_shape)), keras.layers.Flatten()]
        layers = _plain(layers, normalization, kernel_initializer, depth, activation)
        return keras.Sequential([*layers, output])

    return build


def mlp_relu(normalization, kernel_initializer, input_shape, outputs, depth=None):
    """`depth` x 100 ReLU units (default 6; a builder: see
    `studies.inputs.builders`)."""
    return _mlp(depth or 6, "relu")(
        normalization, kernel_initializer, input_shape, outputs
    )


def mlp_sigmoid(normalization, kernel_initializer, input_shape, outputs, depth=None):
    """`depth` x 100 sigmoid units (default 3: the BN paper's MNIST network)."""
    return _mlp(depth or 3, "sigmoid")(
        normalization, kernel_initializer, input_shape, outputs
    )


def cnn(normalization, kernel_initializer, input_shape, outputs):
    """A small VGG-style net: two blocks of two 3x3 convolutions (32 and 64
    filters), max pooling, then global average pooling; Conv1D for sequences.

    Raises:
        ModelError: flat (tabular) inputs.
    """
    import keras

    check("cnn", input_shape)
    rank = len(input_shape) - 1
    conv = keras.layers.Conv2D if rank == 2 else keras.layers.Conv1D
    pool = keras.layers.MaxPooling2D if rank == 2 else keras.layers.MaxPooling1D
    gap = (
        keras.layers.GlobalAveragePooling2D
        if rank == 2
        else keras.layers.GlobalAveragePooling1D
    )
    layers = [keras.Input(tuple(input_shape))]
    blocks = iter(range(1, 100))
    for filters in (32, 64):
        for _ in range(2):
            make = functools.partial(
                conv, filters, 3, padding="same", kernel_initializer=kernel_initializer
            )
            layers += _block(normalization, make, "relu", f"relu_{next(blocks)}")
        layers.append(pool(2, padding="same"))
    layers.append(gap())
    layers.append(
        keras.layers.Dense(outputs, kernel_initializer=_output(kernel_initializer))
    )
    return keras.Sequential(layers)


BUILDERS = {name: globals()[name.replace("-", "_")] for name in NAMES}
for _name, _builder in BUILDERS.items():
    _builder.standard_init = STANDARD_INIT[_name]


def check(name, input_shape):
    """Raises `ModelError` if built-in model `name` cannot take `input_shape`."""
    if name not in NAMES:
        raise ModelError(f"unknown model {name!r}: choose one of {', '.join(NAMES)}")
    if name == "cnn" and len(input_shape) not in (2, 3):
        raise ModelError(
            "model 'cnn' needs images (H, W, C) or sequences (L, C); the data "
            f"has examples of shape {tuple(input_shape)}: use mlp-sigmoid or mlp-relu"
        )
