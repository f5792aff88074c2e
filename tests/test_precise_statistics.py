"""kbn.recompute_statistics: exact inference-mode statistics, against float64 NumPy."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from bn_toolbox import (
    BN_CLASSES,
    MODELS,
    layers,
    randomize_statistics,
    subclassed_model,
    weights_of,
)
from conftest import run_script

import kbn
from kbn import model_graph
from kbn.precise_statistics import combine_moments, recompute_statistics

TOL = dict(rtol=1e-5, atol=1e-6)
STATISTICS = ("moving_mean", "moving_variance")


def data(n=100, features=5, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, features)) * 3.0 + 2.0).astype("float32")


def mlp(bn=keras.layers.BatchNormalization, dropout=0.5):
    """Dense -> BN -> Dropout -> Dense -> BN, the same weights on every call."""
    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            layers.Dense(4),
            bn(name="bn_a"),
            layers.Dropout(dropout),
            layers.Dense(3),
            bn(name="bn_b", epsilon=1e-2),
        ]
    )
    return randomize_statistics(model)


def mlp_statistics(model, x, ddof=0):
    """The MLP's exact statistics in float64, by hand: bn_b's input uses bn_a's.

    `ddof=1` for layers storing the unbiased variance (and normalizing with it).
    """
    dense_a, bn_a, _, dense_b, _ = model.layers
    w = {la.name: [np.float64(v) for v in la.get_weights()] for la in model.layers}
    h = x.astype(np.float64) @ w[dense_a.name][0] + w[dense_a.name][1]
    mean_a, var_a = h.mean(0), h.var(0, ddof=ddof)
    gamma, beta = w[bn_a.name][:2]
    z = gamma * (h - mean_a) / np.sqrt(var_a + bn_a.epsilon) + beta
    h = z @ w[dense_b.name][0] + w[dense_b.name][1]
    return {"bn_a": (mean_a, var_a), "bn_b": (h.mean(0), h.var(0, ddof=ddof))}


def statistics(model):
    return {
        la.name: tuple(keras.ops.convert_to_numpy(getattr(la, s)) for s in STATISTICS)
        for la in model_graph.batch_norm_layers(model)
    }


def assert_statistics(got, want, **tol):
    assert got.keys() == want.keys()
    for name in want:
        for a, b, stat in zip(got[name], want[name], STATISTICS, strict=True):
            np.testing.assert_allclose(a, b, **(tol or TOL), err_msg=f"{name} {stat}")


def recorded_inputs(model, x):
    """Every BN layer's input in `model(x, training=False)`, recorded by Keras."""
    seen = {}
    bns = model_graph.batch_norm_layers(model)
    for bn in bns:

        def call(inputs, *args, bn=bn, original=bn.call, **kwargs):
            seen[bn.name] = keras.ops.convert_to_numpy(inputs).astype(np.float64)
            return original(inputs, *args, **kwargs)

        bn.call = call
    try:
        model(x, training=False)
    finally:
        for bn in bns:
            del bn.call
    return seen


def assert_self_consistent(model, x):
    """Each BN layer's statistics are those of the input it now receives."""
    want = {}
    for name, h in recorded_inputs(model, x).items():
        bn = _layer(model, name)
        axes = tuple(
            a for a in range(h.ndim) if a not in model_graph.feature_axes(bn, h.ndim)
        )
        want[name] = (h.mean(axes), h.var(axes))
    assert_statistics(statistics(model), want)


def _layer(model, name):
    return next(la for la in model_graph.batch_norm_layers(model) if la.name == name)


# ---------------------------------------------------------------- exactness


@pytest.mark.parametrize("bn", sorted(BN_CLASSES))
def test_mlp_matches_float64_numpy(bn):
    model, x = mlp(BN_CLASSES[bn]), data()
    counts = recompute_statistics(model, x, batch_size=16)
    assert counts == {"bn_a": 100, "bn_b": 100}
    assert_statistics(statistics(model), mlp_statistics(model, x))


def test_mlp_builds_the_same_weights_every_time():
    assert all(
        np.array_equal(a, b)
        for a, b in zip(mlp().get_weights(), mlp().get_weights(), strict=True)
    )


def test_result_does_not_depend_on_batch_size():
    x = data(n=130)
    results = []
    for batch_size in (7, 64, 130):
        model = mlp()
        recompute_statistics(model, x, batch_size=batch_size)
        results.append(statistics(model))
    assert_statistics(results[0], results[2], rtol=1e-6, atol=1e-7)
    assert_statistics(results[1], results[2], rtol=1e-6, atol=1e-7)


def test_dropout_does_not_change_the_result():
    x = data()
    with_dropout, without = mlp(dropout=0.9), mlp(dropout=0.0)
    without.set_weights(with_dropout.get_weights())
    recompute_statistics(with_dropout, x)
    recompute_statistics(without, x)
    assert_statistics(statistics(with_dropout), statistics(without), rtol=0, atol=0)


