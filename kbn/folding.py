"""`kbn.fold`: batch normalization folded into the layer before it, for inference.

In inference, batch normalization is the affine map
`y = (x - mean) * s + beta` per channel, with `s = gamma / sqrt(var + eps)`.
When `x` is the output of a linear layer `x = W * u + b`, the two compose into
one linear layer with `W' = W * s` (each output channel's kernel slice scaled)
and `b' = (b - mean) * s + beta`, and the BN layer disappears.
"""

import collections
import functools

import keras
import numpy as np
from keras import ops

from kbn import model_graph

# Layer class (exactly: a subclass may compute something else) -> the weight
# the BN folds into, and how many trailing axes of that weight index the
# output channels: one for Dense, Conv and pointwise kernels; two for
# depthwise kernels `(..., in, multiplier)`, where channel `i * multiplier + m`
# is `kernel[..., i, m]`.
FOLDABLE = {
    keras.layers.Dense: ("kernel", 1),
    keras.layers.Conv1D: ("kernel", 1),
    keras.layers.Conv2D: ("kernel", 1),
    keras.layers.Conv3D: ("kernel", 1),
    keras.layers.DepthwiseConv1D: ("kernel", 2),
    keras.layers.DepthwiseConv2D: ("kernel", 2),
    keras.layers.SeparableConv1D: ("pointwise_kernel", 1),
    keras.layers.SeparableConv2D: ("pointwise_kernel", 1),
}


def fold(model):
    """Copies a model with batch normalization folded into the layers before it.

    Every batch normalization layer (`keras.layers.BatchNormalization` or
    `kbn.BatchNormalization`) that directly follows a `Dense`, `Conv1D`,
    `Conv2D`, `Conv3D`, `DepthwiseConv1D`, `DepthwiseConv2D`,
    `SeparableConv1D` or `SeparableConv2D` layer is folded into that layer's
    kernel and bias (a separable convolution's pointwise kernel), and replaced
    in the copy by a `keras.layers.Identity` of the same name. Inference
    outputs stay the same up to float32 rounding, one layer fewer to run per
    fold. The original model is left untouched.

    A BN layer is folded when:

    - its only input is the output of one of those layers (that exact class),
      and that output feeds nothing else and is not a model output;
    - that layer has a linear activation (`activation=None`) and no LoRA or
      quantization, and neither layer is called more than once;
    - the BN layer normalizes over that layer's channel axis alone: the last
      axis, or axis 1 for a convolution with `data_format="channels_first"`;
    - both sit in the same Functional or Sequential model (nested models are
      searched too).

    Every other BN layer is kept as it is. The folded layers get
    `use_bias=True`. The copy is meant for inference: training it trains
    without batch normalization, and `kbn.mc_predict` no longer samples the
    folded layers.

    Example:

    ```python
    fast = kbn.fold(model)
    fast.predict(x)  # same as model.predict(x), fewer layers
    ```

    Args:
        model: A built Functional or Sequential Keras model.

    Returns:
        A new model (see `keras.models.clone_model`).

    Raises:
        ValueError: If `model` is a subclassed (or unbuilt Sequential) model,
            which cannot be cloned.
    """
    model_graph.require_graph_model(model, "fold")
    pairs = foldable_pairs(model)
    into = {id(layer): (layer, bn) for layer, bn in pairs}
    folded = {id(bn) for _, bn in pairs}
    identities = set()

    def replace(layer):
        if id(layer) in into:
            config = layer.get_config()
            config["use_bias"] = True
            new = type(layer).from_config(config)
            return new, functools.partial(_fill, layer=layer, bn=into[id(layer)][1])
        if id(layer) in folded:
            new = keras.layers.Identity(name=layer.name, dtype=layer.dtype_policy)
            identities.add(id(new))
            return new, lambda new: None
        return None

    def call_function(layer, *args, **kwargs):
        if id(layer) in identities:
            # The BN call's `mask=` and `training=` mean nothing to Identity.
            return layer(args[0] if args else kwargs["inputs"])
        return layer(*args, **kwargs)

    return model_graph.clone(model, replace, call_function)


