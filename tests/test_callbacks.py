"""kbn.callbacks against NumPy: percentiles, landscape numbers, no side effects."""

import copy

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator as ea

import kbn
from kbn.callbacks import ActivationPercentiles, LandscapeProbe

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 5)).astype("float32")
Y = (X[:, 0] + X[:, 1] > 0).astype("int32") + (X[:, 2] > 1).astype("int32")


def _percentile_model():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(6, activation="sigmoid", name="fused"),
            keras.layers.Dense(4, use_bias=False, name="linear"),
            kbn.BatchNormalization(name="bn"),
            keras.layers.Activation("tanh", name="act"),
            keras.layers.Dense(3, name="logits"),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _numpy_pre_activations(model, x, training):
    """The inputs of `fused`'s sigmoid and of `act`, in float64 NumPy."""
    w1, b1 = (np.float64(a) for a in model.get_layer("fused").get_weights())
    (w2,) = (np.float64(a) for a in model.get_layer("linear").get_weights())
    bn = model.get_layer("bn")
    gamma, beta, mean, var = (
        np.float64(keras.ops.convert_to_numpy(v))
        for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
    )
    first = x.astype(np.float64) @ w1 + b1
    z = (1 / (1 + np.exp(-first))) @ w2
    if training:
        mean, var = z.mean(0), z.var(0)
    second = (z - mean) / np.sqrt(var + bn.epsilon) * gamma + beta
    return first, second


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("unit", [None, 1])
def test_percentiles_equal_numpy_on_the_probe_batch(training, unit):
    model = _percentile_model()
    probe = ActivationPercentiles(
        percentiles=(5, 15, 50, 85, 99.5),
        every_n_steps=4,
        log_dir=None,
        data=(X[:40], Y[:40]),
        unit=unit,
        training=training,
    )
    model.fit(X, Y, batch_size=16, epochs=2, verbose=0, callbacks=[probe])
    assert probe.history["step"] == [0, 4, 8, 12]
    expected = dict(
        zip(
            ("fused", "act"),
            _numpy_pre_activations(model, X[:40], training),
            strict=True,
        )
    )
    for layer, values in expected.items():
        if unit is not None:
            values = values[:, unit]
        prefix = f"percentiles/{layer}" + ("" if unit is None else f"/unit_{unit}")
        for q in (5, 15, 50, 85, 99.5):
            got = probe.history[f"{prefix}/p{q:g}"][-1]
            np.testing.assert_allclose(got, np.percentile(values, q), atol=2e-5)
    # The linear layers and the BN layer are not followed by default.
    assert not any("linear" in tag or "/bn/" in tag for tag in probe.history)


def test_percentiles_follow_named_layers_and_outputs_of_other_layers():
    model = _percentile_model()
    probe = ActivationPercentiles(
        layers=["bn", model.get_layer("act")], every_n_steps=100, log_dir=None, data=X
    )
    model.fit(X, Y, batch_size=32, epochs=1, verbose=0, callbacks=[probe])
    _, second = _numpy_pre_activations(model, X, training=False)
    for layer in ("bn", "act"):  # BN's output is the input of act
        np.testing.assert_allclose(
            probe.history[f"percentiles/{layer}/p50"][-1],
            np.percentile(second, 50),
            atol=2e-5,
        )


def test_unit_indexes_the_pre_activation_of_a_fused_layer():
    model = _percentile_model()  # `fused` maps 5 inputs to 6 units
    probe = ActivationPercentiles(layers=["fused"], unit=5, log_dir=None, data=X)
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[probe])
    first, _ = _numpy_pre_activations(model, X, training=False)
    np.testing.assert_allclose(
        probe.history["percentiles/fused/unit_5/p50"][-1],
        np.percentile(first[:, 5], 50),
        atol=2e-5,
    )


