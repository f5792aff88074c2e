"""Pins the Keras Tuner behaviours `studies.engine.keras_tuner_adapter`
relies on, so a Keras Tuner release that changes one fails here.

Small real runs: an oracle handing out a list of values and a tuner whose
`run_trial` returns a score without building a model.
"""

import copy
import inspect
import json
import math
import socket
import threading

import keras
import keras_tuner as kt
import pytest
from keras_tuner.src.distribute import oracle_chief
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import stateful

from studies.engine import keras_tuner_adapter as adapter

COMPLETED = kt.engine.trial.TrialStatus.COMPLETED
FAILED = kt.engine.trial.TrialStatus.FAILED
ENV = ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")


@pytest.fixture(autouse=True)
def _plain_run(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


class ListOracle(adapter.HandoutOracle):
    """Hands out `values` of `x` in order, then STOPPED (or IDLE, if told)."""

    def __init__(self, values, idle=False, **kwargs):
        space = kt.HyperParameters()
        space.Choice("x", [1, 2, 3, 4])
        super().__init__(
            objective=kt.Objective("score", direction="max"),
            hyperparameters=space,
            **kwargs,
        )
        self.values = list(values)
        self.idle = idle
        self.asked = []  # (tuner_id, trial_id) of each hand_out call

    def hand_out(self, tuner_id, trial_id):
        self.asked.append((tuner_id, trial_id))
        if self.values:
            return {"status": adapter.RUNNING, "values": {"x": self.values.pop(0)}}
        return {"status": adapter.IDLE if self.idle else adapter.STOPPED}


class ListTuner(adapter.CellTuner):
    """Runs each trial handed out; its score is `score(x)`."""

    def __init__(self, oracle, directory, score=float, **kwargs):
        self.score = score
        self.ran = []
        super().__init__(
            oracle=oracle, directory=str(directory), project_name="p", **kwargs
        )

    def trials_to_run(self):
        while True:
            trial = self.oracle.create_trial(self.tuner_id)
            if trial.status != adapter.RUNNING:
                return
            yield trial

    def run_trial(self, trial, *args, **kwargs):
        self.ran.append(trial.hyperparameters.get("x"))
        return {"score": self.score(trial.hyperparameters.get("x"))}


def _names(function):
    return list(inspect.signature(function).parameters)


def test_private_names_and_signatures_the_adapter_uses():
    assert _names(dist_utils.has_chief_oracle) == []
    assert _names(dist_utils.is_chief_oracle) == []
    assert _names(oracle_chief.OracleServicer) == ["oracle"]
    assert _names(stateful.Stateful.reload) == ["self", "fname"]
    assert stateful.Stateful in kt.Oracle.__mro__
    assert _names(kt.Oracle.populate_space) == ["self", "trial_id"]
    assert _names(kt.Oracle._get_oracle_fname) == ["self"]
    assert isinstance(inspect.getattr_static(kt.Oracle, "_project_dir"), property)
    assert _names(kt.Tuner._try_run_and_update_trial) == [
        "self",
        "trial",
        "fit_args",
        "fit_kwargs",
    ]
    assert _names(kt.Tuner._configure_tensorboard_dir) == [
        "self",
        "callbacks",
        "trial",
        "execution",
    ]
    assert _names(kt.Tuner._get_tensorboard_dir) == [
        "self",
        "logdir",
        "trial_id",
        "execution",
    ]
    assert _names(kt.Tuner._deepcopy_callbacks) == ["self", "callbacks"]
    oracle = ListOracle([])
    assert (oracle.trials, oracle.ongoing_trials, oracle.tuner_ids) == ({}, {}, set())
    assert (oracle.start_order, oracle.end_order, oracle._retry_queue) == ([], [], [])


def test_distribution_is_read_from_keras_tuner_variables(monkeypatch):
    assert (adapter.has_chief(), adapter.is_chief(), adapter.is_worker()) == (
        False,
        False,
        False,
    )
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "10.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert (adapter.has_chief(), adapter.is_chief(), adapter.is_worker()) == (
        True,
        True,
        False,
    )
    assert adapter.chief_address() == "10.0.0.1:8000"
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "w1")
    assert (adapter.is_chief(), adapter.is_worker()) == (False, True)


