"""Studies under faults: concurrent runs on one folder, a worker that stops
heartbeating mid-cell, a chief restarted under a live worker, errors retried.

The processes are real (`python -m studies`); a cell is caught mid-run by
`fault_plugin`, a builder that waits for the test's signal file.
"""

import io
import os
import signal
import socket
import time

import pytest
from study_helpers import progress_cells, start, study_command

from studies.engine import records
from studies.engine.oracle import handout_order
from studies.science.spec import cell_key, make_spec

HERE = os.path.dirname(os.path.abspath(__file__))
NOISE = ("InitializeLog", "cuInit", "cuda drivers", "cpu_feature_guard")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what, seconds=180):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def keys_of(variants, lrs):
    grid = make_spec("lr", variants=variants, lrs=lrs, seeds=1)
    return [cell_key(cell) for cell in handout_order(grid)]


VARIANTS, LRS = ["none", "layer-norm"], [0.1, 1.0]


def distributed_study(out, *options):
    """The command of a 4-cell study for a chief and workers on loopback,
    built by `fault_plugin`."""
    return study_command(
        "lr",
        out,
        "--model",
        "fault_plugin:build",
        "--variants",
        ",".join(VARIANTS),
        "--lrs",
        ",".join(map(str, LRS)),
        "--oracle-address",
        f"127.0.0.1:{free_port()}",
        *options,
    )


