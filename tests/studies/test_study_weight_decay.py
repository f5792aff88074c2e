"""The weight-decay study: the effective-step instrument against its formulas
on a tiny model's kernels, the summary's numbers on hand-made curves, bad
`--weight-decays` refused, and the study end to end at tiny size."""

import json
import math

import keras
import numpy as np
import pytest
from study_helpers import TINY_ARGS

import studies
from studies.engine import instruments, weight_norms
from studies.science import weight_decay
from studies.surfaces import cli


def angle(a, b):
    a, b = a.ravel().astype(float), b.ravel().astype(float)
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return math.acos(min(1.0, max(-1.0, cos)))


def test_the_readings_are_the_formulas():
    w = np.array([[3.0, 0.0], [0.0, 4.0]])  # ||W|| = 5
    turned = np.array([[3.0, 1.0], [0.0, 4.0]])
    found = weight_norms.readings({"d": turned}, 0.5, {"d": w}, {"d": w}, 4)
    assert found["d/weight_norm"] == pytest.approx(math.sqrt(26))
    assert found["d/effective_lr"] == pytest.approx(0.5 / 26)
    assert found["d/angular_update"] == pytest.approx(angle(w, turned))
    assert found["d/angle_per_step"] == pytest.approx(angle(w, turned) / 4)
    # no kernel before the step (step 0): no angle; a zero kernel: no angle
    first = weight_norms.readings({"d": w}, 0.5)
    assert math.isnan(first["d/angular_update"])
    assert math.isnan(first["d/angle_per_step"])
    assert math.isnan(weight_norms.angle(np.zeros(3), np.ones(3)))
    assert weight_norms.angle(w, 2 * w) == pytest.approx(0.0, abs=1e-7)


class KernelRecorder(keras.callbacks.Callback):
    """Every hidden kernel after every step (index 0: before training)."""

    def __init__(self):
        super().__init__()
        self.kernels = []

    def _read(self):
        layers = weight_norms.hidden_kernel_layers(self.model)
        return {layer.name: np.array(layer.kernel.numpy()) for layer in layers}

    def on_train_begin(self, logs=None):
        self.kernels.append(self._read())

    def on_train_batch_end(self, batch, logs=None):
        self.kernels.append(self._read())


def tiny_bn_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, use_bias=False, name="d1"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(8, use_bias=False, name="d2"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(3, name="out"),
        ]
    )


