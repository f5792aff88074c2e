"""Bad input: one line on stderr, exit code 2, and the output folder untouched."""

import hashlib
import json
import os
import subprocess
import sys

import pytest
from study_helpers import ROOT, TINY_ARGS, tiny_spec

from studies.science.spec import make_spec
from studies.surfaces import cli, runner


def snapshot(folder):
    """Every file under `folder` with a hash of its content."""
    files = {}
    for base, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = hashlib.sha256(
                    f.read()
                ).hexdigest()
    return files


def fails(argv, capsys, match):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("kbn-study: error:"), err
    assert match in err
    return err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["nonsense"], "invalid choice: 'nonsense'"),
        (["lr", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["lr", "--dataset", "missing.npz"], "does not exist"),
        (["lr", "--model", "resnet"], "unknown model 'resnet'"),
        (["lr", "--variants", "bn,groupnorm"], "unknown variant groupnorm"),
        (["lr", "--variants", ""], "--variants is empty"),
        (["lr", "--lrs", ""], "--lrs is empty"),
        (["lr", "--lrs", "0.1,-1"], "must be positive"),
        (["lr", "--lrs", "0.1,abc"], "comma-separated numbers"),
        (["lr", "--lrs", "0.1,0.1"], "repeated"),
        (["lr", "--epochs", "0"], "--epochs must be >= 1"),
        (["lr", "--seeds", "0"], "--seeds must be >= 1"),
        (["noise", "--batch-sizes", "16,32"], "one fixed batch size"),
        (["init", "--inits", "orthogonal"], "unknown init orthogonal"),
        (["init", "--init-scales", "0"], "must be positive"),
        (["lr", "--dataset", "synthetic", "--model", "cnn"], "use mlp-sigmoid"),
        (["lr", "--train-size", "100000"], "larger than the 1077"),
        (["lr", "--epochs", "3", "--steps", "10"], "not allowed with argument"),
        (["lr", "--steps", "0"], "--steps must be >= 1"),
        (["lr", "--inits", "he_normal,glorot_uniform"], "one fixed init family"),
        (["lr", "--init-scales", "1,2"], "one fixed init scale"),
        (["lr", "--worker", "w1", "--oracle-address", "nohost"], "HOST:PORT"),
        (["report", "/nonexistent/study"], "not a study folder"),
        # options the study would ignore
        (["lr", "--virtual-batch-size", "8"], "ghost-bn variant, which this study"),
        (["lr", "--warmup-fraction", "0.1"], "applies to the warmup-cosine schedule"),
        (["lr", "--probe-every", "5"], "this study runs none"),
        (["lr", "--target-scaling", "none"], "applies to regression targets"),
        (["lr", "--oracle-address", "127.0.0.1:9"], "applies with --chief or --worker"),
        (
            ["lr", "--worker", "w1", "--retry-errors"],
            "--retry-errors goes to the chief",
        ),
        (
            ["lr", "--worker", "w1", "--resume-changed"],
            "--resume-changed goes to the chief",
        ),
        (["lr", "--lease-timeout", "0.1"], "--lease-timeout must be a number of"),
        # the target: at most 1 (checked first), above chance (once data loads)
        (["convergence", "--target", "1.5"], "--target must be in (0, 1], got 1.5"),
        (["convergence", "--target", "0.05"], "must be above chance (0.104"),
        (["convergence", "--target", "0"], "--target must be in (0, 1]"),
        (["lr", "--target", "0.5"], "counts no steps to a target"),
    ],
)
def test_bad_input(argv, match, capsys, tmp_path):
    if argv and argv[0] != "report":
        argv = [*argv, "--out", str(tmp_path / "out")]
    fails(argv, capsys, match)
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    fails(
        ["lr", "--out", str(blocker / "study")], capsys, "cannot create output folder"
    )
    fails(["lr", "--out", str(blocker)], capsys, "is a file")
    assert blocker.read_text() == "not a folder"


