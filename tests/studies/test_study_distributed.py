"""A chief and two workers on loopback share one study; every cell runs once."""

import socket

from study_helpers import progress_cells, start, study_command

from studies.engine import records


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers(tmp_path):
    out = tmp_path / "study"
    address = f"127.0.0.1:{free_port()}"
    study = study_command(
        "lr",
        out,
        "--seeds",
        "2",
        "--variants",
        "none,bn",
        "--lrs",
        "0.1,1,3",
        "--oracle-address",
        address,
    )
    chief = start([*study, "--chief"])
    workers = [start([*study, "--worker", "w1"]), start([*study, "--worker", "w2"])]
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
