"""A chief and two workers on loopback share one study; every cell runs once."""

import os
import socket
import subprocess
import sys

from conftest import progress_cells

from studies import records

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers(tmp_path):
    out = tmp_path / "study"
    address = f"127.0.0.1:{free_port()}"
    study = [
        sys.executable,
        "-m",
        "studies",
        "lr",
        "--dataset",
        "digits",
        "--train-size",
        "120",
        "--epochs",
        "1",
        "--seeds",
        "2",
        "--variants",
        "none,bn",
        "--lrs",
        "0.1,1,3",
        "--out",
        str(out),
        "--oracle-address",
        address,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"

    def start(*role):
        return subprocess.Popen(
            [*study, *role],
            cwd=ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    chief = start("--chief")
    workers = [start("--worker", "w1"), start("--worker", "w2")]
    outputs = [w.communicate(timeout=300) for w in workers]
    chief_out, chief_err = chief.communicate(timeout=120)
    for process, (_, err) in zip(workers, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    assert chief.returncode == 0, chief_err[-3000:]

    ran = [progress_cells(text) for text, _ in outputs]
    every = ran[0] + ran[1]
    assert len(every) == len(set(every)) == 12  # each cell exactly once
    assert all(ran), "both workers ran cells"
    assert len(records.finished_keys(out)) == 12
    assert (out / "report.md").exists() and "report:" in chief_out
