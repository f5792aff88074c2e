"""Models and checks shared by the BN toolbox tests: convert, fold, statistics."""

import keras
import numpy as np

import kbn
from kbn import model_graph

layers = keras.layers
BN_CLASSES = {"stock": keras.layers.BatchNormalization, "kbn": kbn.BatchNormalization}


def randomize_statistics(model, seed=0):
    """Non-trivial gamma, beta and moving statistics in every BN layer."""
    rng = np.random.default_rng(seed)
    for layer in model_graph.batch_norm_layers(model):
        for w in layer.weights:
            if w.name == "moving_mean" or w.name == "beta" or w.name == "renorm_mean":
                w.assign(rng.normal(0.0, 0.5, w.shape).astype(w.dtype))
            elif w.name in ("moving_variance", "gamma"):
                w.assign(rng.uniform(0.5, 2.0, w.shape).astype(w.dtype))
            elif w.name in ("moving_stddev", "renorm_stddev"):
                w.assign(rng.uniform(0.7, 1.4, w.shape).astype(w.dtype))
    return model


def weights_of(model):
    """Every weight by path, as NumPy arrays."""
    return {w.path: np.array(keras.ops.convert_to_numpy(w)) for w in model.weights}


def bn_count(model):
    return len(model_graph.batch_norm_layers(model))


def bn_types(model):
    return [type(la) for la in model_graph.batch_norm_layers(model)]


def inputs_for(model, n=6, seed=1):
    rng = np.random.default_rng(seed)
    shapes = [t.shape[1:] for t in model.inputs]
    xs = [rng.normal(size=(n, *s)).astype("float32") for s in shapes]
    return xs[0] if len(xs) == 1 else xs


def predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


# ------------------------------------------------------------------- models


def conv_model(bn=keras.layers.BatchNormalization):
    """Functional: conv -> BN -> relu, a residual branch with BN, a dense head."""
    inputs = keras.Input((8, 8, 3))
    h = layers.Conv2D(6, 3, padding="same", use_bias=False)(inputs)
    h = layers.ReLU()(bn()(h))
    skip = h
    h = layers.DepthwiseConv2D(3, padding="same")(h)
    h = bn(epsilon=1e-2)(h)
    h = layers.Add()([layers.ReLU()(h), skip])
    h = layers.GlobalAveragePooling2D()(h)
    h = bn(center=False, scale=False)(h)
    return keras.Model(inputs, layers.Dense(3)(h), name="conv_model")


def sequential_model(bn=keras.layers.BatchNormalization):
    return keras.Sequential(
        [
            keras.Input((7,)),
            layers.Dense(5),
            bn(momentum=0.9),
            layers.ReLU(),
            layers.Dropout(0.5),
            layers.Dense(4),
            bn(epsilon=1e-4, scale=False),
            layers.Dense(2),
        ],
        name="sequential_model",
    )


def nested_model(bn=keras.layers.BatchNormalization):
    """A Sequential block and a Functional block used as layers of a model."""
    block = keras.Sequential(
        [keras.Input((6, 6, 4)), layers.Conv2D(4, 1), bn(), layers.ReLU()],
        name="sequential_block",
    )
    inner_in = keras.Input((6, 6, 4))
    inner = layers.SeparableConv2D(5, 3, padding="same")(inner_in)
    inner = bn(momentum=0.8)(inner)
    functional_block = keras.Model(inner_in, inner, name="functional_block")
    inputs = keras.Input((6, 6, 3))
    h = layers.Conv2D(4, 3, padding="same")(inputs)
    h = bn()(h)
    h = functional_block(block(h))
    h = layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, layers.Dense(2)(h), name="nested_model")


MODELS = {
    "functional": conv_model,
    "sequential": sequential_model,
    "nested": nested_model,
}


class Subclassed(keras.Model):
    """A model whose layers are called from Python: not a graph."""

    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(3)
        self.bn = layers.BatchNormalization()

    def call(self, x):
        return self.bn(self.dense(x))


def subclassed_model():
    model = Subclassed()
    model(np.zeros((2, 4), "float32"))
    return model
