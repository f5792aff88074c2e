"""The training loss and its gradient at given weights, changing no state.

What `model.fit` differentiates (compiled loss plus the model's own losses,
training-mode forward pass), evaluated inside a `keras.StatelessScope`: the
weights and the other variables (moving statistics, seed-generator states)
are read from the values passed in, and every assignment the forward pass
makes (moving-statistic updates, seed advances) is captured and dropped. So
probing never writes a variable: nothing needs restoring, and every call
with the same values sees the same noise draw. Compiled once per model
(`tf.function` or `jax.jit`); the gradient is the one thing `keras.ops`
does not cover.
"""

import keras
import numpy as np


def current_values(variables):
    """The variables' current values, as the compiled function takes them."""
    return [v.value for v in variables]


def loss_and_gradients_function(model):
    """Returns `f(trainable, non_trainable, x, y, sample_weight)`.

    `f` takes lists of values for `model.trainable_variables` and
    `model.non_trainable_variables` and returns `(loss, gradients)`: the
    loss as a float and one float64 NumPy gradient per trainable variable.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        compute = _tensorflow(model)
    elif backend == "jax":
        compute = _jax(model)
    else:
        raise NotImplementedError(
            f"kbn.callbacks.LandscapeProbe supports the tensorflow and jax backends, "
            f"not {backend!r}"
        )
    to_numpy = keras.ops.convert_to_numpy

    def loss_and_gradients(trainable, non_trainable, x, y, sample_weight=None):
        loss, grads = compute(list(trainable), list(non_trainable), x, y, sample_weight)
        return float(to_numpy(loss)), [
            np.zeros(v.shape) if g is None else to_numpy(g).astype(np.float64)
            for v, g in zip(model.trainable_variables, grads, strict=True)
        ]

    return loss_and_gradients


def _loss(model, trainable, non_trainable, x, y, sample_weight):
    mapping = [
        *zip(model.trainable_variables, trainable, strict=True),
        *zip(model.non_trainable_variables, non_trainable, strict=True),
    ]
    with keras.StatelessScope(state_mapping=mapping):
        y_pred = model(x, training=True)
        return model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )


def _tensorflow(model):
    import tensorflow as tf

    @tf.function
    def compute(trainable, non_trainable, x, y, sample_weight):
        trainable = [tf.convert_to_tensor(v) for v in trainable]
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            loss = _loss(model, trainable, non_trainable, x, y, sample_weight)
        return loss, tape.gradient(loss, trainable)

    return compute


def _jax(model):
    import jax

    def loss(trainable, non_trainable, x, y, sample_weight):
        return _loss(model, trainable, non_trainable, x, y, sample_weight)

    return jax.jit(jax.value_and_grad(loss))
