"""The layer on JAX (its kernel) and PyTorch (the portable path), against NumPy.

The PyTorch case runs where torch is importable (it is not a dependency).
"""

import importlib.util

import pytest
from conftest import run_script

SCRIPT = """
import keras, numpy as np
assert keras.backend.backend() == "BACKEND"
import kbn
def arr(t):
    return keras.ops.convert_to_numpy(t)
rng = np.random.default_rng(0)
x = (rng.normal(size=(8, 4, 3)) * 2 + 1e5).astype("float32")
for kwargs in [dict(), dict(axis=[1, 2]), dict(virtual_batch_size=4),
               dict(momentum=None, unbiased_moving_variance=True),
               dict(noise="covariate_shift", seed=1)]:
    layer = kbn.BatchNormalization(momentum=kwargs.pop("momentum", 0.0), **kwargs)
    y = arr(layer(x, training=True))
    assert np.all(np.isfinite(y)), kwargs
# Ghost BN with an uneven split: 10 rows, at most 4 per ghost -> 4, 3, 3.
xg = rng.normal(size=(10, 3)).astype("float32") + np.arange(10)[:, None]
yg = arr(kbn.BatchNormalization(virtual_batch_size=4)(xg, training=True))
want, start = [], 0
for size in (4, 3, 3):
    g = xg[start:start + size].astype("float64")
    want.append((g - g.mean(0)) / np.sqrt(g.var(0) + 1e-3))
    start += size
np.testing.assert_allclose(yg, np.concatenate(want), atol=1e-4)
empty = kbn.BatchNormalization(momentum=0.0)
empty(xg, training=True)
before = arr(empty.moving_mean)
assert tuple(empty(xg[:0], training=True).shape) == (0, 3)
np.testing.assert_array_equal(arr(empty.moving_mean), before)
ref = x.astype("float64")
layer = kbn.BatchNormalization(momentum=0.0)
y = arr(layer(x, training=True))
want = (ref - ref.mean((0, 1))) / np.sqrt(ref.var((0, 1)) + 1e-3)
moving_variance = arr(layer.moving_variance)
np.testing.assert_allclose(moving_variance, ref.var((0, 1)), rtol=1e-3)
np.testing.assert_allclose(y, want, atol=1e-2)
stock = keras.layers.BatchNormalization(momentum=0.0)
x2 = rng.normal(size=(16, 5)).astype("float32")
np.testing.assert_allclose(
    arr(kbn.BatchNormalization(momentum=0.0)(x2, training=True)),
    arr(stock(x2, training=True)), atol=1e-5)
# Without gamma or beta (InceptionV3's scale=False failed on JAX), kernel and
# portable path, training and inference, against the stock layer.
for kwargs in [dict(scale=False), dict(center=False), dict(scale=False, center=False)]:
    for compiled in ("auto", False):
        ours = kbn.BatchNormalization(compile_moments=compiled, **kwargs)
        theirs = keras.layers.BatchNormalization(**kwargs)
        for training in (True, False):
            np.testing.assert_allclose(arr(ours(x2, training=training)),
                arr(theirs(x2, training=training)), atol=1e-5, err_msg=str(kwargs))
# The JAX backend has kernels of its own; PyTorch has only the portable path.
try:
    kbn.BatchNormalization(compile_moments=True)
except ValueError as e:
    assert "BACKEND" == "torch" and "compile_moments" in str(e)
else:
    assert "BACKEND" == "jax", "compile_moments=True must be refused on torch"
model = keras.Sequential([
    keras.Input((5,)),
    keras.layers.Dense(4, use_bias=False),
    kbn.BatchNormalization(noise="adjustment", virtual_batch_size=4),
    kbn.BatchNormalization(scale=False),
    keras.layers.Dense(1),
])
model.compile("sgd", "mse")
# 16 samples in batches of 6: a short last batch of 4.
model.fit(x2, np.zeros((16, 1)), epochs=2, batch_size=6, verbose=0)
model.save(r"TMP/model.keras")
loaded = keras.saving.load_model(r"TMP/model.keras", safe_mode=True)
np.testing.assert_allclose(loaded.predict(x2, verbose=0), model.predict(x2, verbose=0))
mean, std = kbn.mc_predict(model, x2, samples=4, batch_size=8, seed=0)
assert mean.shape == (16, 1) and np.all(std > 0)
print("backend ok")
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_layer_trains_and_saves_on_other_backends(backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    code = SCRIPT.replace("BACKEND", backend).replace("TMP", str(tmp_path))
    out = run_script(code, env={"KERAS_BACKEND": backend})
    assert "backend ok" in out