def _probed_model(seed=5):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, use_bias=False),
            kbn.BatchNormalization(noise="covariate_shift", seed=seed),
            keras.layers.Activation("relu"),
            keras.layers.Dropout(0.2, seed=seed),
            keras.layers.Dense(3),
        ]
    )
    return model


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_probing_leaves_training_unchanged(optimizer, tmp_path):
    make = {
        "sgd": lambda: keras.optimizers.SGD(0.1),
        "momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
        "adam": lambda: keras.optimizers.Adam(0.01),
    }[optimizer]
    runs = []
    for probes in (
        [],
        [
            ActivationPercentiles(
                every_n_steps=2, log_dir=str(tmp_path), data=X[:32], training=True
            ),
            LandscapeProbe(
                every_n_steps=2, log_dir=str(tmp_path), data=(X, Y), batch_size=16
            ),
        ],
    ):
        model = _probed_model()
        model.compile(
            make(), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        model.fit(X, Y, batch_size=16, epochs=2, verbose=0, callbacks=probes)
        runs.append(
            [keras.ops.convert_to_numpy(v) for v in model.variables]
            + [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
        )
        if probes:
            assert len(probes[1].history["landscape/loss_range"]) == 7
    assert len(runs[0]) == len(runs[1])
    for without, with_probes in zip(*runs, strict=True):
        np.testing.assert_array_equal(without, with_probes)


def _softmax_regression(l2):
    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(l2)),
        ]
    )
    schedule = keras.optimizers.schedules.ExponentialDecay(0.8, 1, 0.9)
    model.compile(
        keras.optimizers.SGD(schedule, momentum=0.5),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _numpy_loss_and_grads(w, b, x, y, l2):
    logits = x @ w + b
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(len(y)), y])) + l2 * np.sum(w**2)
    d = p.copy()
    d[np.arange(len(y)), y] -= 1
    d /= len(y)
    return loss, [x.T @ d + 2 * l2 * w, d.sum(0)]


def test_landscape_numbers_equal_a_direct_computation():
    l2 = 0.01
    model = _softmax_regression(l2)
    multipliers = (0.5, 1.0, 3.0)
    probe = LandscapeProbe(
        every_n_steps=5, step_multipliers=multipliers, log_dir=None, data=(X, Y)
    )
    model.fit(X, Y, batch_size=32, epochs=2, verbose=0, callbacks=[probe])
    assert probe.history["step"] == [0, 5, 6]
    eta = 0.8 * 0.9**6  # the schedule at the final step
    assert probe.learning_rate() == pytest.approx(eta, rel=1e-6)
    w, b = (np.float64(a) for a in model.get_weights())
    x = X.astype(np.float64)
    loss, g = _numpy_loss_and_grads(w, b, x, Y, l2)
    g_norm = np.sqrt(sum(np.sum(a**2) for a in g))
    losses, changes = [], []
    for lam in multipliers:
        there, g2 = _numpy_loss_and_grads(
            w - lam * eta * g[0], b - lam * eta * g[1], x, Y, l2
        )
        losses.append(there)
        changes.append(
            np.sqrt(sum(np.sum((a - c) ** 2) for a, c in zip(g2, g, strict=True)))
        )
    last = {k: v[-1] for k, v in probe.history.items()}
    assert last["landscape/loss"] == pytest.approx(loss, rel=1e-5)
    assert last["landscape/grad_norm"] == pytest.approx(g_norm, rel=1e-4)
    assert last["landscape/loss_range"] == pytest.approx(
        max(losses) - min(losses), rel=1e-3, abs=1e-6
    )
    assert last["landscape/max_grad_change"] == pytest.approx(max(changes), rel=1e-3)
    beta = max(
        c / (lam * eta * g_norm) for c, lam in zip(changes, multipliers, strict=True)
    )
    assert last["landscape/beta_smoothness"] == pytest.approx(beta, rel=1e-3)


def test_landscape_probe_draws_seeded_batches():
    make = lambda: LandscapeProbe(  # noqa: E731
        every_n_steps=1, log_dir=None, data=(X, Y), batch_size=8, seed=4
    )
    first, second = make(), make()
    for probe in (first, second):
        model = _softmax_regression(0.0)
        model.fit(X, Y, batch_size=96, epochs=1, verbose=0, callbacks=[probe])
    assert first.history == second.history
    assert first.history["landscape/loss"][0] != pytest.approx(
        first.history["landscape/loss"][1], rel=1e-9
    )  # two different batches of 8


