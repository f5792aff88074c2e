"""Divergence and errors are results: recorded, finite, and the study goes on."""

import math

import keras
import numpy as np
import pytest
from study_helpers import build_model, run, tiny_spec

from studies.engine import callbacks, hypermodel, results
from studies.inputs import data, models
from studies.science.spec import make_spec


def test_divergence_monitor_stops_on_nan_and_on_threshold():
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    for y, threshold in (
        (np.full((64, 1), np.nan, "float32"), 1e3),
        (np.full((64, 1), 1e3, "float32"), 10.0),
    ):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        monitor = callbacks.DivergenceMonitor(threshold)
        history = model.fit(
            x, y, batch_size=8, epochs=5, verbose=0, callbacks=[monitor]
        )
        assert monitor.diverged
        assert len(history.history["loss"]) == 1  # stopped in the first epoch


def test_diverged_cells_are_recorded_and_do_not_stop_the_study(tmp_path):
    # plain ReLU MLP at LR 1e4 diverges for every seed; more than Keras Tuner's
    # three consecutive failures, yet every cell is recorded with a finite score
    spec = tiny_spec("lr", model="mlp-relu", variants=["none"], lrs=[1e3, 1e4], seeds=2)
    summary, text = run(spec, tmp_path)
    table = results.rows(spec, tmp_path)
    assert len(table) == 4 and all(r["diverged"] == 1 for r in table)
    assert all(r["status"] == "diverged" for r in table)
    chance = summary["chance"]
    assert all(r["final_val_accuracy"] == pytest.approx(chance) for r in table)
    assert all(r["epochs_run"] == 1 for r in table)
    assert summary["variants"]["none"]["diverged_fraction"] == 1.0
    assert summary["variants"]["none"]["max_stable_lr"] is None
    assert "diverged@epoch 1" in text


def test_errors_are_recorded_with_their_message(tmp_path, monkeypatch):
    original = hypermodel.CellHyperModel.build_cell

    def build(self, s):
        if s["variant"] == "bn":
            raise RuntimeError("simulated out of memory")
        return original(self, s)

    # a group with a failing member runs its cells one at a time
    monkeypatch.setattr(hypermodel.CellHyperModel, "build_cell", build)
    spec = tiny_spec("lr")
    summary, text = run(spec, tmp_path)
    table = results.rows(spec, tmp_path)
    errors = [r for r in table if r["variant"] == "bn"]
    assert len(table) == 4 and len(errors) == 2
    assert all(r["status"] == "error" for r in errors)
    assert all("simulated out of memory" in r["message"] for r in errors)
    assert all(math.isfinite(r["final_val_accuracy"]) for r in table)
    assert summary["variants"]["bn"]["errors"] == 2
    assert summary["variants"]["none"]["errors"] == 0
    assert "ERROR" in text


def test_outcome_of_a_normal_history():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2] * 5, "int32")  # majority: 40%
    x = np.zeros((len(y), 4), "float32")
    dataset = data.Dataset("toy", x, y, x, y, x, y)
    hm = hypermodel.CellHyperModel(make_spec("lr"), dataset, models.mlp_relu)
    history = {
        "loss": [2.0, 1.0],
        "accuracy": [0.5, 0.7],
        "val_loss": [1.5, 1.2],
        "val_accuracy": [0.6, 0.55],
    }
    outcome = hm.outcome(history, diverged=False)
    assert outcome == {
        "score": 0.55,
        "final_val_accuracy": 0.55,
        "best_val_accuracy": 0.6,
        "final_val_loss": 1.2,
        "best_val_loss": 1.2,
        "final_train_loss": 1.0,
        "final_train_accuracy": 0.7,
        "diverged": 0,
        "epochs_run": 2,
    }
    nan_history = dict(history, val_loss=[1.5, math.nan])
    assert hm.outcome(nan_history, diverged=False)["diverged"] == 1
    assert hm.outcome(nan_history, diverged=False)["score"] == 0.4


def test_init_scale_multiplies_the_weights_std():
    for family in ("glorot_uniform", "he_normal", "lecun_normal", "random_normal"):
        base = np.std(models.initializer(family, 1.0, seed=3)((400, 300)))
        scaled = np.std(models.initializer(family, 10.0, seed=3)((400, 300)))
        assert scaled / base == pytest.approx(10.0, rel=1e-4)


@pytest.mark.parametrize("variant", ["none", "keras", "bn", "bn-covariate-shift"])
def test_models_put_bn_before_the_nonlinearity_without_bias(variant):
    model = build_model("mlp-sigmoid", variant, (8, 8, 1), 10)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) == 4
    norms = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(norms) == (0 if variant == "none" else 3)
    assert all(d.use_bias == (variant == "none") for d in dense[:3])
    kinds = [type(layer).__name__ for layer in model.layers]
    if variant != "none":
        assert kinds[1:5] == ["Dense", "BatchNormalization", "Activation", "Dense"]
    if variant == "bn-covariate-shift":
        assert norms[0].noise is not None


def test_cnn_takes_images_and_sequences_but_not_tabular_data():
    image = build_model("cnn", "bn", (8, 8, 1), 10)
    sequence = build_model("cnn", "bn", (40, 1), 10)
    assert image.output_shape == sequence.output_shape == (None, 10)
    with pytest.raises(models.ModelError, match="cnn"):
        models.check("cnn", (32,))