def test_folder_with_another_study_or_other_files_is_left_alone(tmp_path, capsys):
    out = tmp_path / "study"
    spec = tiny_spec("lr", variants=["none"], lrs=[0.1])
    runner.run(spec, str(out), stream=open(os.devnull, "w"))
    before = snapshot(out)
    err = fails(
        ["lr", "--out", str(out), "--epochs", "3"], capsys, "holds a different study"
    )
    assert "test lr" in err  # names the command that made the folder
    fails(["init", "--out", str(out)], capsys, "holds a different study")
    assert snapshot(out) == before
    # --overwrite starts afresh: the old cells are gone, the new study's are there
    fresh = ["lr", "--out", str(out), "--overwrite", *TINY_ARGS, "--variants", "none"]
    assert cli.main([*fresh, "--lrs", "0.3"]) == 0
    capsys.readouterr()
    spec = json.loads((out / "study.json").read_text())
    assert spec["axes"]["variant"] == ["none"] and spec["axes"]["lr"] == [0.3]
    assert len(os.listdir(out / "cells")) == 1 and len(os.listdir(out / "runs")) == 1

    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    fails(["lr", "--out", str(other)], capsys, "not empty and holds no study")
    assert snapshot(other) == {"cat.jpg": hashlib.sha256(b"meow").hexdigest()}


def test_npz_dataset_with_missing_keys(tmp_path, capsys):
    import numpy as np

    path = tmp_path / "data.npz"
    np.savez(path, x_train=np.zeros((4, 3)), y_train=np.zeros(4))
    fails(
        ["lr", "--dataset", str(path), "--out", str(tmp_path / "o")],
        capsys,
        "lacks x_test, y_test",
    )


_CHECKS = """
import json, os, sys
from studies.surfaces import cli
from studies.science.spec import make_spec

out, npz = sys.argv[1], sys.argv[2]
os.makedirs(out + "/other")  # a folder of another study
with open(out + "/other/study.json", "w") as f:
    f.write(make_spec("init", command="an init study").to_json())
argv = ["lr", "--lrs", "0.1", "--out", out + "/changed"]
spec, _ = cli.prepare(cli.build_parser().parse_args(argv), argv)
os.makedirs(out + "/changed")  # this study, on digits as they were once
with open(out + "/changed/study.json", "w") as f:
    f.write(spec.to_json())
with open(out + "/changed/dataset.json", "w") as f:
    json.dump({"fingerprint": "0123456789abcdef", "chance": 0.1}, f)
open(out + "/file", "w").close()
answers = [
    cli.main(["lr", "--out", out + "/other"]),
    cli.main(argv),
    cli.main(["lr", "--out", out + "/file"]),
    cli.main(["lr", "--out", out + "/file/study"]),
    cli.main(["lr", "--dataset", npz, "--out", out + "/new"]),
]
print(json.dumps([answers, "tensorflow" in sys.modules, "keras" in sys.modules]))
"""