def test_steps_follow_steps_per_execution():
    model = _softmax_regression(0.0)
    model.compile(
        keras.optimizers.SGD(0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=4,
    )
    probe = LandscapeProbe(every_n_steps=3, log_dir=None, data=(X, Y))
    x = np.concatenate([X] * 2)[:160]
    y = np.concatenate([Y] * 2)[:160]
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[probe])
    # 10 steps an epoch run as 4 + 4 + 2: readings when a multiple of 3 is
    # crossed, at the step actually reached, and at the end.
    assert probe.history["step"] == [0, 4, 8, 10, 14, 18, 20]


def test_event_files_hold_the_tags(tmp_path):
    model = _percentile_model()
    probes = [
        ActivationPercentiles(every_n_steps=3, log_dir=str(tmp_path), data=X[:32]),
        LandscapeProbe(every_n_steps=3, log_dir=str(tmp_path), data=(X, Y)),
    ]
    model.fit(X, Y, batch_size=32, epochs=2, verbose=0, callbacks=probes)
    acc = ea.EventAccumulator(str(tmp_path / "train"), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    wanted = {
        "percentiles/fused/p15",
        "percentiles/act/p85",
        "percentiles/fused/values",
        "landscape/loss_range",
        "landscape/max_grad_change",
        "landscape/beta_smoothness",
    }
    assert wanted <= tags
    steps = [e.step for e in acc.Tensors("landscape/loss_range")]
    assert steps == probes[1].history["step"] == [0, 3, 6]
    assert acc.SummaryMetadata("percentiles/fused/values").plugin_data.plugin_name == (
        "histograms"
    )


def test_callbacks_survive_deep_copy(tmp_path):
    templates = [
        ActivationPercentiles(every_n_steps=2, log_dir=str(tmp_path), data=X[:16]),
        LandscapeProbe(every_n_steps=2, log_dir=str(tmp_path), data=(X, Y)),
    ]
    for _ in range(2):  # as Keras Tuner does, one copy per execution
        copies = copy.deepcopy(templates)
        model = _percentile_model()
        model.fit(X, Y, batch_size=48, epochs=2, verbose=0, callbacks=copies)
        assert all(c.history["step"] == [0, 2, 4] for c in copies)
        again = copy.deepcopy(copies)  # a used callback copies too
        assert all(c.model is None and c._writer is None for c in again)
    assert all(t.history == {"step": []} and t.model is None for t in templates)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: ActivationPercentiles(percentiles=(), data=X), "percentiles"),
        (lambda: ActivationPercentiles(percentiles=(15, 101), data=X), "percentiles"),
        (lambda: ActivationPercentiles(percentiles=(-1,), data=X), "percentiles"),
        (lambda: ActivationPercentiles(percentiles="abc", data=X), "percentiles"),
        (lambda: ActivationPercentiles(every_n_steps=0, data=X), "every_n_steps"),
        (lambda: ActivationPercentiles(every_n_steps=2.5, data=X), "every_n_steps"),
        (lambda: ActivationPercentiles(every_n_steps=True, data=X), "every_n_steps"),
        (lambda: ActivationPercentiles(), "data"),
        (lambda: ActivationPercentiles(data=np.zeros((0, 5))), "data"),
        (lambda: ActivationPercentiles(data=X, unit=-1), "unit"),
        (lambda: ActivationPercentiles(data=X, layers=[]), "layers"),
        (lambda: ActivationPercentiles(data=X, log_dir=""), "log_dir"),
        (lambda: LandscapeProbe(step_multipliers=(), data=(X, Y)), "step_multipliers"),
        (
            lambda: LandscapeProbe(step_multipliers=(0,), data=(X, Y)),
            "step_multipliers",
        ),
        (
            lambda: LandscapeProbe(step_multipliers=(1, -2), data=(X, Y)),
            "step_multipliers",
        ),
        (lambda: LandscapeProbe(every_n_steps=0, data=(X, Y)), "every_n_steps"),
        (lambda: LandscapeProbe(), "data"),
        (lambda: LandscapeProbe(data=X), "data"),
        (lambda: LandscapeProbe(data=(X, Y), batch_size=0), "batch_size"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(layers=["nope"]), "not a layer"),
        (dict(unit=9), "out of range"),
    ],
)
def test_layers_and_unit_are_checked_against_the_model(kwargs, message):
    probe = ActivationPercentiles(data=X, log_dir=None, **kwargs)
    model = _percentile_model()
    weights = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[probe])
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)  # nothing trained