def finish(*processes, timeout=300):
    """Waits for every process; returns their (stdout, stderr) texts."""
    outputs = [p.communicate(timeout=timeout) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    return outputs


def test_two_plain_runs_on_one_folder_share_its_cells(tmp_path):
    out = tmp_path / "study"
    command = study_command(
        "lr", out, "--variants", "none,layer-norm", "--lrs", "0.1,1,3"
    )
    # TensorFlow's own log level as a user has it (unset), to see the filter
    outputs = finish(*(start(command, TF_CPP_MIN_LOG_LEVEL=None) for _ in "ab"))
    ran = [cell for text, _ in outputs for cell in progress_cells(text)]
    assert sorted(ran) == sorted(keys_of(["none", "layer-norm"], [0.1, 1.0, 3.0]))
    for text, err in outputs:  # both finish, with the report, and no start-up log
        assert "report:" in text
        assert not [line for line in err.splitlines() if any(n in line for n in NOISE)]
    assert [n for n in os.listdir(out / "leases") if n.endswith(".json")] == []
    assert len(os.listdir(out / "runs")) == 2


def test_cells_of_a_stalled_and_a_killed_worker_are_handed_out_again(tmp_path):
    out = tmp_path / "study"
    study = distributed_study(out, "--lease-timeout", "3")
    chief = start([*study, "--chief"], PYTHONPATH=HERE)
    stalled, killed = (
        start(
            [*study, "--worker", name],
            PYTHONPATH=HERE,
            FAULT_OUT=out,
            FAULT_STARTED=tmp_path / name,
        )
        for name in ("w1", "w3")
    )
    try:
        for name in ("w1", "w3"):
            wait_for((tmp_path / name).exists, f"{name} to start its first cell")
        held = {n[: -len(".json")] for n in os.listdir(out / "leases") if n[0] != "."}
        # w1 alive but silent, as on a machine that is gone: only the timeout
        # frees its cell; w3 dead on this machine: its cell is free at once
        stalled.send_signal(signal.SIGSTOP)
        killed.kill()
        other = start([*study, "--worker", "w2"], PYTHONPATH=HERE)
        (other_text, _), (chief_text, _) = finish(other, chief)
    finally:
        for process in (stalled, killed):
            process.kill()
            process.communicate()
    assert len(held) == 2 and held <= set(progress_cells(other_text))
    assert sorted(progress_cells(other_text)) == sorted(keys_of(VARIANTS, LRS))
    for name in ("w1", "w3"):
        assert f"its run by {name} stopped heartbeating" in chief_text
    assert "report:" in chief_text and (out / "report.md").exists()
    assert os.listdir(out / "tensorboard" / ".running") == []  # nothing half-written
    assert sorted(records.finished_keys(out)) == sorted(keys_of(VARIANTS, LRS))


def test_a_restarted_chief_leaves_a_live_workers_cell_alone(tmp_path):
    out = tmp_path / "study"
    started, release = tmp_path / "started", tmp_path / "release"
    study = distributed_study(out)
    first_chief = start([*study, "--chief"], PYTHONPATH=HERE)
    busy = start(
        [*study, "--worker", "w1"],
        PYTHONPATH=HERE,
        FAULT_OUT=out,
        FAULT_STARTED=started,
        FAULT_RELEASE=release,
    )
    wait_for(started.exists, "w1 to start its first cell")
    first_chief.kill()
    first_chief.communicate()
    chief = start([*study, "--chief"], PYTHONPATH=HERE)
    other = start([*study, "--worker", "w2"], PYTHONPATH=HERE)
    # w2 gets every other cell from the new chief while w1 still holds its own
    wait_for(lambda: len(records.finished_keys(out)) == 3, "w2's three cells")
    release.touch()
    (busy_text, _), (other_text, _), (chief_text, _) = finish(busy, other, chief)
    busy_cells, other_cells = progress_cells(busy_text), progress_cells(other_text)
    assert len(busy_cells) == 1 and len(other_cells) == 3
    assert sorted(busy_cells + other_cells) == sorted(keys_of(VARIANTS, LRS))
    assert "report:" in chief_text


def test_retry_errors_runs_error_cells_again(tmp_path, monkeypatch):
    import io

    from study_helpers import tiny_spec

    from studies.engine import hypermodel
    from studies.surfaces import runner

    spec = tiny_spec("lr", variants=["none"], lrs=[0.1, 1.0])
    fits, failing = [], {"lr": 1.0}
    original = hypermodel.CellHyperModel.build_cell

    def build(self, s):
        fits.append(s["lr"])
        if s["lr"] == failing.get("lr"):
            raise RuntimeError("out of memory (simulated)")
        return original(self, s)

    monkeypatch.setattr(hypermodel.CellHyperModel, "build_cell", build)

    def run(**kwargs):
        stream = io.StringIO()
        # one cell at a time: each attempt is one build
        runner.run(spec, str(tmp_path), stream=stream, fuse=1, **kwargs)
        return stream.getvalue()

    text = run()
    assert "ERROR RuntimeError: out of memory (simulated)" in text
    report = (tmp_path / "report.md").read_text()
    assert "## Errors" in report and "out of memory (simulated)" in report
    run()  # a resume leaves the error alone
    run(retry_errors=True)  # still failing: run once more, not in a loop
    assert fits == [0.1, 1.0, 1.0]
    failing.clear()
    run(retry_errors=True)
    assert fits == [0.1, 1.0, 1.0, 1.0]
    assert records.read(tmp_path, "variant=none,lr=1.0,seed=0")["status"] == "ok"
    assert "## Errors" not in (tmp_path / "report.md").read_text()


def test_a_chief_on_a_busy_port_is_refused_before_writing(
    tmp_path, monkeypatch, capsys
):
    from studies.surfaces import cli

    for name in (
        "KERASTUNER_TUNER_ID",
        "KERASTUNER_ORACLE_IP",
        "KERASTUNER_ORACLE_PORT",
    ):
        monkeypatch.setenv(name, "")  # restored after: the chief sets them
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        command = study_command("lr", tmp_path / "study", "--variants", "none")
        argv = [*command[3:], "--chief", "--oracle-address", f"127.0.0.1:{port}"]
        assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"cannot listen on 127.0.0.1:{port}" in err
    assert not (tmp_path / "study").exists()


def test_a_worker_without_a_chief_stops_after_the_lease_timeout(tmp_path):
    out = tmp_path / "study"
    study = distributed_study(out, "--lease-timeout", "2")
    worker = start([*study, "--worker", "w1"], PYTHONPATH=HERE)
    started = time.monotonic()
    text, errors = worker.communicate(timeout=120)
    assert worker.returncode == 2
    assert time.monotonic() - started < 90  # not Keras Tuner's hour per call
    lines = [line for line in errors.splitlines() if not any(n in line for n in NOISE)]
    assert any("did not answer for 2 s" in line for line in lines), errors
    assert "Traceback" not in errors


def test_a_record_that_cannot_be_written_stops_the_run(tmp_path, monkeypatch):
    from study_helpers import tiny_spec

    from studies.engine import records
    from studies.surfaces import runner

    original, written = records.write, []

    def write(study_dir, cell, record):
        if written:
            raise OSError(28, "No space left on device")
        written.append(cell)
        return original(study_dir, cell, record)

    monkeypatch.setattr(records, "write", write)
    with pytest.raises(runner.StudyError, match="No space left on device"):
        runner.run(tiny_spec("lr"), str(tmp_path), stream=io.StringIO())
    # the first record stands; no cell was handed out again, none left leased
    assert len(records.finished_keys(tmp_path)) == 1
    assert not [n for n in os.listdir(tmp_path / "leases") if n[0] != "."]
