"""`kbn.convert`: swap a model's batch normalization between Keras and kbn."""

import keras

from kbn import model_graph
from kbn.batch_normalization import BatchNormalization

# kbn constructor arguments that only change training (how batch statistics
# are computed, noise, the moving-variance convention): Keras has no
# equivalent, and inference does not read them, so converting to Keras drops
# them.
TRAINING_ONLY_ARGUMENTS = (
    "compile_moments",
    "virtual_batch_size",
    "unbiased_moving_variance",
    "noise",
    "seed",
)

# The momentum a kbn cumulative moving average (`momentum=None`) gets in Keras,
# which has no cumulative average: Keras's own default.
CUMULATIVE_AVERAGE_MOMENTUM = 0.99

_TARGETS = ("kbn", "keras")


def convert(model, to="kbn"):
    """Copies a model with its batch normalization layers swapped.

    With `to="kbn"`, every `keras.layers.BatchNormalization` (that class
    exactly) becomes a `kbn.BatchNormalization` with the same configuration and
    weights. With `to="keras"`, every `kbn.BatchNormalization` (that class
    exactly) becomes a `keras.layers.BatchNormalization`. All other layers are
    copied unchanged, weights included, so the copy gives the same inference
    outputs as the original, which is left untouched. Use it to bring a
    pretrained `keras.applications` model to kbn before fine-tuning, or to
    hand a kbn-trained model to code that must not depend on kbn.

    Going to Keras keeps everything inference uses and drops what Keras cannot
    express:

    - The training-only arguments `compile_moments`, `virtual_batch_size`,
      `unbiased_moving_variance`, `noise` and `seed` are dropped. The stored
      moving statistics are kept as they are (a moving variance tracked with
      `unbiased_moving_variance=True` stays Bessel-corrected, but further
      training in Keras updates it with the biased batch variance), and
      `kbn.mc_predict` no longer applies to the converted layers.
    - `momentum=None` (kbn's cumulative moving average) becomes
      `momentum=0.99` (`CUMULATIVE_AVERAGE_MOMENTUM`, Keras's default), and the
      `num_batches_tracked` counter is dropped.
    - A single-element list `axis` becomes an integer; a layer normalizing over
      several axes cannot be expressed and raises a `ValueError`.

    Nested Functional and Sequential models are converted recursively; a layer
    shared between several calls stays shared in the copy.

    Example:

    ```python
    base = keras.applications.ResNet50(weights="imagenet")
    model = kbn.convert(base)  # same predictions, kbn's layer
    back = kbn.convert(model, to="keras")
    ```

    Args:
        model: A built Functional or Sequential Keras model.
        to: `"kbn"` (default) or `"keras"`: the batch normalization class the
            copy uses.

    Returns:
        A new model (see `keras.models.clone_model`), compiled like the
        original if it was compiled.

    Raises:
        ValueError: If `to` is not `"kbn"` or `"keras"`; if `model` is a
            subclassed (or unbuilt Sequential) model, which cannot be cloned;
            if a layer to convert sits inside a subclassed layer or model,
            which the copy cannot reach; or, for `to="keras"`, if a layer
            normalizes over several axes.
    """
    if to not in _TARGETS:
        raise ValueError(
            f"Argument `to` must be one of {_TARGETS}. Received: to={to!r}"
        )
    model_graph.require_graph_model(model, "convert")
    source = keras.layers.BatchNormalization if to == "kbn" else BatchNormalization
    make = _to_kbn if to == "kbn" else _to_keras

    def replace(layer):
        if type(layer) is source:
            new = make(layer)
            return new, lambda new, old=layer: model_graph.copy_weights(old, new)
        _check_reachable(layer, source)
        return None

    return model_graph.clone(model, replace)


def _to_kbn(layer):
    return BatchNormalization.from_config(layer.get_config())


def _to_keras(layer):
    return keras.layers.BatchNormalization.from_config(keras_config(layer))


def keras_config(layer):
    """The `keras.layers.BatchNormalization` config of a kbn layer.

    Args:
        layer: A `kbn.BatchNormalization`.

    Returns:
        Its config without the training-only arguments, with `momentum=None`
        replaced by `CUMULATIVE_AVERAGE_MOMENTUM` and a one-element `axis` list
        by its element.

    Raises:
        ValueError: If the layer normalizes over several axes.
    """
    config = layer.get_config()
    for name in TRAINING_ONLY_ARGUMENTS:
        config.pop(name, None)
    axis = config["axis"]
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise ValueError(
                f"Layer {layer.name!r} normalizes over the axes {list(axis)}; "
                "keras.layers.BatchNormalization takes a single integer axis, "
                "so it cannot be converted to Keras."
            )
        config["axis"] = int(axis[0])
    if config["momentum"] is None:
        config["momentum"] = CUMULATIVE_AVERAGE_MOMENTUM
    return config


def _check_reachable(layer, source):
    # Nested Functional and Sequential models are cloned recursively; any
    # other layer is copied whole, so a BN layer inside it would stay as is.
    inner = [la.name for la in model_graph.sublayers(layer) if type(la) is source]
    if inner:
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) is a subclassed "
            f"layer or model containing {source.__name__} layers {inner}, "
            "which `convert` cannot replace. Rebuild it as a Functional or "
            "Sequential model."
        )
