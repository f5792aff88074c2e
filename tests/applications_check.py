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
2.9e-7 away from a float64 NumPy reference (kbn's: 4e-16), and the losses
then differ by up to 1.1e-4 (ResNet50, relative), so on JAX the converted
model is held to the stock one loosely and, more tightly, to a third copy on
kbn's portable `keras.ops` path (`compile_moments=False`), written
independently of the kernels. Even those two differ by 2.7e-6 in
InceptionV3's float64 loss on JAX and by 5.4e-5 in ResNet50's (a float64
dense layer alone agrees to 4e-16; where these nets lose float64 precision on
JAX, whose batch variances at 1x1 resolution come from four values, is not
investigated here), so JAX's bounds are 1e-3 for both comparisons.
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
TIGHT = {"tensorflow": (1e-6, 1e-5), "jax": (1e-3, 1e-2)}
AGAINST_STOCK = {"tensorflow": TIGHT["tensorflow"], "jax": (1e-3, 1e-2)}


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


def _backend():
    return keras.backend.backend()


def _assert_same(name, got, want, tolerance):
    (loss, moved), (want_loss, want_moved) = got, want
    loss_rtol, atol = tolerance
    np.testing.assert_allclose(loss, want_loss, rtol=loss_rtol, err_msg=name)
    assert moved.keys() == want_moved.keys()
    for key, want in want_moved.items():
        # The step's change of a statistic, (1 - momentum) * (batch - old),
        # relative to the largest change in that layer, or to 1e-6 (changes
        # are of order 1e-2: MobileNetV2 has a layer whose mean moves by
        # 1e-10, rounding, which a relative bound would magnify).
        scale = max(np.abs(want).max(), 1e-6)
        np.testing.assert_allclose(
            moved[key] / scale, want / scale, atol=atol, err_msg=f"{name} {key}"
        )


def _check_one(name):
    rng = np.random.default_rng(0)
    stock = _build(name)
    converted = kbn.convert(stock)
    portable = kbn.convert(stock) if _backend() == "jax" else None
    layers = model_graph.batch_norm_layers(converted)
    assert layers and all(type(la) is kbn.BatchNormalization for la in layers)
    size = SIZES[name]
    x = rng.normal(size=(BATCH, size, size, 3))
    y = np.eye(CLASSES)[rng.integers(0, CLASSES, BATCH)]
    loss, moved = _step(converted, x, y)
    _assert_same(name, (loss, moved), _step(stock, x, y), AGAINST_STOCK[_backend()])
    if portable is not None:
        for layer in model_graph.batch_norm_layers(portable):
            layer.compile_moments = False
        _assert_same(name, (loss, moved), _step(portable, x, y), TIGHT["jax"])
    print(f"{name}: {len(layers)} BN layers, loss {loss:.8f} ok", flush=True)
