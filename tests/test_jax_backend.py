"""The portable keras.ops path on the JAX backend, against float64 NumPy."""

import pytest
from conftest import run_script

pytest.importorskip("jax")


def test_layer_trains_and_saves_on_jax(tmp_path):
    out = run_script(
        f"""
import keras, numpy as np
assert keras.backend.backend() == "jax"
import kbn
rng = np.random.default_rng(0)
x = (rng.normal(size=(8, 4, 3)) * 2 + 1e5).astype("float32")
for kwargs in [dict(), dict(axis=[1, 2]), dict(virtual_batch_size=4),
               dict(momentum=None, unbiased_moving_variance=True),
               dict(noise="covariate_shift", seed=1)]:
    layer = kbn.BatchNormalization(momentum=kwargs.pop("momentum", 0.0), **kwargs)
    y = np.asarray(layer(x, training=True))
    assert np.all(np.isfinite(y)), kwargs
ref = x.astype("float64")
layer = kbn.BatchNormalization(momentum=0.0)
y = np.asarray(layer(x, training=True))
want = (ref - ref.mean((0, 1))) / np.sqrt(ref.var((0, 1)) + 1e-3)
moving_variance = np.asarray(layer.moving_variance)
np.testing.assert_allclose(moving_variance, ref.var((0, 1)), rtol=1e-3)
np.testing.assert_allclose(y, want, atol=1e-2)
stock = keras.layers.BatchNormalization(momentum=0.0)
x2 = rng.normal(size=(16, 5)).astype("float32")
np.testing.assert_allclose(
    np.asarray(kbn.BatchNormalization(momentum=0.0)(x2, training=True)),
    np.asarray(stock(x2, training=True)), atol=1e-5)
try:
    kbn.BatchNormalization(compile_moments=True)
except ValueError as e:
    assert "compile_moments" in str(e)
else:
    raise AssertionError("compile_moments=True must be refused on JAX")
model = keras.Sequential([
    keras.Input((5,)),
    keras.layers.Dense(4, use_bias=False),
    kbn.BatchNormalization(noise="adjustment"),
    keras.layers.Dense(1),
])
model.compile("sgd", "mse")
model.fit(x2, np.zeros((16, 1)), epochs=2, batch_size=8, verbose=0)
model.save(r"{tmp_path}/jax.keras")
loaded = keras.saving.load_model(r"{tmp_path}/jax.keras", safe_mode=True)
np.testing.assert_allclose(loaded.predict(x2, verbose=0), model.predict(x2, verbose=0))
mean, std = kbn.mc_predict(model, x2, samples=4, batch_size=8, seed=0)
assert mean.shape == (16, 1) and np.all(std > 0)
print("jax ok")
""",
        env={"KERAS_BACKEND": "jax"},
    )
    assert "jax ok" in out


def test_callbacks_on_jax(tmp_path):
    out = run_script(
        f"""
import keras, numpy as np
assert keras.backend.backend() == "jax"
import kbn
from kbn.callbacks import ActivationPercentiles, LandscapeProbe
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 5)).astype("float32")
y = (x[:, 0] > 0).astype("int32")

def model():
    keras.utils.set_random_seed(1)
    m = keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(6, activation="sigmoid", name="fused"),
        kbn.BatchNormalization(noise="covariate_shift", seed=2),
        keras.layers.Dense(2),
    ])
    m.compile(keras.optimizers.Adam(0.01),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m

plain = model()
plain.fit(x, y, batch_size=16, epochs=2, verbose=0)
probed = model()
probes = [
    ActivationPercentiles(every_n_steps=3, log_dir=r"{tmp_path}", data=x[:32],
                          training=True),
    LandscapeProbe(every_n_steps=3, log_dir=r"{tmp_path}", data=(x, y), batch_size=16),
]
probed.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=probes)
for a, b in zip(plain.variables + plain.optimizer.variables,
                probed.variables + probed.optimizer.variables, strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
w, b = (np.float64(v) for v in probed.get_layer("fused").get_weights())
pre = x[:32].astype(np.float64) @ w + b
np.testing.assert_allclose(
    probes[0].history["percentiles/fused/p85"][-1], np.percentile(pre, 85), atol=2e-5)
assert probes[1].history["step"] == [0, 3, 6, 8]
assert all(np.isfinite(v) and v > 0 for v in probes[1].history["landscape/loss_range"])
print("jax callbacks ok")
""",
        env={"KERAS_BACKEND": "jax"},
    )
    assert "jax callbacks ok" in out