def test_the_instrument_reads_the_hidden_kernels_by_its_formulas():
    model = tiny_bn_model()
    lr, every = 0.5, 3
    model.compile(keras.optimizers.SGD(lr, weight_decay=0.01), "mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)), rng.normal(size=(64, 3))
    probe, recorder = weight_norms.EffectiveStep(every, None), KernelRecorder()
    # 8 steps: readings at 0, 3, 6 and the final step 8 (off the interval)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[recorder, probe])
    assert probe.history["step"] == [0, 3, 6, 8]
    assert probe.layer_names == ["d1", "d2"]  # the output layer is left out
    kernels = recorder.kernels
    history = probe.history
    for layer in ("d1", "d2"):
        tag = f"effective_step/{layer}"
        for i, step in enumerate(history["step"]):
            norm = np.linalg.norm(kernels[step][layer])
            assert history[f"{tag}/weight_norm"][i] == pytest.approx(norm, rel=1e-5)
            assert history[f"{tag}/effective_lr"][i] == pytest.approx(
                lr / norm**2, rel=1e-5
            )
        one_step = history[f"{tag}/angular_update"]
        # one step, from just before the reading's step to just after it
        assert math.isnan(one_step[0]) and math.isnan(one_step[3])
        for i, step in ((1, 3), (2, 6)):
            expected = angle(kernels[step - 1][layer], kernels[step][layer])
            assert expected > 0
            assert one_step[i] == pytest.approx(expected, rel=1e-4)
        between = history[f"{tag}/angle_per_step"]
        assert math.isnan(between[0])
        for i, (start, end) in enumerate(((0, 3), (3, 6), (6, 8)), start=1):
            expected = angle(kernels[start][layer], kernels[end][layer])
            assert between[i] == pytest.approx(expected / (end - start), rel=1e-4)
    curves = instruments.curves([probe], steps_per_epoch=8)["effective_step"]
    assert curves["layers"] == ["d1", "d2"]
    assert curves["weight_norm"][1] == pytest.approx(
        np.mean([history[f"effective_step/{n}/weight_norm"][1] for n in ("d1", "d2")])
    )


def curve(angles, norms):
    steps = [10 * i for i in range(len(angles))]
    return {
        "step": steps,
        "layers": ["a"],
        "angular_update": angles,
        "weight_norm": norms,
        "effective_lr": [1.0 / n**2 for n in norms],
        "angle_per_step": angles,
    }


def test_the_final_window_is_the_last_quarter_root_mean_square():
    # 8 readings: the last quarter is the last two
    found = weight_decay.final_numbers(
        curve([math.nan, 1, 1, 1, 1, 1, 0.3, 0.4], [9, 9, 9, 9, 9, 9, 2, 4])
    )
    assert found["angular_update"] == pytest.approx(math.sqrt((0.09 + 0.16) / 2))
    assert found["weight_norm"] == pytest.approx(3.0)
    assert found["effective_lr"] == pytest.approx((1 / 4 + 1 / 16) / 2)
    # one reading: the window is that reading
    assert weight_decay.final_numbers(curve([0.2], [2]))["weight_norm"] == 2


def row(variant, decay, lr, seed, angles=(0.1, 0.1), diverged=0, val=0.9):
    return {
        "variant": variant,
        "weight_decay": decay,
        "lr": lr,
        "seed": seed,
        "diverged": diverged,
        "final_val_accuracy": val,
        "final_test_accuracy": val,
        "curves": {"effective_step": curve(list(angles), [2.0] * len(angles))},
    }


def test_the_summary_compares_the_angle_with_sqrt_2_lr_wd():
    from studies.science.spec import make_spec

    spec = make_spec("weight-decay", variants=["bn"], seeds=3)
    rows = [row("bn", 0.01, 0.5, s, angles=(0.2, 0.1)) for s in range(3)]
    rows.append(row("bn", 0.0, 0.5, 0, angles=(0.3, 0.3)))
    rows.append(row("bn", 0.0, 0.5, 1, angles=(9.0, 9.0), diverged=1, val=0.5))
    variants = {}
    found = weight_decay.section(spec, rows, variants, chances=(0.1, 0.1))
    assert found["predicted"] == "sqrt(2 lr wd)" and found["prediction_applies"]
    entry = variants["bn"]["effective_step"]["0.01"]["0.5"]
    assert entry["predicted"] == pytest.approx(0.1)  # sqrt(2 x 0.5 x 0.01)
    assert entry["angular_update"] == pytest.approx(0.1)
    assert entry["ratio"] == pytest.approx(1.0)
    assert entry["weight_norm"] == 2.0 and entry["effective_lr"] == 0.25
    assert entry["seeds"] == 3 and entry["intervals"]["ratio"]["n"] == 3
    none = variants["bn"]["effective_step"]["0"]["0.5"]
    # no decay: no prediction; the diverged cell is out of the curve numbers
    # and in the score, at chance
    assert none["predicted"] == 0 and none["ratio"] is None
    assert none["angular_update"] == pytest.approx(0.3)
    assert (none["seeds"], none["diverged"]) == (1, 1)
    assert none["val_accuracy"] == pytest.approx((0.9 + 0.1) / 2)


@pytest.mark.parametrize(
    "values, match",
    [
        ("0,-0.001", "--weight-decays values must be >= 0, got -0.001"),
        ("0,abc", "--weight-decays takes comma-separated numbers, got '0,abc'"),
        ("0,0", "--weight-decays has repeated values"),
    ],
)
def test_bad_weight_decays_are_refused_on_the_command_line(
    values, match, capsys, tmp_path
):
    out = tmp_path / "out"
    code = cli.main(["weight-decay", "--weight-decays", values, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and match in err, err
    assert not out.exists()


@pytest.mark.parametrize("values", [[-1e-4], ["abc"], [0.0, float("nan")]])
def test_bad_weight_decays_are_refused_by_the_api(values, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="weight_decays"):
        studies.run("weight-decay", out=str(out), weight_decays=values)
    assert not out.exists()


def test_one_decay_elsewhere_and_the_grid_here(capsys, tmp_path):
    out = str(tmp_path / "out")
    assert cli.main(["lr", "--weight-decays", "0,0.1", "--out", out]) == 2
    assert "one fixed weight decay" in capsys.readouterr().err
    assert cli.main(["weight-decay", "--weight-decay", "0.1", "--out", out]) == 2
    assert "give --weight-decays, not --weight-decay" in capsys.readouterr().err
    from studies.science.spec import make_spec

    spec = make_spec("lr", weight_decays=[0.001])
    assert spec.fixed["weight_decay"] == 0.001 and "weight_decay" not in spec.axes


def test_the_study_end_to_end(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["weight-decay", *TINY_ARGS, "--variants", "none,bn", "--lrs", "1"]
    argv += ["--weight-decays", "0,0.01"]
    assert cli.main([*argv, "--probe-every", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for variant in ("none", "bn"):
        table = summary["variants"][variant]["effective_step"]
        assert set(table) == {"0", "0.01"} and set(table["0.01"]) == {"1"}
        entry = table["0.01"]["1"]
        assert entry["predicted"] == pytest.approx(math.sqrt(0.02))
        if entry["seeds"]:  # a stable cell: its curves' numbers
            assert entry["angular_update"] > 0 and entry["weight_norm"] > 0
            assert entry["ratio"] == pytest.approx(
                entry["angular_update"] / entry["predicted"]
            )
    assert len(summary["weight_decay"]["layers"]) == 6  # the hidden Dense layers
    records = [json.loads(p.read_text()) for p in (out / "cells").iterdir()]
    (record,) = [
        r for r in records if r["cell"]["variant"] == "bn" and r["cell"]["weight_decay"]
    ]
    curves = record["curves"]["effective_step"]
    assert len(curves["per_layer"]) == 6 and curves["step"][:2] == [0, 1]
    report = (out / "report.md").read_text()
    assert "## Weight decay and the effective step" in report
    assert (out / "weight_decay.png").exists()
    printed = capsys.readouterr().out
    assert "bn wd=0.01 lr=1: angular update per step" in printed


def test_any_study_can_add_the_instrument(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["lr", *TINY_ARGS, "--variants", "bn", "--lrs", "0.1"]
    argv += ["--instruments", "effective_step", "--weight-decays", "0.001"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (entry,) = summary["variants"]["bn"]["effective_step"]["0.001"].values()
    assert entry["lr"] == 0.1 and entry["predicted"] == pytest.approx(math.sqrt(2e-4))
    assert "## Weight decay and the effective step" in (out / "report.md").read_text()
