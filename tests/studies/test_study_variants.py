"""Normalization variants (the registry and every built-in), the batch-noise
measurement against BN's theory, the batch-size study, and optimizer settings."""

import json
import math
import re

import keras
import numpy as np
import pytest
from study_helpers import build_model

import kbn
import studies
from studies.engine import instruments, optimizers, results
from studies.inputs import variants
from studies.science.spec import make_spec
from studies.surfaces import cli, options


def _kinds(model):
    return [type(layer).__name__ for layer in model.layers]


def test_layer_norm_group_norm_and_ghost_bn_take_bn_s_place():
    ln = build_model("mlp-relu", "layer-norm", (8, 8, 1), 10)
    assert _kinds(ln)[1:4] == ["Dense", "LayerNormalization", "Activation"]
    assert not ln.layers[1].use_bias
    gn = build_model("mlp-relu", "group-norm", (8, 8, 1), 10)
    norm = gn.layers[2]
    assert isinstance(norm, keras.layers.GroupNormalization)
    # 100 units: the most groups up to 32 that divide 100 and leave >= 16 values
    assert norm.groups == 5
    small = build_model("mlp-relu", "group-norm", (4,), 3)
    assert small.layers[2].groups == 5  # Dense(100) again: the input size is not it
    conv = build_model("cnn", "group-norm", (8, 8, 1), 10)
    assert {
        layer.groups for layer in conv.layers if "Group" in type(layer).__name__
    } == {32}
    ghost = build_model("mlp-relu", "ghost-bn", (8, 8, 1), 10, virtual_batch_size=6)
    norms = [
        layer for layer in ghost.layers if isinstance(layer, kbn.BatchNormalization)
    ]
    assert len(norms) == 6 and all(n.virtual_batch_size == 6 for n in norms)


def test_bn_after_goes_after_the_nonlinearity_and_keeps_the_bias():
    model = build_model("mlp-sigmoid", "bn-after", (8, 8, 1), 10)
    assert _kinds(model)[1:5] == ["Dense", "Activation", "BatchNormalization", "Dense"]
    assert model.layers[1].use_bias
    # the saved model loads: the study's own layers are registered
    conv = build_model("cnn", "group-norm", (8, 8, 1), 10)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(conv)
    )
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    restored.set_weights(conv.get_weights())
    np.testing.assert_allclose(restored(x), conv(x), atol=1e-6)


def test_a_registered_variant_runs_in_a_study(tmp_path):
    made = []

    def make(seed, settings):
        made.append(seed)
        return keras.layers.BatchNormalization(momentum=0.5)

    variants.register("bn-fast-ema", make, description="stock BN, momentum 0.5")
    try:
        summary = studies.run(
            "lr",
            out=str(tmp_path / "s"),
            variants=["none", "bn-fast-ema"],
            lrs=[0.1],
            seeds=1,
            epochs=1,
            train_size=120,
            batch_size=40,
            stream=open("/dev/null", "w"),
        )
    finally:
        variants._REGISTRY.pop("bn-fast-ema")
    assert summary["variants"]["bn-fast-ema"]["cells"] == 1
    assert len(set(made)) == 6  # one fresh, distinctly seeded layer per block
    for bad in ("", "a,b", "none"):
        with pytest.raises(ValueError, match="variant name"):
            variants.register(bad, make)
    with pytest.raises(ValueError, match="unknown variant"):
        studies.run("lr", out=str(tmp_path / "t"), variants=["bn-fast-ema"])


def _normalizer(layer, features=16):
    inputs = keras.Input((features,))
    return keras.Model(inputs, layer(inputs)), layer


@pytest.mark.parametrize("batch", [8, 32, 128])
def test_batch_noise_of_bn_follows_its_theory(batch):
    # Gaussian features: a probe's output moves by about
    # sqrt((1 + z^2 / 2) (M - 1) / M^2) (batch mean and std noise; the probe
    # itself is one of the M), z^2 averaging 1 over probes and features
    x = np.random.default_rng(1).normal(size=(2048, 16)).astype("float32")
    model, layer = _normalizer(kbn.BatchNormalization())
    measured = instruments.batch_noise(model, [layer], x, batch, seed=0)
    expected = math.sqrt(1.5 * (batch - 1) / batch**2)
    assert measured == pytest.approx(expected, rel=0.2)
    # the layer's state is as it was: the measurement does not train it
    np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(16))