def test_no_other_weight_or_graph_changes():
    model = MODELS["nested"]()
    randomize_statistics(model)
    before = weights_of(model)
    every_layer = model._flatten_layers(include_self=False, recursive=True)
    nodes = [len(la._inbound_nodes) for la in every_layer]
    recompute_statistics(model, data(n=20, features=6 * 6 * 3).reshape(20, 6, 6, 3))
    after = weights_of(model)
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    assert changed and all(p.rsplit("/", 1)[1] in STATISTICS for p in changed)
    # No layer was called symbolically: `layer.input` still works everywhere.
    assert [len(la._inbound_nodes) for la in every_layer] == nodes


@pytest.mark.parametrize("bn", sorted(BN_CLASSES))
def test_conv_statistics_over_batch_and_space(bn):
    bn = BN_CLASSES[bn]
    inputs = keras.Input((6, 5, 3))
    h = layers.Conv2D(4, 3, padding="same")(inputs)
    h = layers.ReLU()(bn()(h))
    h = layers.Conv2D(4, 3)(h)
    model = randomize_statistics(keras.Model(inputs, bn()(h)))
    x = data(n=9 * 6 * 5, features=3).reshape(9, 6, 5, 3)
    counts = recompute_statistics(model, x, batch_size=4)
    assert sorted(counts.values()) == [9 * 4 * 3, 9 * 6 * 5]
    assert_self_consistent(model, x)


@pytest.mark.parametrize("bn", sorted(BN_CLASSES))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_layer_gets_the_statistics_of_its_inputs(name, bn):
    model = randomize_statistics(MODELS[name](BN_CLASSES[bn]))
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(12, *model.inputs[0].shape[1:])) + 1).astype("float32")
    counts = recompute_statistics(model, x, batch_size=5)
    assert len(counts) == len(model_graph.batch_norm_layers(model))
    assert_self_consistent(model, x)


def test_nested_layers_are_named_by_their_models():
    model = MODELS["nested"]()
    x = np.ones((2, 6, 6, 3), "float32")
    names = sorted(recompute_statistics(model, x))
    assert names[1:] == [
        f"functional_block/{model.get_layer('functional_block').layers[2].name}",
        f"sequential_block/{model.get_layer('sequential_block').layers[1].name}",
    ]


def test_masked_positions_are_left_out():
    model = keras.Sequential(
        [keras.Input((6, 3)), layers.Masking(0.0), keras.layers.BatchNormalization()]
    )
    x = data(n=40 * 6, features=3).reshape(40, 6, 3)
    x[:, 4:] = 0.0
    x[::3, 2:] = 0.0
    counts = recompute_statistics(model, x, batch_size=16)
    kept = x[np.any(x != 0.0, axis=-1)].astype(np.float64)
    assert counts == {model.layers[-1].name: len(kept)}
    assert_statistics(
        statistics(model), {model.layers[-1].name: (kept.mean(0), kept.var(0))}
    )


# -------------------------------------------------------- layer conventions


def test_unbiased_variance_and_cumulative_counter():
    model = mlp(
        lambda **kw: kbn.BatchNormalization(
            unbiased_moving_variance=True, momentum=None, **kw
        )
    )
    x = data()
    recompute_statistics(model, x, batch_size=32)
    assert_statistics(statistics(model), mlp_statistics(model, x, ddof=1))
    for name in ("bn_a", "bn_b"):
        assert int(model.get_layer(name).num_batches_tracked.numpy()) == 4


@pytest.mark.parametrize("bn", sorted(BN_CLASSES))
def test_renorm_statistics_stay_consistent(bn):
    layer = BN_CLASSES[bn](renorm=True, epsilon=0.1)
    model = randomize_statistics(keras.Sequential([keras.Input((4,)), layer]))
    x = data(features=4)
    recompute_statistics(model, x)
    mean, var = x.astype(np.float64).mean(0), x.astype(np.float64).var(0)
    assert_statistics(statistics(model), {layer.name: (mean, var)})
    stddev = np.sqrt(var + 0.1)
    for name, want in [
        ("moving_stddev", stddev),
        ("renorm_stddev", stddev),
        ("renorm_mean", mean),
    ]:
        got = keras.ops.convert_to_numpy(getattr(layer, name))
        np.testing.assert_allclose(got, want, **TOL, err_msg=name)
    gamma, beta = (keras.ops.convert_to_numpy(w) for w in (layer.gamma, layer.beta))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x, training=False)),
        gamma * (x - mean) / stddev + beta,
        rtol=1e-4,
        atol=1e-4,
    )


# --------------------------------------------------------------------- data


def test_tf_data_and_tuples_give_the_array_result():
    x = data()
    y = np.zeros((100, 1), "float32")
    reference = mlp()
    recompute_statistics(reference, x, batch_size=16)
    inputs = [
        (x, y),
        (x, y, np.ones(100)),
        tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
        tf.data.Dataset.from_tensor_slices(x).batch(16),
        iter([(x[i : i + 16], y[i : i + 16]) for i in range(0, 100, 16)]),
    ]
    for source in inputs:
        model = mlp()
        recompute_statistics(model, source, batch_size=16)
        assert_statistics(statistics(model), statistics(reference))


