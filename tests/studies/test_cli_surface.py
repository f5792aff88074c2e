"""The command line without traps: no abbreviations, --version, a bare
command's usage, `list`, per-study help, `--dry-run`, `--overwrite` next to
`--resume-changed` (and the deprecated `--force`). None of these load
TensorFlow: they answer before any backend is imported."""

import io
import json
import os
import re
import subprocess
import sys

import pytest
from study_helpers import ROOT

from studies import folder
from studies.engine import records
from studies.inputs import variants
from studies.inputs.data import builtin
from studies.science import definitions
from studies.science.spec import make_spec
from studies.surfaces import api, catalog, cli, console, plan, runner


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """No Keras here: skip conftest's per-test clear_session (0.3 s each)."""
    yield


def refused(argv, capsys, match, prog=cli.PROGRAM):
    code = cli.main(argv, prog)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"{prog}: error:") and match in err, err
    return err


def test_options_are_never_abbreviated(capsys, tmp_path):
    # --seed once meant --seeds (588 cells of the quick lr study)
    refused(["lr", "--seed", "42"], capsys, "unrecognized arguments: --seed 42")
    refused(["lr", "--epoch", "3"], capsys, "unrecognized arguments: --epoch")
    refused(["--vers"], capsys, "required: STUDY")  # not --version
    assert not (tmp_path / "runs").exists()


def test_version_is_the_one_in_kbn_version_py(capsys):
    with open(os.path.join(ROOT, "kbn", "_version.py")) as f:
        (version,) = re.findall(r'__version__ = "([^"]+)"', f.read())
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"], "python -m studies")
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"python -m studies (kbn) {version}"