def test_batch_noise_is_zero_for_layer_norm_and_flat_for_ghost_bn():
    x = np.random.default_rng(1).normal(size=(2048, 16)).astype("float32")
    model, layer = _normalizer(keras.layers.LayerNormalization())
    assert instruments.batch_noise(model, [layer], x, 32, seed=0) < 1e-5
    ghost, ghost_layer = _normalizer(kbn.BatchNormalization(virtual_batch_size=8))
    small = instruments.batch_noise(ghost, [ghost_layer], x, 8, seed=0)
    large = instruments.batch_noise(ghost, [ghost_layer], x, 64, seed=0)
    assert large == pytest.approx(small, rel=0.25)  # the ghost batch decides
    bn, bn_layer = _normalizer(kbn.BatchNormalization())
    assert instruments.batch_noise(bn, [bn_layer], x, 64, seed=0) < 0.6 * large
    assert math.isnan(instruments.batch_noise(bn, [], x, 64, seed=0))


def test_batch_size_study_end_to_end(tmp_path, monkeypatch):
    # fewer probes than the study's 8 x 16 (the theory test uses those): the
    # path, not the precision, is what this checks
    monkeypatch.setattr(instruments, "NOISE_PROBES", 4)
    monkeypatch.setattr(instruments, "NOISE_DRAWS", 8)
    out = tmp_path / "bs"
    argv = ["batch-size", "--dataset", "digits", "--train-size", "160",
            "--batch-sizes", "4,32", "--steps", "10", "--seeds", "1",
            "--variants", "none,keras,ghost-bn,layer-norm",
            "--virtual-batch-size", "4", "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    spec = studies.outputs.reporting.load_spec(str(out))
    assert spec.axis_names == ("variant", "batch_size", "seed")
    rows = results.rows(spec, str(out))
    assert len(rows) == 8
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["steps_run"] == 10 for r in ok)  # the same step budget at any batch
    noise = {(r["variant"], r["batch_size"]): r["batch_noise"] for r in ok}
    assert all(n is None or math.isnan(n) for (v, _), n in noise.items() if v == "none")
    assert all(n < 1e-4 for (v, _), n in noise.items() if v == "layer-norm")
    bn = [noise.get(("keras", b)) for b in (4, 32)]
    assert bn[0] > bn[1] > 0  # BN's noise grows as the batch shrinks
    summary = json.loads((out / "summary.json").read_text())
    keras_bn, ghost = summary["variants"]["keras"], summary["variants"]["ghost-bn"]
    assert keras_bn["batch_noise_slope"] < -0.3
    assert keras_bn["batch_noise_b4"] > keras_bn["batch_noise_b32"] > 0
    # Ghost BN's slope is fitted below its ghost batch (4) only: one size here
    assert ghost["batch_noise_slope"] is None
    assert summary["batch_noise_slope_sizes"]["ghost-bn"] == [4]
    assert ghost["batch_noise_b32"] == pytest.approx(ghost["batch_noise_b4"], rel=0.25)
    assert set(summary["batch_noise"]) == {"keras", "ghost-bn", "layer-norm"}
    # the study's default eval_statistics, both: the gap of the BN variants
    assert set(summary["recomputed_gap"]) == {"keras", "ghost-bn"}
    assert {r["statistics_recomputed"] for r in ok if r["variant"] == "none"} == {0}
    report = (out / "report.md").read_text()
    assert "Batch noise by batch size" in report
    assert "Fitted over every size except: ghost-bn over 4." in report
    assert "Moving against recomputed statistics" in report
    assert (out / "batch_noise.png").exists()
    assert (out / "accuracy_vs_batch_size.png").exists()


def test_weight_decay_shrinks_kernels_only():
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), kbn.BatchNormalization()]
    )
    settings = {
        "optimizer": "momentum",
        "lr": 0.5,
        "momentum": 0.0,
        "weight_decay": 0.1,
        "schedule": "constant",
    }
    optimizer = optimizers.make(settings, total_steps=10)
    optimizer.build(model.trainable_variables)
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    optimizer.apply(
        [keras.ops.zeros_like(v) for v in model.trainable_variables],
        model.trainable_variables,
    )
    for variable in model.trainable_variables:
        if variable.name == "kernel":
            np.testing.assert_allclose(
                variable.numpy(), before[variable.path] * (1 - 0.5 * 0.1), rtol=1e-6
            )
        else:  # bias, gamma, beta
            np.testing.assert_array_equal(variable.numpy(), before[variable.path])
    assert optimizer.momentum == 0.0
    assert optimizers.make({**settings, "momentum": None}, 10).momentum == 0.9


