"""Cell leases, the cost-based ETA and the start-up log filter, in-process."""

import json
import math
import os
import subprocess
import sys
import time

import pytest

from studies import quiet
from studies.engine import leases, progress, records
from studies.science.spec import make_spec


def test_a_live_lease_keeps_its_cell_and_a_finished_one_records_it(tmp_path):
    book = leases.Leases(tmp_path, timeout=60)
    always = lambda: True  # noqa: E731
    assert book.take("c", "w1", "0", always) == (True, None)
    assert book.take("c", "w2", "1", always) == (False, None)  # handed out: live
    assert book.adopt("c", "w2", "1") is None  # not w2's
    beat = book.adopt("c", "w1", "0")
    assert beat is not None and book.read("c")["pid"] == os.getpid()
    assert set(book.live()) == {"c"}
    wrote = []
    assert book.finish(beat, lambda: wrote.append(1))
    assert wrote == [1] and book.read("c") is None and book.live() == {}
    # a record written while another process looked: the cell is not taken
    assert book.take("d", "w2", "2", lambda: False) == (False, None)


def test_a_silent_lease_dies_after_the_timeout(tmp_path):
    book = leases.Leases(tmp_path, timeout=60)
    assert book.take("c", "w1", "0", lambda: True)[0]
    lease = book.read("c")
    # adopted by a process on another machine, which then went silent
    with open(book._path("c"), "w") as f:
        json.dump({**lease, "host": "elsewhere", "pid": 1}, f)
    assert book.is_live(book.read("c"))
    old = time.time() - 61
    os.utime(book._path("c"), (old, old))
    assert not book.is_live(book.read("c"))
    taken, previous = book.take("c", "w2", "1", lambda: True)
    assert taken and previous["holder"] == "w1" and previous["age"] > 60


def test_a_lease_lives_by_its_holders_timeout_when_longer(tmp_path):
    holder = leases.Leases(tmp_path, timeout=600)  # heartbeats every 30 s
    impatient = leases.Leases(tmp_path, timeout=10)
    assert holder.take("c", "w1", "0", lambda: True, here=True)[0]
    old = time.time() - 20  # 20 s since its last heartbeat: not late for it
    os.utime(holder._path("c"), (old, old))
    with open(holder._path("c")) as f:
        lease = json.load(f)
    with open(holder._path("c"), "w") as f:
        json.dump({**lease, "host": "elsewhere"}, f)
    os.utime(holder._path("c"), (old, old))
    assert impatient.is_live(impatient.read("c"))


