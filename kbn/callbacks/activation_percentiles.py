"""Percentiles of the inputs of a network's nonlinearities over training.

Ioffe & Szegedy (2015, Figure 1) show the 15th, 50th and 85th percentiles of
one sigmoid's input drifting during training without batch normalization and
staying put with it. This callback logs those percentiles for any functional
or Sequential Keras model, on a fixed probe batch, as TensorBoard scalars
(and a histogram of all the values).
"""

import math
import numbers

import keras
import numpy as np

from kbn.callbacks.step_callback import StepCallback, number_of_examples

_ACTIVATION_LAYERS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.Softmax,
)


def _is_activation_layer(layer):
    return isinstance(layer, _ACTIVATION_LAYERS) and not (
        isinstance(layer, keras.layers.Activation)
        and layer.activation is keras.activations.linear
    )


def _has_fused_activation(layer):
    """A Dense/Conv-style layer whose `activation` is not the identity."""
    activation = getattr(layer, "activation", None)
    return (
        not _is_activation_layer(layer)
        and callable(activation)
        and activation is not keras.activations.linear
    )


def nonlinearity_layers(model):
    """The layers of `model` whose inputs (pre-activations) BN would normalize."""
    return [
        layer
        for layer in model.layers
        if _is_activation_layer(layer) or _has_fused_activation(layer)
    ]


