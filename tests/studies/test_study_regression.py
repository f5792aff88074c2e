"""Regression end to end: float targets mean MSE, scored by R² against a float64
reference, divergence judged relative to the first batch's loss."""

import json
import math

import keras
import numpy as np
import pytest
from study_helpers import TINY_ARGS

import studies
from studies.engine import callbacks, hypermodel, results
from studies.inputs import data
from studies.science.spec import make_spec
from studies.surfaces import cli


def targets(n=400, outputs=2, scale=3.0, seed=0):
    """A smooth two-target function of 6 features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = np.stack([np.sin(x[:, 0]) + x[:, 1] * x[:, 2], x[:, 3] ** 2], axis=1)
    y = (scale * y[:, :outputs] + 0.05 * rng.normal(size=(n, outputs))).astype(
        "float32"
    )
    return x[: n * 4 // 5], y[: n * 4 // 5], x[n * 4 // 5 :], y[n * 4 // 5 :]


def test_float_targets_are_a_regression_task():
    dataset = data.load(targets(), name="toy")
    assert dataset.task == "regression"
    assert dataset.outputs == 2 and dataset.y_train.dtype == np.float32
    assert dataset.chance == dataset.test_chance == 0.0
    # the denominator of R²: MSE of the training targets' mean, float64 by hand
    mean = dataset.y_train.astype("float64").mean(axis=0)
    expected = np.mean((dataset.y_val.astype("float64") - mean) ** 2)
    assert dataset.baseline_loss("val") == pytest.approx(expected, rel=1e-6)
    assert "regression, 2 target(s)" in dataset.describe()
    # a 1-D target is one target
    one = data.load(targets(outputs=1), name="toy")
    assert one.outputs == 1 and one.y_train.shape[1:] == (1,)


def test_r2_of_a_cell_matches_a_float64_reference():
    dataset = data.load(targets(), name="toy")
    spec = make_spec("lr", lrs=[0.01], model="mlp-relu", task="regression")
    hm = hypermodel.CellHyperModel(
        spec, dataset, studies.inputs.models.BUILDERS["mlp-relu"]
    )
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
    predictions = model(dataset.x_val).numpy().astype("float64")
    mse = np.mean((predictions - dataset.y_val) ** 2)
    baseline = np.mean((dataset.y_val - dataset.y_train.mean(axis=0)) ** 2)
    assert hm.scorer(model, dataset.x_val, dataset.y_val, "val") == pytest.approx(
        1 - mse / baseline, rel=1e-5
    )


def test_divergence_is_relative_to_the_first_batch_loss():
    # targets around 1e3: a first loss near 1e6 is no divergence for a
    # regression, though it is far above the absolute threshold of 1e3
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = np.full((64, 1), 1e3, "float32")  # targets around 1e3
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e-4), "mse")
    calm = callbacks.DivergenceMonitor(1e3, 8, 64, relative=True)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[calm])
    assert not calm.diverged and calm.initial_loss > 1e5
    absolute = callbacks.DivergenceMonitor(1e3, 8, 64)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[absolute])
    assert absolute.diverged
    # a loss that grows 1000x past the first batch's is divergence
    model.compile(keras.optimizers.SGD(10.0), "mse")
    wild = callbacks.DivergenceMonitor(1e3, 8, 64, relative=True)
    model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[wild])
    assert wild.diverged


def test_regression_study_end_to_end(tmp_path):
    np.savez(
        tmp_path / "reg.npz",
        **dict(zip(("x_train", "y_train", "x_test", "y_test"), targets(), strict=True)),
    )
    out = tmp_path / "study"
    argv = [
        "lr",
        *TINY_ARGS,
        "--dataset",
        str(tmp_path / "reg.npz"),
        "--train-size",
        "200",
        "--epochs",
        "8",
        "--seeds",
        "2",
        "--lrs",
        "0.01,0.1,100",
        "--variants",
        "none,bn",
        "--feature-scaling",
        "standardize",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "regression" and summary["metric"] == "r2"
    none, bn = summary["variants"]["none"], summary["variants"]["bn"]
    assert none["trained"] and 0.05 < none["best_val_r2"] <= 1.0
    assert math.isfinite(bn["best_val_r2"]) and bn["best_val_r2"] <= 1.0
    assert "best_val_accuracy" not in bn and "intervals" in bn
    entry = none["intervals"]["best_val_r2"]  # two seeds: no bounds, and why
    assert entry["n"] == 2 and entry["low"] is None and entry["reason"]
    spec = studies.outputs.reporting.load_spec(str(out))
    rows = results.rows(spec, str(out))
    for row in rows:
        if row["status"] == "ok":
            # R² and the loss are one number in two units
            baseline = json.loads((out / "dataset.json").read_text())[
                "baseline_val_loss"
            ]
            assert math.isfinite(row["final_val_loss"])
            assert row["final_test_loss"] > 0
            assert row["final_val_r2"] == pytest.approx(
                1 - row["final_val_loss"] / baseline, rel=1e-3, abs=1e-4
            )
    # SGD at LR 100 diverges, and counts as R² 0
    wild = [r for r in rows if r["lr"] == 100]
    assert len(wild) == 4 and all(r["status"] == "diverged" for r in wild)
    assert all(r["final_val_r2"] == 0 for r in wild)
    report = (out / "report.md").read_text()
    assert "R²" in report and "constant predictor" in report
    assert (out / "r2_vs_lr.png").exists()
    dataset = json.loads((out / "dataset.json").read_text())
    assert "standardized per feature" in dataset["description"]


def test_one_hot_targets_are_class_labels_and_task_overrides():
    x = np.zeros((40, 3), "float32")
    labels = np.arange(40) % 4
    one_hot = np.eye(4, dtype="float32")[labels]
    dataset = data.load((x, one_hot, x[:8], one_hot[:8]), name="toy")
    assert dataset.task == "classification" and dataset.num_classes == 4
    assert "one-hot targets read as class labels" in dataset.describe()
    forced = data.load((x, one_hot, x[:8], one_hot[:8]), task="regression")
    assert forced.task == "regression" and forced.outputs == 4
    # integer-valued floats can be labels when asked
    floats = data.load(
        (x, labels.astype("float32"), x[:8], labels[:8] * 1.0), task="classification"
    )
    assert floats.y_train.dtype == np.int32


def test_r2_below_the_constant_predictor_counts_as_it():
    from studies.science import outcomes

    bad = {"final_val_r2": -20.0, "status": "ok", "diverged": 0}
    good = {"final_val_r2": 0.7, "status": "ok", "diverged": 0}
    assert outcomes.score(bad, 0.0, "final_val_r2") == 0.0
    assert outcomes.score(good, 0.0, "final_val_r2") == 0.7
    # accuracy below chance is kept: it is bounded and says something
    below = {"final_val_accuracy": 0.05, "status": "ok", "diverged": 0}
    assert outcomes.score(below, 0.1, "final_val_accuracy") == 0.05


def test_targets_are_standardized_with_training_statistics_unless_asked_not_to():
    raw = targets(scale=50.0)
    scaled = data.load(raw, name="toy")
    np.testing.assert_allclose(scaled.y_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.y_train.std(axis=0), 1, atol=1e-5)
    assert "targets standardized" in scaled.describe()
    given = data.load(raw, name="toy", target_scaling="none")
    assert "targets as given" in given.describe()
    # validation and test use the training rows' statistics, not their own
    mean, std = given.y_train.mean(axis=0), given.y_train.std(axis=0)
    np.testing.assert_allclose(scaled.y_test, (given.y_test - mean) / std, rtol=1e-4)
    # R² does not depend on the units: the same predictions score the same
    prediction = given.y_test * 0.5 + mean * 0.5
    r2_given = 1 - np.mean((prediction - given.y_test) ** 2) / given.baseline_loss(
        "test"
    )
    r2_scaled = 1 - np.mean(
        ((prediction - mean) / std - scaled.y_test) ** 2
    ) / scaled.baseline_loss("test")
    assert r2_scaled == pytest.approx(r2_given, rel=1e-4)
