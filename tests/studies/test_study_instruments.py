"""The instrumented studies: covariate-shift, landscape, and --instruments."""

import json
import math

import pytest
from study_helpers import TINY_ARGS as TINY
from tensorboard.backend.event_processing import event_accumulator as ea

from studies.engine import records
from studies.science import analysis, spec
from studies.surfaces import cli

PNG = b"\x89PNG\r\n\x1a\n"
# one rate: no tuning phase (the covariate-shift test tunes, on two rates)
FAST = ["--epochs", "2", "--probe-every", "2", "--lrs", "0.3"]


def _tags(folder):
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    return set(acc.Tags()["tensors"])


def _run(study, out, *options):
    assert cli.main([study, *TINY, *FAST, *options, "--out", str(out)]) == 0
    return json.loads((out / "summary.json").read_text())


def _rebuilds_identically(out, summary):
    text = (out / "report.md").read_text()
    (out / "summary.json").unlink()
    (out / "report.md").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text()) == summary
    assert (out / "report.md").read_text() == text
    return text


def test_covariate_shift_study(tmp_path):
    out = tmp_path / "cs"
    summary = _run(
        "covariate-shift", out, "--seeds", "2", "--lrs", "0.1,1", "--tune-seeds", "1"
    )
    assert summary["study"] == "covariate-shift"
    # the tuning cells ran without the instrument, the grid's cells with it
    found = records.read_all(str(out))
    assert not found["phase=tune,variant=bn,lr=1.0,seed=0"].get("curves")
    assert summary["tuned_lr"]["bn"] in (0.1, 1.0)
    assert list(summary["variants"]) == ["none", "bn"]
    for numbers in summary["variants"].values():
        assert 0 <= numbers["test_accuracy"] <= 1
        assert numbers["percentile_drift"] >= 0
    record = records.read_all(str(out))["variant=none,seed=1"]
    curve = record["curves"]["percentiles"]
    assert curve["layer"] == "sigmoid_3"  # the last hidden layer's sigmoid
    assert curve["step"] == [0, 2, 4, 6] and record["curves"]["steps_per_epoch"] == 3
    # drift: mean |change| per 100 steps over the readings after the first
    # epoch (3 steps): steps 4 and 6, 2 steps apart
    after = [curve[p][2:] for p in ("p15", "p50", "p85")]
    by_hand = [abs(s[i + 1] - s[i]) for s in after for i in range(len(s) - 1)]
    assert analysis.percentile_drift(curve, 3) == pytest.approx(
        sum(by_hand) / len(by_hand) * 100 / 2
    )
    assert (out / "covariate_shift.png").read_bytes()[:8] == PNG
    tags = _tags(out / "tensorboard" / "variant=bn,seed=0" / "train")
    assert {
        "percentiles/sigmoid_3/unit_0/p15",
        "percentiles/sigmoid_1/unit_0/p85",
        "steps/test_accuracy",
        "epoch_loss",
    } <= tags
    text = _rebuilds_identically(out, summary)
    assert "Percentile drift" in text and "percentile drift, no BN / BN" in text


def test_landscape_study(tmp_path):
    out = tmp_path / "landscape"
    summary = _run("landscape", out, "--train-size", "80")
    assert summary["study"] == "landscape"
    assert list(summary["variants"]) == ["none", "bn", "noisy-bn"]
    for numbers in summary["variants"].values():
        assert 0 <= numbers["final_train_accuracy"] <= 1
        for key in ("mean_loss_range", "mean_grad_change", "max_beta_smoothness"):
            assert math.isfinite(numbers[key]) and numbers[key] >= 0
    for image in ("training_accuracy.png", "landscape.png"):
        assert (out / image).read_bytes()[:8] == PNG
    tags = _tags(out / "tensorboard" / "variant=noisy-bn,seed=0" / "train")
    assert {"landscape/loss_range", "landscape/beta_smoothness"} <= tags
    assert "steps/train_accuracy" in tags
    text = _rebuilds_identically(out, summary)
    assert "mean gradient change, no BN / BN" in text
    assert "max beta-smoothness is the largest" in text


def test_instruments_option_adds_callbacks_to_any_study(tmp_path):
    out = tmp_path / "lr"
    options = ["--lrs", "0.1,1", "--variants", "bn"]
    summary = _run("lr", out, *options, "--instruments", "landscape,percentiles")
    assert "mean_loss_range" in summary["variants"]["bn"]
    assert "percentile_drift" in summary["variants"]["bn"]
    curves = records.read_all(str(out))["variant=bn,lr=1.0,seed=0"]["curves"]
    assert set(curves) == {"accuracy", "percentiles", "landscape", "steps_per_epoch"}
    tags = _tags(out / "tensorboard" / "variant=bn,lr=1.0,seed=0" / "train")
    assert {"landscape/loss_range", "percentiles/relu_2/unit_0/p50"} <= tags
    assert (out / "accuracy_vs_lr.png").exists()


def test_studies_add_the_instruments_they_need():
    made = spec.make_spec("covariate-shift", instruments=["landscape"])
    assert made.fixed["instruments"] == ["percentiles", "landscape"]
    assert spec.make_spec("landscape").fixed["instruments"] == ["landscape"]
    assert spec.make_spec("lr").fixed["instruments"] == []
    assert spec.make_spec("landscape").fixed["model"] == "mlp-relu"


