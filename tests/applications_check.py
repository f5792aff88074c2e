"""`keras.applications` models converted to kbn train like the stock ones.

Used in this process (TensorFlow) and in a fresh interpreter on JAX by
test_applications.py: `check(names)` builds each model with `weights=None` at
its smallest input, converts it with `kbn.convert`, trains both copies one
SGD step on the same batch and compares the loss and what the step did to
every moving statistic. Prints one line per model.

In float64: one step of a 50- to 100-layer network at these sizes divides by
batch variances of four values at 1x1 resolution, so float32 rounding alone
moves ResNet50's loss by 6e-4 (relative) between two correct layers; in
float64 the two agree to the tolerances below, which a wrong gradient or a
wrong statistic would fail. On JAX the stock layer's own float64 output is
2.9e-7 away from a float64 NumPy reference (kbn's: 4e-16), and InceptionV3's
loss then differs by 1.1e-5 (relative), so JAX gets looser bounds.
"""

import keras
import numpy as np

import kbn
from kbn import model_graph

# Model -> smallest input Keras accepts (height = width). InceptionV3 and
# InceptionResNetV2 use scale=False in every BN layer.
SIZES = {
    "InceptionV3": 75,
    "ResNet50": 32,
    "MobileNetV2": 32,
    "Xception": 71,
    "DenseNet121": 32,
    "InceptionResNetV2": 75,
}
BATCH = 4
CLASSES = 5
# (loss rtol, statistics atol relative to a layer's largest change)
TOLERANCE = {"tensorflow": (1e-6, 1e-5), "jax": (1e-4, 1e-3)}


def _build(name):
    keras.utils.set_random_seed(0)
    size = SIZES[name]
    return getattr(keras.applications, name)(
        weights=None, input_shape=(size, size, 3), classes=CLASSES
    )


def _statistics(model):
    return {
        w.path.split("/", 1)[-1]: np.array(keras.ops.convert_to_numpy(w), "float64")
        for layer in model_graph.batch_norm_layers(model)
        for w in (layer.moving_mean, layer.moving_variance)
    }


def _step(model, x, y):
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy")
    before = _statistics(model)
    loss = float(model.train_on_batch(x, y))
    after = _statistics(model)
    return loss, {k: after[k] - before[k] for k in before}


def check(names):
    """Raises AssertionError unless every model trains like the stock one.

    Sets Keras's float type to float64 while it runs (on JAX the process needs
    `JAX_ENABLE_X64=1`).
    """
    floatx = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        for name in names:
            _check_one(name)
    finally:
        keras.config.set_floatx(floatx)


def _check_one(name):
    rng = np.random.default_rng(0)
    stock = _build(name)
    converted = kbn.convert(stock)
    layers = model_graph.batch_norm_layers(converted)
    assert layers and all(type(la) is kbn.BatchNormalization for la in layers)
    size = SIZES[name]
    x = rng.normal(size=(BATCH, size, size, 3))
    y = np.eye(CLASSES)[rng.integers(0, CLASSES, BATCH)]
    loss, moved = _step(converted, x, y)
    want_loss, want_moved = _step(stock, x, y)
    loss_rtol, atol = TOLERANCE[keras.backend.backend()]
    np.testing.assert_allclose(loss, want_loss, rtol=loss_rtol, err_msg=name)
    assert moved.keys() == want_moved.keys()
    for key, want in want_moved.items():
        # The step's change of a statistic, (1 - momentum) * (batch - old),
        # relative to the largest change in that layer.
        scale = max(np.abs(want).max(), 1e-12)
        np.testing.assert_allclose(
            moved[key] / scale, want / scale, atol=atol, err_msg=f"{name} {key}"
        )
    print(f"{name}: {len(layers)} BN layers, loss {loss:.8f} ok", flush=True)
