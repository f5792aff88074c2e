"""The grid oracle resumes an interrupted study: every missing cell once, no repeats."""

import collections
import signal
import time

import pytest
from study_helpers import progress_cells, run, start, study_command, tiny_spec

from studies.engine import group_fit, grouped_search, progress, records
from studies.engine.oracle import handout_order
from studies.science.spec import cell_key


class Killed(BaseException):
    """Stands in for a kill: not an Exception, so nothing records it."""


def spec():
    return tiny_spec("lr", lrs=[0.1, 1.0, 3.0])  # 6 cells


@pytest.fixture
def fits(monkeypatch):
    """Counts model fits per cell, and kills the process at a chosen moment."""
    counts = collections.Counter()
    plan = {}
    done = []
    original_fit = group_fit.fit_group
    original_done = progress.Progress.cell_done

    def fit(hm, settings, *args, **kwargs):
        # a group: every member's cell is fitted once more
        before = sum(counts.values())
        for s in settings:
            counts[cell_key({n: s[n] for n in hm.spec.axes})] += 1
        if before < plan.get("during_fit", 0) <= sum(counts.values()):
            raise Killed
        return original_fit(hm, settings, *args, **kwargs)

    def cell_done(self, *args):
        # after the record is written, before Keras Tuner ends the trial
        done.append(args)
        if plan.get("after_record") == len(done):
            raise Killed
        return original_done(self, *args)

    monkeypatch.setattr(grouped_search, "fit_group", fit)
    monkeypatch.setattr(progress.Progress, "cell_done", cell_done)
    return counts, plan


def rerun(study_dir, counts):
    """The cells a resume runs again: fitted, and without a record."""
    return set(counts) - records.finished_keys(study_dir)


@pytest.mark.parametrize(
    "kill, fuse",
    [({"during_fit": 1}, 1), ({"during_fit": 4}, 4), ({"after_record": 3}, None)],
)
def test_resume_after_interruption(tmp_path, fits, kill, fuse):
    counts, plan = fits
    plan.update(kill)
    with pytest.raises(Killed):
        run(spec(), tmp_path, fuse=fuse)
    again = rerun(tmp_path, counts)
    ((moment, n),) = kill.items()
    if moment == "during_fit":  # the interrupted cell had no record
        assert cell_key(handout_order(spec())[n - 1]) in again
    plan.clear()
    summary, _ = run(spec(), tmp_path, fuse=fuse)
    assert summary["cells_finished"] == 6
    keys = {cell_key(c) for c in spec().cells()}
    assert records.finished_keys(tmp_path) == keys
    # run again once: the cells that had started but had no record
    expected = {key: 2 if key in again else 1 for key in keys}
    assert dict(counts) == expected


def test_resume_with_oracle_and_trial_files_cut_short(tmp_path, fits):
    counts, plan = fits
    plan["during_fit"] = 3
    with pytest.raises(Killed):
        run(spec(), tmp_path)
    project = tmp_path / "tuner" / "lr"
    (project / "oracle.json").write_text('{"ongoing_trials": {"tun')
    next(project.glob("trial_*/trial.json")).write_text("{")
    again = rerun(tmp_path, counts)
    plan.clear()
    summary, _ = run(spec(), tmp_path)
    assert summary["cells_finished"] == 6
    assert sum(counts.values()) == 6 + len(again) and max(counts.values()) == 2


def test_finished_study_reruns_nothing(tmp_path, fits):
    counts, _ = fits
    run(spec(), tmp_path)
    counts.clear()
    summary, text = run(spec(), tmp_path)
    assert not counts and summary["cells_finished"] == 6
    assert progress_cells(text) == []


def test_kill_9_mid_study_then_resume(tmp_path):
    out = tmp_path / "study"
    command = study_command(
        "lr",
        out,
        "--epochs",
        "2",
        "--seeds",
        "2",
        "--variants",
        "none,bn",
        "--lrs",
        "0.1,1,3",
    )
    first = start(command)
    deadline = time.monotonic() + 120
    while len(records.finished_keys(out)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first_text = first.communicate()[0]
    before = records.finished_keys(out)
    assert 3 <= len(before) < 12
    second = start(command)
    second_text, second_err = second.communicate(timeout=300)
    assert second.returncode == 0, second_err[-2000:]
    # the killed run's lease names a process that no longer exists: free at once
    assert "waiting for" not in second_text
    resumed = progress_cells(second_text)
    assert not set(resumed) & before  # nothing finished is repeated
    assert len(resumed) == len(set(resumed)) == 12 - len(before)
    assert len(records.finished_keys(out)) == 12
    assert set(progress_cells(first_text)) <= before
