"""Two replicas on two logical CPU devices (each case in a fresh interpreter)."""

import pytest
from conftest import run_script

SETUP = """
import os
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras
import kbn
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)

def run(layer, x, mask=None):
    inputs = (x,) if mask is None else (x, mask)
    ds = tf.data.Dataset.from_tensor_slices(inputs).batch(len(x))
    dist = strategy.experimental_distribute_dataset(ds)

    @tf.function
    def step(batch):
        def fn(*b):
            return layer(b[0], training=True, mask=b[1] if len(b) > 1 else None)
        return strategy.run(fn, args=batch)

    for batch in dist:
        step(batch)
"""


TWO_HALVES = """
x = np.concatenate([rng.normal(size=(4, 3)), rng.normal(size=(4, 3)) * 3 + 10])
x = x.astype("float32")
halves = np.split(x.astype("float64"), 2)
"""


@pytest.mark.parametrize("compile_moments", ["auto", False])
def test_moving_statistics_are_averaged_over_replicas(compile_moments):
    run_script(
        SETUP
        + TWO_HALVES
        + f"""
with strategy.scope():
    ours = kbn.BatchNormalization(momentum=0.0, compile_moments={compile_moments!r})
run(ours, x)
mean_over_replicas = np.mean([h.mean(0) for h in halves], 0)
var_over_replicas = np.mean([h.var(0) for h in halves], 0)
np.testing.assert_allclose(ours.moving_mean.numpy(), mean_over_replicas, rtol=1e-5)
np.testing.assert_allclose(ours.moving_variance.numpy(), var_over_replicas, rtol=1e-5)
print("ok")
"""
    )


def test_stock_layer_keeps_replica_zeros_copy():
    # The defect kbn fixes, checked so the test above stays meaningful.
    run_script(
        SETUP
        + TWO_HALVES
        + """
with strategy.scope():
    stock = keras.layers.BatchNormalization(momentum=0.0)
run(stock, x)
np.testing.assert_allclose(stock.moving_mean.numpy(), halves[0].mean(0), rtol=1e-5)
print("ok")
"""
    )


def test_synchronized_statistics_honour_a_mask():
    run_script(
        SETUP
        + """
x = (rng.normal(size=(4, 5, 3)) * 2 + 1).astype("float32")
mask = rng.random((4, 5)) > 0.4
mask[:, 0] = True
with strategy.scope():
    layer = kbn.BatchNormalization(momentum=0.0, synchronized=True)
    # Built before the distributed step, as model.fit does (see the note in
    # kbn/distributed.py on building lazily inside strategy.run).
    layer.build(x.shape)
run(layer, x, mask)
kept = x[mask].astype("float64")
np.testing.assert_allclose(layer.moving_mean.numpy(), kept.mean(0), rtol=1e-5)
np.testing.assert_allclose(layer.moving_variance.numpy(), kept.var(0), rtol=1e-4)
print("ok")
"""
    )


def test_synchronized_with_an_empty_replica_matches_the_stock_layer():
    # A global batch smaller than the number of replicas: one replica's batch
    # is empty, with a dynamic shape (a distributed dataset) or a static one.
    run_script(
        SETUP
        + """
x = (rng.normal(size=(3, 3)) * 2 + 1).astype("float32")
with strategy.scope():
    layers = [cls(momentum=0.0, synchronized=True)
              for cls in (keras.layers.BatchNormalization, kbn.BatchNormalization)]
    for layer in layers:
        layer.build((None, 3))
for layer in layers:
    run(layer, x[:1])  # dynamic: replicas get 1 and 0 rows
stock, ours = (layer.moving_mean.numpy() for layer in layers)
np.testing.assert_allclose(ours, x[0], rtol=1e-6)
np.testing.assert_allclose(ours, stock, rtol=1e-6)

def value(ctx):  # static shapes: (2, 3) and (0, 3)
    return tf.constant(x[:2]) if ctx.replica_id_in_sync_group == 0 else x[:0]

values = strategy.experimental_distribute_values_from_function(value)
outputs = []
for layer in layers:
    @tf.function
    def step(v, layer=layer):
        return strategy.run(lambda b: layer(b, training=True), args=(v,))
    outputs.append(strategy.experimental_local_results(step(values))[0].numpy())
# Against float64 (the stock layer's one-pass E[x^2] - E[x]^2 is within 1e-4).
two = x[:2].astype("float64")
want = (two - two.mean(0)) / np.sqrt(two.var(0) + 1e-3)
np.testing.assert_allclose(outputs[1], want, atol=1e-5)
np.testing.assert_allclose(outputs[0], want, atol=1e-4)
np.testing.assert_allclose(layers[1].moving_mean.numpy(), x[:2].mean(0), rtol=1e-5)
assert np.all(np.isfinite(layers[1].moving_variance.numpy()))
print("ok")
"""
    )


def test_model_fit_under_mirrored_strategy_with_noise():
    run_script(
        SETUP
        + """
x = rng.normal(size=(32, 5)).astype("float32")
y = rng.normal(size=(32, 1)).astype("float32")
with strategy.scope():
    model = keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(8, use_bias=False),
        kbn.BatchNormalization(noise="batch_statistics", seed=1),
        keras.layers.Dense(4, use_bias=False),
        kbn.BatchNormalization(synchronized=True),
        keras.layers.Dense(1),
    ])
    model.compile("sgd", "mse")
history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
assert np.all(np.isfinite(history.history["loss"]))
print("ok")
"""
    )