def test_a_lease_of_a_dead_process_on_this_machine_dies_at_once(tmp_path):
    book = leases.Leases(tmp_path, timeout=3600)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert book.take("c", "w1", "0", lambda: True)[0]
    lease = book.read("c")
    with open(book._path("c"), "w") as f:
        json.dump({**lease, "host": leases.HOST, "pid": child.pid}, f)
    deadline = time.monotonic() + 30
    while (leases._stat(child.pid) or "Z")[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not book.is_live(book.read("c"))  # exited, not yet reaped
    child.wait()
    assert not book.is_live(book.read("c"))
    # a live pid that started at another time is a reused pid: dead too
    with open(book._path("c"), "w") as f:
        json.dump({**lease, "host": leases.HOST, "pid": os.getpid(), "started": 1}, f)
    if leases._start_time(os.getpid()) is not None:
        assert not book.is_live(book.read("c"))


def test_a_taken_over_lease_does_not_record(tmp_path):
    book = leases.Leases(tmp_path, timeout=2)  # heartbeat every 0.5 s
    assert book.take("c", "w1", "0", lambda: True)[0]
    beat = book.adopt("c", "w1", "0")
    time.sleep(3)
    assert book.is_live(book.read("c"))  # the heartbeat keeps it alive
    # another process took it over (this one looked dead to it)
    with book.locked():
        book._write("c", {"cell": "c", "holder": "w2", "trial_id": "1"})
    deadline = time.monotonic() + 5
    while not beat.lost and time.monotonic() < deadline:
        time.sleep(0.05)
    assert beat.lost
    assert not book.finish(beat, lambda: pytest.fail("recorded a lost cell"))
    assert book.read("c")["holder"] == "w2"


def test_the_eta_adds_the_cost_of_each_remaining_cell_by_its_variant(tmp_path):
    spec = make_spec("lr", variants=["none", "bn"], lrs=[0.1, 1.0, 3.0], seeds=2)
    cells = spec.cells()
    cost = {"none": 1.0, "bn": 4.0}
    finished = {}
    for cell in cells[:1] + cells[6:7]:  # one cell of each variant has finished
        key = ",".join(f"{k}={v}" for k, v in cell.items())
        finished[key] = {"cell": cell, "seconds": cost[cell["variant"]]}
    assert progress.estimate_remaining(spec, finished) == pytest.approx(5 * 1 + 5 * 4)
    assert progress.estimate_remaining(spec, finished, running=2) == pytest.approx(12.5)
    # only a cheap variant seen so far: every cell at its cost (the old ETA's view)
    first = dict(list(finished.items())[:1])
    assert progress.estimate_remaining(spec, first) == pytest.approx(11 * 1.0)
    assert math.isnan(progress.estimate_remaining(spec, {}))


def test_progress_lines_read_the_records_and_live_leases(tmp_path):
    spec = make_spec("lr", variants=["none", "bn"], lrs=[0.1], seeds=1)
    none, bn = spec.cells()
    outcome = {"final_val_accuracy": 0.5, "diverged": False, "seconds": 2.0}
    records.write(tmp_path, none, {**outcome, "status": "ok"})
    records.write(tmp_path, bn, {**outcome, "status": "error", "message": "Boom: x"})
    line = progress.Progress(spec, str(tmp_path)).line(bn, {**outcome}, "error")
    assert line.startswith("[2/2]") and "ERROR" in line and "ETA 0s" in line


def test_start_up_noise_is_dropped_and_other_lines_kept(capfd):
    with quiet.filtered_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is ")
        os.write(2, b"called are written to STDERR\n")
        os.write(2, b"E0000 00:00:1.2 9 cuda_platform.cc:52] failed call to cuInit: ")
        os.write(2, b"INTERNAL: CUDA error\n")
        os.write(2, b"W0000 00:00:1.3 9 op.cc:1] a real warning\n")
        print("a Python warning", file=sys.stderr)
    lines = capfd.readouterr().err.splitlines()
    assert sorted(lines) == [
        "W0000 00:00:1.3 9 op.cc:1] a real warning",
        "a Python warning",
    ]


def test_a_cells_custom_gradients_are_unregistered_after_it():
    import keras
    import numpy as np
    import tensorflow as tf

    import kbn
    from studies.engine import cell_memory

    registry = cell_memory._custom_gradients()
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")

    @tf.custom_gradient
    def scaled(v):  # what Keras and TensorFlow register per traced graph
        return v * 2.0, lambda dv: dv * 2.0

    def train_once():
        model = keras.Sequential([keras.Input((4,)), kbn.BatchNormalization()])

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(scaled(model(x, training=True)) ** 2)
            return tape.gradient(loss, model.trainable_weights)

        return [g.numpy() for g in step(x)]

    before = set(registry)
    with cell_memory.freed_after():
        first = train_once()
        assert any(n.startswith("CustomGradient-") for n in set(registry) - before)
    assert {
        n for n in set(registry) - before if n.startswith("CustomGradient-")
    } == set()
    # the next cell traces afresh and differentiates as before
    with cell_memory.freed_after():
        again = train_once()
    for a, b in zip(first, again, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_memory_stays_flat_over_a_long_grid():
    from benchmarks import study_benchmark

    result = study_benchmark.memory(cells=120)
    assert result["cells"] == 120
    rss = result["rss_mb"]
    # measured: about 1 MB per cell with the cells' graphs freed, 8 without
    assert rss["growth_per_cell_second_half"] < 3, result
    assert rss["at_end"] - rss["after_half"] < 150, result