def test_search_runs_each_handed_out_trial_and_reports_its_score(tmp_path):
    oracle = ListOracle([1, 2, 3])
    tuner = ListTuner(oracle, tmp_path, score=lambda x: 10.0 * x, tuner_id="t1")
    tuner.search()
    assert tuner.ran == [1, 2, 3]
    # populate_space was given the asker and a fresh trial id each time
    assert [tuner_id for tuner_id, _ in oracle.asked] == ["t1"] * 4
    trial_ids = [trial_id for _, trial_id in oracle.asked[:3]]
    assert sorted(oracle.trials) == sorted(trial_ids)
    assert oracle.end_order == trial_ids
    for trial_id, x in zip(trial_ids, [1, 2, 3], strict=True):
        trial = oracle.trials[trial_id]
        assert trial.status == COMPLETED
        assert trial.score == 10.0 * x
    # STOPPED took the tuner off the chief's list; nothing is running
    assert oracle.connected_tuners() == set()
    assert oracle.ongoing_trials == {}


def test_a_nan_score_fails_the_trial_and_failures_in_a_row_end_the_search(tmp_path):
    oracle = ListOracle([1, 2, 3, 4])  # Keras Tuner's default limit: 3
    tuner = ListTuner(oracle, tmp_path / "a", score=lambda x: math.nan)
    with pytest.raises(RuntimeError, match="consecutive failures"):
        tuner.search()
    assert tuner.ran == [1, 2, 3]
    oracle = ListOracle([1, 2, 3, 4], max_consecutive_failed_trials=5)
    tuner = ListTuner(oracle, tmp_path / "b", score=lambda x: math.nan)
    tuner.search()
    assert tuner.ran == [1, 2, 3, 4]
    assert [t.status for t in oracle.trials.values()] == [FAILED] * 4


def test_create_trial_bookkeeping_around_the_hand_out(tmp_path):
    oracle = ListOracle([1, 2], idle=True)
    ListTuner(oracle, tmp_path)
    first = oracle.create_trial("a")
    assert first.status == adapter.RUNNING
    assert first.hyperparameters.get("x") == 1
    # a tuner with a running trial gets it again, without a hand-out
    assert oracle.create_trial("a").trial_id == first.trial_id
    assert len(oracle.asked) == 1
    assert oracle.connected_tuners() == {"a"}
    # forgotten, it is no longer waited for and gets a new trial
    oracle.forget_tuner("a")
    assert oracle.connected_tuners() == set()
    second = oracle.create_trial("a")
    assert (second.hyperparameters.get("x"), len(oracle.asked)) == (2, 2)
    # IDLE: no trial is recorded and the asker stays connected
    oracle.forget_tuner("a")
    assert oracle.create_trial("b").status == adapter.IDLE
    assert len(oracle.trials) == 2
    assert oracle.connected_tuners() == {"b"}
    with pytest.raises(RuntimeError, match="outside create_trial"):
        oracle.populate_space("9")


def test_reports_of_a_trial_never_handed_out_are_accepted(tmp_path):
    oracle = ListOracle([1])
    ListTuner(oracle, tmp_path)
    assert oracle.get_trial("0042").trial_id == "0042"
    assert oracle.update_trial("0042", {"score": 1.0}).trial_id == "0042"
    trial = oracle.create_trial("a")
    oracle.ongoing_trials["b"] = adapter.Trial(oracle.get_space(), trial_id="0042")
    oracle.end_trial(adapter.Trial(oracle.get_space(), trial_id="0042"))
    assert "0042" not in oracle.trials
    assert list(oracle.ongoing_trials) == ["a"]
    assert oracle.ongoing_trials["a"].trial_id == trial.trial_id