def test_bad_folders_and_data_are_answered_before_tensorflow_loads(tmp_path):
    checks = subprocess.run(
        [sys.executable, "-c", _CHECKS, str(tmp_path), str(tmp_path / "gone.npz")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    answers, tensorflow, keras = json.loads(checks.stdout.splitlines()[-1])
    assert answers == [2] * 5
    assert not tensorflow and not keras
    messages = checks.stderr.strip().splitlines()
    assert len(messages) == 5 and all(
        m.startswith("kbn-study: error:") for m in messages
    )
    for message, expected in zip(
        messages,
        [
            "holds a different study (study init there, lr now",
            "data digits has changed: fingerprint 0123456789abcdef there",
            "is a file, not a folder",
            "is a file",
            "gone.npz' does not exist",
        ],
        strict=True,
    ):
        assert expected in message
    assert sorted(os.listdir(tmp_path / "changed")) == ["dataset.json", "study.json"]


def test_one_value_of_an_axis_the_study_does_not_sweep_is_applied():
    import numpy as np
    from study_helpers import build_model

    argv = ["lr", "--model", "mlp-sigmoid", "--inits", "he_normal"]
    argv += ["--init-scales", "0.5", "--batch-sizes", "32"]
    spec, _ = cli.prepare(cli.build_parser().parse_args(argv), argv)
    assert (spec.fixed["init"], spec.fixed["init_scale"]) == ("he_normal", 0.5)
    assert spec.fixed["batch_size"] == 32
    model = build_model(
        "mlp-sigmoid", "none", (8, 8, 1), 10, init="he_normal", init_scale=0.5
    )
    kernel = np.asarray(next(w for w in model.weights if "kernel" in w.path))
    expected = 0.5 * np.sqrt(2 / kernel.shape[0])  # He: std sqrt(2 / fan_in)
    assert abs(kernel.std() / expected - 1) < 0.1


def test_module_entry_point_exit_code_and_help():
    bad = subprocess.run(
        [sys.executable, "-m", "studies", "lr", "--epochs", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        "python -m studies: error: --epochs must be >= 1, got 0"
    )
    helped = subprocess.run(
        [sys.executable, "-m", "studies", "lr", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert helped.returncode == 0
    for option in ("--lrs", "--preset", "--variants", "--optimizer", "--chief"):
        assert option in helped.stdout


def test_presets_and_overrides():
    quick = make_spec("lr", "quick")
    assert quick.axis_names == ("variant", "lr", "seed")
    assert quick.size == 2 * 7 * 5
    assert make_spec("lr", "full").size > quick.size
    init = make_spec("init", "quick", lrs=[0.5], seeds=3)
    assert init.fixed["lr"] == 0.5 and init.axes["seed"] == (0, 1, 2)
    assert "lr" not in init.axes and "init_scale" not in init.fixed
    assert make_spec("noise", "quick").fixed["train_size"] == 300
    # one value of an axis the study does not sweep fixes that setting
    fixed = make_spec("lr", inits=["glorot_uniform"], init_scales=[2.0]).fixed
    assert fixed["init"] == "glorot_uniform" and fixed["init_scale"] == 2.0
    # a step budget replaces the epochs
    stepped = make_spec("lr", steps=200).fixed
    assert stepped["steps"] == 200 and stepped["epochs"] is None


def test_every_preset_starts_from_the_models_standard_init():
    from studies.science import definitions

    for name in definitions.STUDIES:
        for preset in definitions.PRESETS:
            made = make_spec(name, preset)
            model = made.fixed["model"]
            if "init" not in made.axes:
                assert made.fixed["init"] == definitions.STANDARD_INIT[model]
            else:
                assert definitions.STANDARD_INIT[model] in made.axes["init"]
    assert make_spec("lr", model="mlp-sigmoid").fixed["init"] == "glorot_sigmoid"


def test_every_preset_runs_at_least_five_seeds():
    # below 5 the t interval's width balloons (t = 2.78 at n = 5, 4.30 at 3)
    from studies.science import definitions

    for name in definitions.STUDIES:
        for preset in definitions.PRESETS:
            seeds = make_spec(name, preset).axes["seed"]
            assert len(seeds) >= 5, (name, preset)


def test_console_script_is_installed():
    import shutil

    script = shutil.which("kbn-study") or os.path.join(
        os.path.dirname(sys.executable), "kbn-study"
    )
    result = subprocess.run(
        [script, "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "lr-init" in result.stdout


@pytest.mark.slow
def test_readme_quick_study_shows_the_effect(tmp_path):
    """The README's main command: a fair comparison in which both train."""
    import json

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "studies",
            "lr",
            "--preset",
            "quick",
            "--out",
            str(tmp_path / "quick"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    variants = json.loads((tmp_path / "quick" / "summary.json").read_text())["variants"]
    for name in ("none", "bn"):
        assert variants[name]["trained"] and variants[name]["best_val_accuracy"] >= 0.9
        (usable,) = variants[name]["usable_lr_ranges_5pt"]
        assert not usable["censored_low"] and not usable["censored_high"]
    assert variants["bn"]["max_stable_lr"] > variants["none"]["max_stable_lr"]
    assert "none: trained" in result.stdout and "bn - none:" in result.stdout
