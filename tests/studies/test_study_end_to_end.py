"""Each study runs from the command line at tiny size and writes its folder."""

import csv
import json

import pytest
from study_helpers import TINY_ARGS as TINY
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util import tensor_util

from studies.outputs import reporting
from studies.surfaces import cli

CASES = {
    "lr": (
        ["--lrs", "0.1,1", "--variants", "none,keras,bn"],
        ["accuracy_vs_lr.png"],
        ("variant", "lr", "seed"),
    ),
    "init": (
        [
            "--inits",
            "he_normal,random_normal",
            "--init-scales",
            "0.1,1",
            "--variants",
            "none,bn",
            "--lrs",
            "0.5",
        ],
        ["accuracy_vs_init_scale.png"],
        ("variant", "init", "init_scale", "seed"),
    ),
    "lr-init": (
        ["--lrs", "0.1,1", "--init-scales", "0.1,1", "--variants", "none,bn"],
        ["lr_init_heatmap.png", "accuracy_vs_lr.png"],
        ("variant", "lr", "init_scale", "seed"),
    ),
    "noise": (
        [
            "--variants",
            "bn,bn-batch-statistics,bn-covariate-shift,bn-adjustment",
            "--lrs",
            "0.3",
        ],
        ["noise_generalization.png"],
        ("variant", "seed"),
    ),
}
OUTCOME_COLUMNS = [
    "final_val_accuracy",
    "best_val_accuracy",
    "final_val_loss",
    "best_val_loss",
    "final_train_loss",
    "diverged",
    "epochs_run",
    "seconds",
    "status",
]


@pytest.mark.parametrize("study", sorted(CASES))
def test_study_writes_its_folder(study, tmp_path, capsys):
    options, images, axes = CASES[study]
    out = tmp_path / study
    assert cli.main([study, *TINY, *options, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"tensorboard --logdir {out / 'tensorboard'}" in printed
    with open(out / "results.csv") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames[: len(axes) + len(OUTCOME_COLUMNS)] == [
        *axes,
        *OUTCOME_COLUMNS,
    ]
    variants = options[options.index("--variants") + 1].split(",")
    per_variant = {"lr": 2, "init": 4, "lr-init": 4, "noise": 1}[study]
    assert len(rows) == len(variants) * per_variant
    assert {r["status"] for r in rows} <= {"ok", "diverged"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["study"] == study and summary["command"].startswith(
        f"python -m studies {study}"
    )
    assert list(summary["variants"]) == variants
    expected_keys = {
        "best_val_accuracy",
        "test_accuracy",
        "trained",
        "seed_std",
        "diverged_fraction",
    }
    if "lr" in axes:
        expected_keys |= {
            "usable_lr_decades_1pt",
            "usable_lr_decades_5pt",
            "max_stable_lr",
            "lr_sensitivity",
        }
    if "init_scale" in axes:
        expected_keys |= {
            "usable_init_scale_decades_5pt",
            "max_stable_init_scale",
            "init_scale_sensitivity",
        }
    if study == "noise":
        expected_keys |= {"generalization_gap", "final_train_accuracy"}
    for numbers in summary["variants"].values():
        assert expected_keys <= set(numbers)
    for image in images:
        assert (out / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "report.md").read_text()
    assert summary["command"] in text and all(f"]({i})" in text for i in images)

    # `report DIR` rebuilds the same numbers from the folder alone
    (out / "summary.json").unlink()
    (out / "report.md").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text()) == summary
    assert (out / "report.md").read_text() == text


def _scalars(path):
    acc = ea.EventAccumulator(str(path), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    return acc


def test_tensorboard_scalars_sessions_and_root_config(tmp_path):
    out = tmp_path / "lr"
    options = ["--lrs", "0.1,1", "--variants", "none,bn", "--epochs", "2"]
    assert cli.main(["lr", *TINY[:4], *options, "--seeds", "1", "--out", str(out)]) == 0
    logs = out / "tensorboard"
    cell = logs / "variant=bn,lr=1.0,seed=0"
    train, validation = _scalars(cell / "train"), _scalars(cell / "validation")
    tags = set(train.Tags()["tensors"])
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= tags
    assert {"epoch_loss", "epoch_accuracy"} <= set(validation.Tags()["tensors"])
    assert len(train.Tensors("epoch_loss")) == 2
    lr = tensor_util.make_ndarray(train.Tensors("epoch_learning_rate")[0].tensor_proto)
    assert float(lr) == pytest.approx(1.0)

    session = _scalars(cell)
    assert "_hparams_/session_start_info" in session.Tags()["tensors"]
    root = _scalars(logs)
    content = root.SummaryMetadata("_hparams_/experiment").plugin_data.content
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    domains = {
        h.name: sorted(
            getattr(v, v.WhichOneof("kind")) for v in h.domain_discrete.values
        )
        for h in experiment.hparam_infos
    }
    assert domains == {"variant": ["bn", "none"], "lr": [0.1, 1.0], "seed": [0]}
    metrics = {(m.name.group, m.name.tag) for m in experiment.metric_infos}
    assert ("validation", "epoch_accuracy") in metrics
    assert ("train", "epoch_loss") in metrics
    assert len(list(logs.glob("events.out.tfevents.*"))) == 1


def test_report_of_an_unfinished_study_says_so(tmp_path):
    out = tmp_path / "lr"
    assert (
        cli.main(["lr", *TINY, "--lrs", "0.1", "--variants", "none", "--out", str(out)])
        == 0
    )
    next((out / "cells").glob("*.json")).unlink()
    summary = reporting.write(str(out))
    assert summary["cells_finished"] == 0
    assert "Incomplete: 0 of 1 cells" in (out / "report.md").read_text()
