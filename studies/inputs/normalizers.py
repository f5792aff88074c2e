"""The layers of the built-in normalization variants (`studies.inputs.variants`
names them and calls these lazily, so the registry loads without Keras).

Each maker is `make(seed, settings, ...) -> keras.layers.Layer`, a fresh layer.
"""

import keras

import kbn


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


def stock_bn(seed, settings):
    return keras.layers.BatchNormalization()


def kbn_bn(seed, settings, noise=None):
    return kbn.BatchNormalization(noise=noise, seed=seed)


def ghost_bn(seed, settings):
    return kbn.BatchNormalization(
        virtual_batch_size=settings["virtual_batch_size"], seed=seed
    )


def layer_norm(seed, settings):
    return keras.layers.LayerNormalization()


def group_norm(seed, settings):
    return FittedGroupNormalization(groups=32)