def fold_weights(
    kernel, bias, mean, variance, epsilon, gamma=None, beta=None, channel_axes=1
):
    """Kernel and bias of a linear layer followed by inference-mode BN.

    Computes, in float64, `s = gamma / sqrt(variance + epsilon)`,
    `kernel' = kernel * s` along the output channels and
    `bias' = (bias - mean) * s + beta`.

    Args:
        kernel: The layer's kernel, its output channels in its trailing
            `channel_axes` axes (flattened in C order).
        bias: The layer's bias, or None for no bias.
        mean: The BN moving mean, one value per output channel.
        variance: The BN moving variance.
        epsilon: The BN epsilon.
        gamma: The BN scale, or None (`scale=False`: 1).
        beta: The BN offset, or None (`center=False`: 0).
        channel_axes: Number of trailing kernel axes indexing output channels
            (2 for depthwise kernels `(..., in, multiplier)`).

    Returns:
        `(kernel, bias)`: float64 arrays of the kernel's shape and of the
        channel count.

    Raises:
        ValueError: If the kernel's channel axes do not match the statistics.
    """
    kernel = np.asarray(kernel, np.float64)
    mean = np.asarray(mean, np.float64).reshape(-1)
    scale = 1.0 / np.sqrt(np.asarray(variance, np.float64).reshape(-1) + epsilon)
    if gamma is not None:
        scale = scale * np.asarray(gamma, np.float64).reshape(-1)
    channel_shape = kernel.shape[kernel.ndim - channel_axes :]
    if int(np.prod(channel_shape)) != scale.size:
        raise ValueError(
            f"A kernel of shape {kernel.shape} has {int(np.prod(channel_shape))} "
            f"output channels in its last {channel_axes} axes, the batch "
            f"normalization {scale.size}."
        )
    bias = np.zeros_like(mean) if bias is None else np.asarray(bias, np.float64)
    new_bias = (bias - mean) * scale
    if beta is not None:
        new_bias = new_bias + np.asarray(beta, np.float64).reshape(-1)
    return kernel * scale.reshape(channel_shape), new_bias


def foldable_pairs(model):
    """The `(layer, bn)` pairs `fold` folds, searching nested models too."""
    graphs = model_graph.graphs(model)
    nodes = {id(g): model_graph.layer_nodes(g) for g in graphs}
    # Nodes, not calls: a nested model called twice reuses its layers' nodes,
    # and its copy is shared the same way, so folding inside it is safe.
    calls = collections.Counter(
        id(node.operation) for g in graphs for node in nodes[id(g)]
    )
    pairs = []
    for g in graphs:
        producer = {id(t): node for node in nodes[id(g)] for t in node.outputs}
        readers = collections.Counter(
            id(t) for node in nodes[id(g)] for t in node.input_tensors
        )
        readers.update(id(t) for t in g.outputs)
        for node in nodes[id(g)]:
            bn = node.operation
            if not isinstance(bn, keras.layers.BatchNormalization):
                continue
            if len(node.input_tensors) != 1:
                continue
            x = node.input_tensors[0]
            source = producer.get(id(x))
            if source is None or readers[id(x)] != 1 or len(source.outputs) != 1:
                continue
            layer = source.operation
            if calls[id(layer)] == 1 and calls[id(bn)] == 1:
                if _foldable(layer, bn, len(x.shape)):
                    pairs.append((layer, bn))
    return pairs


def _foldable(layer, bn, rank):
    if type(layer) not in FOLDABLE:
        return False
    if layer.get_config().get("activation") not in ("linear", None):
        return False
    # Exactly the plain weights: LoRA and quantized layers have others.
    kernel_name, _ = FOLDABLE[type(layer)]
    expected = {kernel_name, "bias"} if layer.use_bias else {kernel_name}
    if kernel_name == "pointwise_kernel":
        expected.add("depthwise_kernel")
    if {w.name for w in layer.weights} != expected or len(layer.weights) != len(
        expected
    ):
        return False
    channels_first = getattr(layer, "data_format", None) == "channels_first"
    channel_axis = 1 if channels_first else rank - 1
    return model_graph.feature_axes(bn, rank) == (channel_axis,)


def _fill(new, *, layer, bn):
    """Sets the folded weights of `new`, the copy of `layer`."""
    kernel_name, channel_axes = FOLDABLE[type(layer)]
    weights = {w.name: ops.convert_to_numpy(w) for w in layer.weights}
    stats = {w.name: ops.convert_to_numpy(w) for w in bn.weights}
    weights[kernel_name], weights["bias"] = fold_weights(
        weights[kernel_name],
        weights.get("bias"),
        stats["moving_mean"],
        stats["moving_variance"],
        bn.epsilon,
        gamma=stats.get("gamma"),
        beta=stats.get("beta"),
        channel_axes=channel_axes,
    )
    for w in new.weights:
        w.assign(np.asarray(weights[w.name]).astype(w.dtype))