def test_reload_reads_keras_tuners_files_and_skips_broken_ones(tmp_path):
    oracle = ListOracle([1, 2, 3])
    tuner = ListTuner(oracle, tmp_path)
    tuner.search()
    project = tmp_path / "p"
    assert oracle._get_oracle_fname() == str(project / "oracle.json")
    state = json.loads((project / "oracle.json").read_text())
    assert {"start_order", "end_order", "ongoing_trials", "retry_queue"} <= set(state)
    ids = sorted(oracle.trials)
    for trial_id in ids:
        saved = adapter.Trial.load(str(project / f"trial_{trial_id}" / "trial.json"))
        assert saved.trial_id == trial_id
        assert saved.score == oracle.trials[trial_id].score
    # the tuner's file (named by the id Keras Tuner reads from the
    # environment, "tuner0" outside a distributed search; "chief" for a
    # chief) makes Keras Tuner reload the oracle, through the adapter
    assert (project / "tuner0.json").exists()
    reloaded = ListOracle([])
    ListTuner(reloaded, tmp_path)
    assert sorted(reloaded.trials) == ids
    assert reloaded.end_order == oracle.end_order
    # a trial file and the oracle file cut short by a kill are skipped
    (project / f"trial_{ids[0]}" / "trial.json").write_text('{"trial_id": ')
    (project / "oracle.json").write_text('{"ongoing')
    broken = ListOracle([])
    ListTuner(broken, tmp_path)
    assert sorted(broken.trials) == ids[1:]
    assert (broken.ongoing_trials, broken.tuner_ids) == ({}, set())
    assert broken._retry_queue == []


def test_synchronized_overrides_run_one_at_a_time(tmp_path):
    entered, release = threading.Event(), threading.Event()

    class Blocking(ListOracle):
        def hand_out(self, tuner_id, trial_id):
            entered.set()
            release.wait(30)
            return super().hand_out(tuner_id, trial_id)

    oracle = Blocking([1])
    ListTuner(oracle, tmp_path)
    holder = threading.Thread(target=oracle.create_trial, args=("a",))
    holder.start()
    assert entered.wait(30)
    others = {
        "create_trial": lambda: oracle.create_trial("b"),
        "update_trial": lambda: oracle.update_trial("0042", {"score": 1.0}),
        "end_trial": lambda: oracle.end_trial(
            adapter.Trial(oracle.get_space(), trial_id="0042")
        ),
    }
    done = {name: threading.Event() for name in others}
    threads = [
        threading.Thread(target=lambda f=f, e=done[name]: (f(), e.set()))
        for name, f in others.items()
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(0.3)
        # none finished while create_trial held the oracle
        assert not any(event.is_set() for event in done.values())
    finally:
        release.set()
    for thread in [holder, *threads]:
        thread.join(30)
    assert all(event.is_set() for event in done.values())


def test_configure_tensorboard_points_the_callback_at_the_given_folder(tmp_path):
    from tensorboard.plugins.hparams import api as hparams_api

    oracle = ListOracle([2])
    tuner = ListTuner(oracle, tmp_path / "tuner")
    trial = oracle.create_trial("a")
    board = keras.callbacks.TensorBoard(str(tmp_path / "logs"))
    other = keras.callbacks.Callback()
    callbacks = tuner.copy_callbacks([board, other])
    assert callbacks[0] is not board and type(callbacks[0]) is type(board)
    folder = str(tmp_path / "logs" / ".running" / "cell.1234")
    tuner.configure_tensorboard(callbacks, trial, folder)
    assert callbacks[0].log_dir == folder
    assert board.log_dir == str(tmp_path / "logs")
    assert len(callbacks) == 3
    assert isinstance(callbacks[2], hparams_api.KerasCallback)
    assert tuner._tensorboard_dirs == {}
    with pytest.raises(kt.errors.FatalValueError):
        tuner.copy_callbacks([threading.Lock()])
    with pytest.raises(TypeError):
        copy.deepcopy(threading.Lock())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_worker_runs_trials_served_by_the_chiefs_oracle(tmp_path, monkeypatch):
    chief_oracle = ListOracle([1, 2])
    ListTuner(chief_oracle, tmp_path / "chief")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(_free_port()))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "w1")
    # Keras Tuner turns a worker's oracle into a client of the chief's
    worker = ListTuner(ListOracle([4]), tmp_path / "worker", score=lambda x: x + 0.5)
    assert not isinstance(worker.oracle, kt.Oracle)
    with adapter.oracle_server(chief_oracle, adapter.chief_address()):
        thread = threading.Thread(target=worker.search)
        thread.start()
        thread.join(60)
        assert not thread.is_alive()
    assert worker.ran == [1, 2]
    assert [tuner_id for tuner_id, _ in chief_oracle.asked] == ["w1"] * 3
    scores = sorted(t.score for t in chief_oracle.trials.values())
    assert scores == [1.5, 2.5]
    assert chief_oracle.connected_tuners() == set()
    assert chief_oracle.ongoing_trials == {}