def test_steps_caps_the_batches():
    x = data()
    model, reference = mlp(), mlp()
    counts = recompute_statistics(model, x, batch_size=10, steps=2)
    assert counts == {"bn_a": 20, "bn_b": 20}
    recompute_statistics(reference, x[:20])
    assert_statistics(statistics(model), statistics(reference))
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(10).repeat()
    counts = recompute_statistics(mlp(), dataset, steps=3)
    assert counts == {"bn_a": 30, "bn_b": 30}


def test_multi_input_model_takes_a_list_or_dict():
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    h = keras.layers.BatchNormalization()(layers.Concatenate()([a, b]))
    model = keras.Model([a, b], h)
    x = data(features=5)
    want = {model.layers[-1].name: (x.mean(0), x.var(0))}
    for source in ([x[:, :3], x[:, 3:]], {"a": x[:, :3], "b": x[:, 3:]}):
        recompute_statistics(model, source, batch_size=30)
        assert_statistics(statistics(model), want)


def test_statistics_are_restored_when_data_fails():
    class FailsOnSecondPass:
        passes = 0

        def __iter__(self):
            self.passes += 1
            if self.passes == 2:
                raise RuntimeError("disk gone")
            return iter([data(n=8)])

    model = mlp()
    before = statistics(model)
    with pytest.raises(RuntimeError, match="disk gone"):
        recompute_statistics(model, FailsOnSecondPass())
    assert_statistics(statistics(model), before, rtol=0, atol=0)


# --------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs", [dict(batch_size=0), dict(batch_size=2.5), dict(batch_size=True)]
)
def test_batch_size_must_be_a_positive_integer(kwargs):
    with pytest.raises(ValueError, match="batch_size"):
        recompute_statistics(mlp(), data(), **kwargs)


@pytest.mark.parametrize("steps", [0, -1, 1.0, "2"])
def test_steps_must_be_a_positive_integer(steps):
    with pytest.raises(ValueError, match="steps"):
        recompute_statistics(mlp(), data(), steps=steps)


def test_empty_data_is_refused():
    model = mlp()
    before = statistics(model)
    for empty in (data(n=0), tf.data.Dataset.from_tensor_slices(data()).take(0), []):
        with pytest.raises(ValueError, match="empty"):
            recompute_statistics(model, empty)
    assert_statistics(statistics(model), before, rtol=0, atol=0)


def test_models_it_cannot_handle_are_refused():
    no_bn = keras.Sequential([keras.Input((5,)), layers.Dense(2)])
    with pytest.raises(ValueError, match="has none"):
        recompute_statistics(no_bn, data())
    with pytest.raises(ValueError, match="subclassed"):
        recompute_statistics(subclassed_model(), data(features=4))
    shared = keras.layers.BatchNormalization(name="twice")
    inputs = keras.Input((5,))
    model = keras.Model(inputs, shared(layers.Dense(5)(shared(inputs))))
    with pytest.raises(ValueError, match="twice"):
        recompute_statistics(model, data())
    inputs = keras.Input((4,))
    hidden = keras.Model(inputs, subclassed_model()(inputs))
    with pytest.raises(ValueError, match="subclassed"):
        recompute_statistics(hidden, data(features=4))


# ------------------------------------------------------------ the arithmetic


def test_combine_moments_is_exact_for_any_split():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) * 5 + 1e4
    total = (0, np.zeros(3), np.zeros(3))
    for part in np.split(x, [1, 2, 20, 21, 50]):
        if len(part):
            total = combine_moments(
                total, (len(part), part.mean(0), ((part - part.mean(0)) ** 2).sum(0))
            )
    n, mean, m2 = total
    assert np.all(n == 50)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(m2 / n, x.var(0), rtol=1e-10)


def test_jax_backend_matches_float64_numpy():
    out = run_script(
        """
import keras, numpy as np
assert keras.backend.backend() == "jax"
import kbn
from kbn.precise_statistics import recompute_statistics
rng = np.random.default_rng(0)
x = (rng.normal(size=(50, 5)) * 3 + 2).astype("float32")
for bn in (keras.layers.BatchNormalization, kbn.BatchNormalization):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), bn(),
                              keras.layers.Dense(3), bn(epsilon=0.01)])
    dense_a, bn_a, dense_b, bn_b = model.layers
    bn_a.gamma.assign(rng.uniform(0.5, 2, 4).astype("float32"))
    bn_a.beta.assign(rng.normal(size=4).astype("float32"))
    recompute_statistics(model, x, batch_size=7)
    (w1, b1), (w2, b2) = dense_a.get_weights(), dense_b.get_weights()
    h = x.astype(np.float64) @ w1 + b1
    z = bn_a.get_weights()[0] * (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-3)
    z = z + bn_a.get_weights()[1]
    h2 = z @ w2 + b2
    for layer, h in ((bn_a, h), (bn_b, h2)):
        np.testing.assert_allclose(np.asarray(layer.moving_mean), h.mean(0),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(layer.moving_variance), h.var(0),
                                   rtol=1e-5, atol=1e-6)
print("jax ok")
""",
        env={"KERAS_BACKEND": "jax"},
    )
    assert "jax ok" in out