def test_warmup_cosine_schedule_matches_its_formula():
    settings = {
        "optimizer": "sgd",
        "lr": 0.2,
        "schedule": "warmup-cosine",
        "warmup_fraction": 0.1,
    }
    rate = optimizers.learning_rate(settings, total_steps=100)
    for step in (0, 5, 10, 40, 70, 100):
        if step <= 10:
            expected = 0.2 * step / 10
        else:
            expected = 0.2 * 0.5 * (1 + math.cos(math.pi * (step - 10) / 90))
        assert float(rate(step)) == pytest.approx(expected, abs=1e-6)
    assert optimizers.learning_rate({**settings, "schedule": "constant"}, 100) == 0.2


def test_the_preset_learning_rates_suit_the_optimizer():
    sgd = make_spec("lr")
    adam = make_spec("lr", optimizer="adam")
    assert adam.axes["lr"] == tuple(float(f"{v * 0.01:.3g}") for v in sgd.axes["lr"])
    heavy = make_spec("lr", optimizer="momentum", momentum=0.5)
    assert heavy.axes["lr"][0] == pytest.approx(sgd.axes["lr"][0] * 0.5)
    # plain SGD with momentum is the same optimizer: the same scaling
    same = make_spec("lr", optimizer="sgd", momentum=0.9)
    assert same.axes["lr"][0] == pytest.approx(sgd.axes["lr"][0] * 0.1)
    assert make_spec("init", optimizer="adam").fixed["lr"] == pytest.approx(0.001)
    # rates the user gives are used as given
    assert make_spec("lr", optimizer="adam", lrs=[0.1, 1.0]).axes["lr"] == (0.1, 1.0)


@pytest.mark.parametrize(
    "study, given, match",
    [
        ("lr", {"momentum": 0.9, "optimizer": "adam"}, "momentum applies to sgd"),
        ("lr", {"momentum": 1.0}, "momentum must be in [0, 1)"),
        ("lr", {"warmup_fraction": 1.0}, "warmup_fraction must be in [0, 1)"),
        ("lr", {"weight_decay": -1e-4}, "weight_decay must be >= 0"),
        ("lr", {"batch_sizes": [8, 16]}, "one fixed batch size"),
        ("batch-size", {"batch_size": 32}, "give batch_sizes, not batch_size"),
        ("lr", {"lr": 0.1}, "give lrs, not lr"),
        ("lr", {"batch_sizes": [8, 8.5]}, "takes integers"),
        ("lr", {"epochs": 2, "steps": 10}, "two budgets"),
        ("lr", {"schedule": "cosine"}, "schedule must be one of"),
        ("lr", {"virtual_batch_size": 0}, "virtual_batch_size must be >= 1"),
        ("lr", {"learning_rate": 0.1}, "unknown option(s) learning_rate"),
        ("lr", {"variants": ["bn", "ln"]}, "unknown variant ln"),
        ("nonsense", {}, "unknown study 'nonsense'"),
        ("lr", {"dataset": "mnist1d"}, "give the dataset as data=..."),
    ],
)
def test_bad_options_name_the_option(study, given, match, tmp_path):
    if "dataset" not in given:  # a spelling of the API's, not of the options
        with pytest.raises(options.OptionError, match=re.escape(match)):
            options.check(study, given, "api")
    with pytest.raises(ValueError, match=re.escape(match)):
        studies.run(study, out=str(tmp_path / "o"), **given)
    assert not (tmp_path / "o").exists()


def test_cli_names_options_as_flags(capsys, tmp_path):
    from test_study_cli import fails

    out = ["--out", str(tmp_path / "o")]
    fails(
        ["lr", "--optimizer", "adam", "--momentum", "0.9", *out],
        capsys,
        "--momentum applies to sgd",
    )
    fails(
        ["batch-size", "--batch-size", "32", *out],
        capsys,
        "give --batch-sizes, not --batch-size",
    )
    fails(["lr", "--batch-sizes", "8,x", *out], capsys, "comma-separated numbers")


def test_every_new_variant_trains_a_cell_on_the_cnn(tmp_path):
    summary = studies.run(
        "lr",
        out=str(tmp_path / "cnn"),
        model="cnn",
        variants=["layer-norm", "group-norm", "ghost-bn", "bn-after"],
        lrs=[0.1],
        seeds=1,
        epochs=1,
        train_size=80,
        batch_size=40,
        virtual_batch_size=8,
        stream=open("/dev/null", "w"),
    )
    for variant, numbers in summary["variants"].items():
        assert numbers["cells"] == 1 and numbers["errors"] == 0, variant
        assert math.isfinite(numbers["best_val_accuracy"])