@pytest.mark.parametrize(
    "options, message",
    [
        (["--instruments", "percentiles,gauges"], "unknown instrument gauges"),
        (["--instruments", ""], "--instruments is empty"),
        (["--probe-every", "0"], "--probe-every must be >= 1"),
        (["--tune-seeds", "0"], "--tune-seeds must be >= 1"),
    ],
)
def test_bad_instrument_options_exit_2(options, message, tmp_path, capsys):
    out = tmp_path / "bad"
    assert cli.main(["landscape", *TINY, *options, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_percentile_drift_and_instrument_summary_by_hand():
    curve = {
        "layer": "sigmoid_3",
        "step": [0, 5, 10, 15],
        "p15": [0.0, 1.0, 1.5, 1.0],
        "p50": [0.0, 2.0, 2.0, None],  # a non-finite reading
        "p85": [9.0, 3.0, 4.0, 6.0],
    }
    # after the first epoch (5 steps): changes 0.5, 0.5 | 0, nan | 1, 2,
    # each over 5 steps, as changes per 100 steps (x 20)
    assert analysis.percentile_drift(curve, 5) == pytest.approx(
        (0.5 + 0.5 + 1 + 2 + 0) / 5 * 20
    )
    landscape = {
        "step": [0, 10],
        "loss_range": [1.0, 3.0],
        "max_grad_change": [2.0, None],
        "beta_smoothness": [4.0, 7.0],
    }
    rows = [
        {
            "variant": "bn",
            "seed": seed,
            "diverged": 0,
            "final_val_accuracy": acc,
            "final_test_accuracy": acc,
            "curves": {
                "steps_per_epoch": 5,
                "percentiles": curve,
                "landscape": landscape,
                "accuracy": {
                    "step": [0, 10],
                    "train": [0.1, train],
                    "test": [0.1, acc],
                },
            },
        }
        for seed, (acc, train) in enumerate(((0.8, 0.9), (0.6, 0.7)))
    ]
    axes = {"variant": ("bn",), "seed": (0, 1)}
    summary = analysis.summarize(
        spec.StudySpec("landscape", axes, {}), rows, 0.1, metrics=("train_accuracy",)
    )
    numbers = summary["variants"]["bn"]
    assert {k: numbers[k] for k in _INSTRUMENT_NUMBERS} == pytest.approx(
        {
            "percentile_drift": 16.0,
            "final_train_accuracy": 0.8,
            "mean_loss_range": 2.0,
            "mean_grad_change": 2.0,
            "max_beta_smoothness": 7.0,
            "test_accuracy": 0.7,
        }
    )
    # per-seed values 0.9 and 0.7: two seeds are too few for an interval
    entry = numbers["intervals"]["final_train_accuracy"]
    assert entry["n"] == 2 and entry["low"] is None and "reason" in entry
    steps, means = analysis.mean_curve(rows, "accuracy", "test")
    assert list(steps) == [0, 10] and means == pytest.approx([0.1, 0.7])


def test_percentile_drift_is_per_100_steps_whatever_the_probe_interval():
    # the same steady drift (0.03 per step on p15, -0.01 on p85), read every
    # 10 and every 20 steps, with a last reading off the grid (step 205);
    # the old mean change between readings gave 0.19 and 0.37 (about x2)
    def curve(every):
        steps = [*range(0, 201, every), 205]
        return {
            "step": steps,
            "p15": [0.03 * s for s in steps],
            "p85": [5.0 - 0.01 * s for s in steps],
        }

    fine, coarse = (analysis.percentile_drift(curve(e), 20) for e in (10, 20))
    assert fine == pytest.approx(coarse) == pytest.approx((3.0 + 1.0) / 2)


def test_instrument_numbers_come_from_stable_cells_only():
    # a diverged cell's partial curves (the explosion in its last readings)
    # stayed in the means before
    def cell(seed, diverged, value):
        return {
            "variant": "bn",
            "seed": seed,
            "diverged": diverged,
            "status": "diverged" if diverged else "ok",
            "final_val_accuracy": 0.1 if diverged else 0.9,
            "final_test_accuracy": 0.1 if diverged else 0.9,
            "curves": {
                "steps_per_epoch": 10,
                "percentiles": {"step": [10, 20], "p50": [0.0, value]},
                "landscape": {
                    "step": [0, 10],
                    "loss_range": [value, value],
                    "max_grad_change": [value, value],
                    "beta_smoothness": [value, value],
                },
            },
        }

    rows = [cell(0, 0, 1.0), cell(0, 1, 1e6), cell(1, 0, 3.0), cell(1, 1, 1e6)]
    axes = {"variant": ("bn",), "init": ("a", "b"), "seed": (0, 1)}
    for r, init in zip(rows, "abab", strict=True):
        r["init"] = init
    summary = analysis.summarize(spec.StudySpec("landscape", axes, {}), rows, 0.1)
    numbers = summary["variants"]["bn"]
    assert numbers["mean_loss_range"] == pytest.approx(2.0)
    assert numbers["mean_grad_change"] == pytest.approx(2.0)
    assert numbers["max_beta_smoothness"] == pytest.approx(2.0)
    assert numbers["percentile_drift"] == pytest.approx(20.0)  # 1 and 3 per 10


_INSTRUMENT_NUMBERS = (
    "percentile_drift",
    "final_train_accuracy",
    "mean_loss_range",
    "mean_grad_change",
    "max_beta_smoothness",
    "test_accuracy",
)


def test_records_keep_non_finite_readings_inside_curves(tmp_path):
    cell = {"variant": "none", "seed": 0}
    curves = {"landscape": {"step": [0, 10], "loss_range": [float("nan"), 2.0]}}
    records.write(str(tmp_path), cell, {"score": float("inf"), "curves": curves})
    record = records.read_all(str(tmp_path))["variant=none,seed=0"]
    assert record["score"] == math.inf
    loss_range = record["curves"]["landscape"]["loss_range"]
    assert math.isnan(loss_range[0]) and loss_range[1] == 2.0
    assert record["curves"]["landscape"]["step"] == [0, 10]