class ActivationPercentiles(StepCallback):
    """Logs percentiles of pre-activation values on a fixed probe batch.

    Every `every_n_steps` optimizer steps (and at step 0), runs the model once
    on the probe batch and, for each chosen layer, logs the
    `percentiles` of the values entering its nonlinearity as scalars
    `percentiles/<layer>/p<q>` (`percentiles/<layer>/unit_<i>/p<q>` when
    `unit` is set) and all the values as the histogram `.../values`.
    Between firings it costs nothing.

    What is measured for a chosen layer:
    - an activation layer (`Activation`, `ReLU`, ...): its input;
    - a layer with a nonlinear `activation` argument (e.g.
      `Dense(100, activation="sigmoid")`): its output before the activation;
    - any other layer (e.g. a `BatchNormalization`): its output.

    Args:
        layers: Layers or layer names to follow; None (default) follows every
            nonlinearity of the model, i.e. what BN normalizes.
        percentiles: Percentiles to log, each in [0, 100] (NumPy's linear
            interpolation).
        every_n_steps: Interval in optimizer steps (>= 1).
        log_dir: TensorBoard folder (events go to `log_dir/train`); None keeps
            the numbers only in `history`.
        data: The probe batch: model inputs (an array, or a list or dict of
            arrays), or a tuple `(x, y)` whose `x` is used. Required: Keras
            callbacks never see the training batches.
        unit: Index (on the last axis) of one unit to follow, as the paper
            follows one sigmoid; None pools every unit of the layer.
        histogram: Whether to also log the histogram of the values.
        training: Whether the probe pass runs in training mode, so that BN
            normalizes with the probe batch's own statistics as the
            nonlinearity sees them during training (and noise models act).
            The state such a pass would write (moving statistics, seed
            generators) is left untouched. False (default) probes the
            inference network.

    Attributes:
        history: Tag -> list of logged values, aligned with `history["step"]`.

    Example:

    ```python
    probe = kbn.callbacks.ActivationPercentiles(
        data=x_train[:512], every_n_steps=50, log_dir="logs")
    model.fit(x_train, y_train, callbacks=[probe])
    ```
    """

    def __init__(
        self,
        layers=None,
        percentiles=(15, 50, 85),
        every_n_steps=100,
        log_dir="logs",
        data=None,
        unit=None,
        histogram=True,
        training=False,
    ):
        super().__init__(every_n_steps, log_dir)
        self.layers = _check_layers(layers)
        self.percentiles = _check_percentiles(percentiles)
        if data is None:
            raise ValueError(
                "Argument `data` is required: the probe batch (model inputs, or "
                "(x, y)). Keras callbacks never see the training batches."
            )
        if isinstance(data, tuple):
            data = data[0]
        number_of_examples(data, "data")
        self.data = keras.tree.map_structure(np.asarray, data)
        if unit is not None and (
            isinstance(unit, bool) or not isinstance(unit, numbers.Integral) or unit < 0
        ):
            raise ValueError(
                "Argument `unit` must be None or an integer >= 0. "
                f"Received: unit={unit!r}"
            )
        self.unit = unit
        self.histogram = bool(histogram)
        self.training = bool(training)

    def _reset_runtime_state(self):
        super()._reset_runtime_state()
        self._probes = None  # (tag prefix, how to get the values) per layer
        self._extractor = None

    def on_train_begin(self, logs=None):
        self._plan(self.model)
        super().on_train_begin(logs)

    def _chosen_layers(self, model):
        if self.layers is None:
            chosen = nonlinearity_layers(model)
            if not chosen:
                raise ValueError(
                    "ActivationPercentiles found no nonlinearity in the model; "
                    "pass `layers=` to choose what to follow."
                )
            return chosen
        by_name = {layer.name: layer for layer in model.layers}
        chosen = []
        for item in self.layers:
            name = item if isinstance(item, str) else item.name
            if name not in by_name:
                raise ValueError(
                    f"Argument `layers` names {name!r}, which is not a layer of "
                    f"model {model.name!r} (its layers: {', '.join(by_name)})"
                )
            chosen.append(by_name[name])
        return chosen

    def _plan(self, model):
        """Builds one extractor model that returns every followed tensor."""
        if not getattr(model, "inputs", None):
            raise ValueError(
                "ActivationPercentiles needs a functional or Sequential model built "
                "on an Input (a subclassed model has no layer graph to read)."
            )
        tensors, probes = [], []
        for layer in self._chosen_layers(model):
            fused = _has_fused_activation(layer)
            try:
                if fused or _is_activation_layer(layer):
                    tensors.append(layer.input)
                else:
                    tensors.append(layer.output)
            except (AttributeError, ValueError) as error:
                raise ValueError(
                    f"ActivationPercentiles cannot follow layer {layer.name!r}: {error}"
                ) from None
            prefix = f"percentiles/{layer.name}"
            if self.unit is not None:
                width = layer.output.shape[-1]  # a fused layer's pre-activation too
                if width is not None and self.unit >= width:
                    raise ValueError(
                        f"Argument `unit`={self.unit} is out of range for layer "
                        f"{layer.name!r}, which has {width} units"
                    )
                prefix += f"/unit_{self.unit}"
            probes.append((prefix, layer if fused else None))
        self._extractor = keras.Model(_input_structure(model), tensors)
        self._probes = probes

    def pre_activations(self):
        """The followed values on the probe batch, one float64 array per layer."""
        # The scope drops the state a training-mode pass would write.
        with keras.StatelessScope():
            outputs = self._extractor(self.data, training=self.training)
            if not isinstance(outputs, list | tuple):
                outputs = [outputs]
            tensors = [
                tensor
                if fused_layer is None
                else _without_activation(fused_layer, tensor, self.training)
                for (_, fused_layer), tensor in zip(self._probes, outputs, strict=True)
            ]
        values = []
        for tensor in tensors:
            array = keras.ops.convert_to_numpy(tensor).astype(np.float64)
            if self.unit is not None:
                array = array[..., self.unit]
            values.append(array)
        return values

    def measure(self, step):
        scalars, histograms = {}, {}
        for (prefix, _), values in zip(
            self._probes, self.pre_activations(), strict=True
        ):
            flat = values.reshape(-1)
            finite = flat[np.isfinite(flat)]
            points = (
                np.percentile(finite, self.percentiles)
                if finite.size
                else [math.nan] * len(self.percentiles)
            )
            for q, value in zip(self.percentiles, points, strict=True):
                scalars[f"{prefix}/p{q:g}"] = float(value)
            if self.histogram:
                histograms[f"{prefix}/values"] = flat
        return scalars, histograms


def _input_structure(model):
    """The model's inputs as it is called (a Sequential has no `model.input`)."""
    try:
        return model.input
    except (AttributeError, ValueError):
        return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def _without_activation(layer, inputs, training):
    """Calls `layer` on `inputs` with its activation switched off."""
    activation = layer.activation
    layer.activation = keras.activations.linear
    try:
        return layer(inputs, training=training)
    finally:
        layer.activation = activation


def _check_layers(layers):
    if layers is None:
        return None
    if isinstance(layers, str | keras.layers.Layer):
        layers = [layers]
    layers = list(layers)
    if not layers or not all(isinstance(v, str | keras.layers.Layer) for v in layers):
        raise ValueError(
            "Argument `layers` must be None or a non-empty list of layers or layer "
            f"names. Received: layers={layers!r}"
        )
    return [v if isinstance(v, str) else v.name for v in layers]


def _check_percentiles(percentiles):
    try:
        values = [float(q) for q in percentiles]
    except (TypeError, ValueError):
        values = None
    if not values or not all(0 <= q <= 100 for q in values):
        raise ValueError(
            "Argument `percentiles` must be a non-empty list of numbers in [0, 100]. "
            f"Received: percentiles={percentiles!r}"
        )
    return tuple(values)