def test_bare_command_prints_usage_with_every_study(capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: kbn-study")
    for name in (*definitions.STUDIES, "report", "list"):
        assert f"\n    {name} " in err or f"\n    {name}\n" in err, name


def test_each_entry_point_names_itself(capsys):
    refused(["lr", "--epochs", "0"], capsys, "--epochs must be >= 1")
    refused(["lr", "--epochs", "0"], capsys, "--epochs", prog="python -m studies")
    with pytest.raises(SystemExit):
        cli.main(["lr", "--help"], "python -m studies")
    assert capsys.readouterr().out.startswith("usage: python -m studies lr ")


def _help(study):
    out = io.StringIO()
    parser = cli.build_parser()
    sub = parser._subparsers._group_actions[0].choices[study]
    sub.print_help(out)
    return " ".join(out.getvalue().split())  # argparse wraps lines


def test_a_studys_help_shows_its_presets_and_only_its_options():
    lr = _help("lr")
    quick, full = (make_spec("lr", p).axes["lr"] for p in ("quick", "full"))
    grid = [",".join(f"{v:g}" for v in values) for values in (quick, full)]
    assert f"[quick: {grid[0]}; full: {grid[1]}]" in lr
    assert "--seeds SEEDS number of seeds (an axis of its own) [quick and full: 5]" in (
        lr
    )
    assert "--lr LR" not in lr  # lr sweeps the rate: --lr is always refused there
    init = _help("init")
    # init tunes the rate per variant: its presets give the tuning grid
    assert "--lr LR" in init and "[quick and full: 0.01,0.03,0.1,0.3,1,3,10]" in init
    batch = _help("batch-size")
    assert "--batch-size BATCH_SIZE" not in batch and "--batch-sizes" in batch
    assert "[quick and full: 300]" in _help("noise")  # its small training set


def test_list_names_studies_variants_models_and_datasets(capsys, tmp_path, monkeypatch):
    (tmp_path / "my_norms.py").write_text(
        "import studies\n"
        "studies.variants.register('my-norm', lambda seed, settings: None, "
        "description='mine')\n"
        "def build(normalization, kernel_initializer, input_shape, outputs):\n"
        "    pass\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert cli.main(["list", "--model", "my_norms:build", "--format", "json"]) == 0
        found = json.loads(capsys.readouterr().out)
    finally:
        variants._REGISTRY.pop("my-norm", None)
        sys.modules.pop("my_norms", None)
    assert list(found["studies"]) == list(definitions.STUDIES)
    assert found["studies"]["lr"]["presets"]["quick"] == make_spec("lr").size == 70
    # a study that tunes its rate counts its tuning cells too
    assert found["studies"]["init"]["presets"]["quick"] == 80 + 2 * 7 * 2
    assert found["variants"]["my-norm"] == "mine" and "bn-after" in found["variants"]
    assert list(found["models"]) == list(definitions.MODELS)
    assert set(found["datasets"]) == set(builtin.NAMES)
    assert cli.main(["list"]) == 0
    text = capsys.readouterr().out
    assert "lr-init" in text and "ghost-bn" in text and "my-norm" not in text
    refused(["list", "--model", "nowhere:build"], capsys, "cannot import module")


def test_dry_run_prints_the_grid_cells_and_eta_before_tensorflow(tmp_path):
    out = tmp_path / "lr"
    script = (
        "import sys, time; start = time.perf_counter()\n"
        "from studies.surfaces import cli\n"
        f"code = cli.main(['lr', '--dry-run', '--out', {str(out)!r}])\n"
        "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules,"
        " time.perf_counter() - start)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True
    )
    *printed, last = done.stdout.strip().splitlines()
    code, tensorflow, keras, seconds = last.split()
    assert (code, tensorflow, keras) == ("0", "False", "False"), done.stderr
    assert float(seconds) < 3
    assert printed[0].startswith("study lr: 70 cells = 2 variant x 7 lr x 5 seed")
    steps = 70 * 15 * 18  # 15 epochs of ceil(1077 / 60) steps
    assert f"{steps} optimizer steps" in done.stdout
    assert "ETA: about 6 min" in done.stdout  # 18900 x 20 ms
    assert not out.exists()


def test_a_dry_run_on_a_started_folder_uses_its_cells_times(tmp_path):
    spec = make_spec("lr", variants=["none"], lrs=[0.1, 1.0], seeds=2, epochs=2)
    folder.write(folder.spec_path(str(tmp_path)), spec.to_json())
    for cell, seconds in zip(spec.cells()[:3], (4.0, 6.0, 9.0), strict=True):
        records.write(str(tmp_path), cell, {"seconds": seconds, "status": "ok"})
    before = sorted(os.listdir(tmp_path))
    stream = io.StringIO()
    found = api.run(
        "lr", out=str(tmp_path), variants=["none"], lrs=[0.1, 1.0], seeds=2,
        epochs=2, dry_run=True, stream=stream,
    )  # fmt: skip
    assert (found["cells"], found["finished"], found["to_run"]) == (4, 3, 1)
    assert found["eta_seconds"] == 6.0  # one cell at the median of 4, 6, 9
    assert "3 already finished" in stream.getvalue()
    assert sorted(os.listdir(tmp_path)) == before


def test_dry_run_steps_follow_the_budget_and_the_data():
    spec = make_spec("batch-size")
    data = type("Data", (), {"source": "digits", "name": "digits"})()
    found = plan.make(spec, "/nonexistent", data)
    # the grid and its tuning phase (4 variants x 7 sizes x 7 rates x 1 seed)
    assert found["steps"] == (spec.size + 196) * 400 and found["tuning_cells"] == 196
    arrays = type("Data", (), {"source": ([0] * 100, 0, 0, 0), "name": "arrays"})()
    assert plan.training_rows(arrays) == 80  # the validation split takes 20
    assert plan.cell_steps({"epochs": 3, "batch_size": 32, "train_size": 50}, 80) == 6
    later = type("Data", (), {"source": None, "name": "mod:load"})()
    assert plan.make(make_spec("lr"), "/nonexistent", later)["eta_seconds"] is None


def test_train_rows_of_the_offline_datasets_are_what_they_load():
    for name in ("digits", "synthetic"):
        assert len(builtin.arrays(name)[0]) == builtin.TRAIN_ROWS[name]


def _hand_made_study(path, study="init"):
    """A folder holding another study: its files, a cell, and a user's file."""
    old = make_spec(study, command="an old study")
    folder.write(folder.spec_path(str(path)), old.to_json())
    records.write(str(path), old.cells()[0], {"seconds": 1.0, "status": "ok"})
    for name in ("report.md", "report.html", "accuracy_vs_lr.png"):
        (path / name).write_text("old")
    (path / "notes.txt").write_text("mine")
    (path / "tensorboard").mkdir()
    return old


def test_overwrite_clears_only_the_study_and_only_after_the_checks(tmp_path, capsys):
    _hand_made_study(tmp_path)
    spec = make_spec("lr")
    with pytest.raises(runner.StudyError, match="or --overwrite to start afresh"):
        runner.check_folder(spec, str(tmp_path), style="cli")
    assert runner.check_folder(spec, str(tmp_path), overwrite=True) == []
    before = sorted(os.listdir(tmp_path))
    # a bad option is answered before anything is deleted
    argv = ["lr", "--out", str(tmp_path), "--overwrite"]
    refused([*argv, "--lrs", "0"], capsys, "must be positive")
    refused(
        ["lr", "--out", str(tmp_path), "--overwrite", "--resume-changed"],
        capsys,
        "not allowed with argument",
    )
    refused(["lr", "--worker", "w1", "--overwrite"], capsys, "goes to the chief")
    assert sorted(os.listdir(tmp_path)) == before
    folder.clear_study(str(tmp_path))
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_overwrite_refuses_a_folder_whose_cells_are_running(tmp_path):
    _hand_made_study(tmp_path)
    lease = folder.json_path(folder.leases_dir(str(tmp_path)), "cell")
    folder.write(lease, "{}")
    with pytest.raises(runner.StudyError, match="has cells running now"):
        runner.check_folder(make_spec("lr"), str(tmp_path), overwrite=True)
    os.utime(lease, (1, 1))  # a lease nobody touched for decades
    assert runner.check_folder(make_spec("lr"), str(tmp_path), overwrite=True) == []
    assert folder.holds_study(str(tmp_path))


def test_force_still_works_with_a_deprecation_message(tmp_path, capsys):
    _hand_made_study(tmp_path, "lr")
    argv = ["lr", "--out", str(tmp_path), "--epochs", "3", "--dry-run"]
    refused(argv, capsys, "holds a different study")
    assert cli.main([*argv, "--force"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == "--force is deprecated; use --resume-changed"
    assert "study lr: 70 cells" in captured.out
    with pytest.warns(DeprecationWarning, match="use resume_changed"):
        api.run("lr", out=str(tmp_path), epochs=3, force=True, dry_run=True)


def test_the_tensorboard_hint_comes_when_the_study_starts(tmp_path):
    dataset = type("Dataset", (), {"describe": lambda self: "digits"})()
    stream = io.StringIO()
    console.print_start(make_spec("lr"), str(tmp_path), "single", dataset, [], stream)
    lines = stream.getvalue().splitlines()
    tensorboard = os.path.join(str(tmp_path), "tensorboard")
    assert lines[-1] == f"watch it live: tensorboard --logdir {tensorboard}"


def test_every_study_page_is_generated_from_the_registry():
    page = catalog.study_markdown("lr")
    assert "| cells | | 70 | 165 |" in page
    assert "| lrs | `--lrs` | `0.01,0.03,0.1,0.3,1,3,10` |" in page
    assert "Refused here (the study sweeps it): --lr." in page
