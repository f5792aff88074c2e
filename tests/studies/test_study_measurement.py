"""What a cell measures: per-batch divergence, step budgets, the three-way split,
and the same results from the same command."""

import csv
import math

import keras
import numpy as np
import pytest
from study_helpers import start, study_command

from studies.engine import budget, callbacks
from studies.inputs import data


class _Means(keras.callbacks.Callback):
    """Keeps Keras's reported (running-mean) loss after every batch."""

    def __init__(self):
        super().__init__()
        self.means = []

    def on_train_batch_end(self, batch, logs=None):
        self.means.append(float(logs["loss"]))


def _frozen_model():
    # zero weights and LR 0: the loss of a batch is mean(y^2) of that batch
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="zeros")]
    )
    model.compile(keras.optimizers.SGD(0.0), "mse")
    return model


def test_divergence_monitor_reads_the_batch_loss_not_the_running_mean():
    x = np.zeros((100, 2), "float32")
    y = np.zeros((100, 1), "float32")
    y[50:60] = 60.0  # batch 5 of 10 has loss 3600; the mean there is 600
    monitor = callbacks.DivergenceMonitor(1e3, batch_size=10, num_samples=100)
    means = _Means()
    _frozen_model().fit(
        x, y, batch_size=10, epochs=1, shuffle=False, verbose=0,
        callbacks=[means, monitor],
    )  # fmt: skip
    assert means.means[5] == pytest.approx(600.0)  # below the threshold
    assert monitor.diverged
    assert monitor.last_batch_loss == pytest.approx(3600.0, rel=1e-4)
    assert len(means.means) == 6  # stopped at the spike


def test_divergence_monitor_restarts_each_epoch_and_passes_normal_runs():
    x = np.zeros((40, 2), "float32")
    y = np.full((40, 1), 3.0, "float32")  # loss 9 on every batch
    calm = callbacks.DivergenceMonitor(1e3, batch_size=10, num_samples=40)
    _frozen_model().fit(
        x, y, batch_size=10, epochs=3, shuffle=False, verbose=0, callbacks=[calm]
    )
    assert not calm.diverged and calm.last_batch_loss == pytest.approx(9.0)

    # epoch 2 starts with a spike: the running mean restarts with the epoch,
    # so batch 0's mean is the batch's own loss, and nothing of epoch 1 leaks
    monitor = callbacks.DivergenceMonitor(1e3, batch_size=10, num_samples=40)
    monitor.set_model(_frozen_model())
    for batch in range(4):
        monitor.on_train_batch_end(batch, {"loss": 9.0})
    monitor.on_epoch_begin(1)
    monitor.on_train_batch_end(0, {"loss": 1500.0})
    assert monitor.diverged and monitor.last_batch_loss == pytest.approx(1500.0)
    assert monitor.model.stop_training


def test_classification_divergence_is_relative_with_the_threshold_as_floor():
    # the study's classification monitor: limit max(1e3, 1e3 * first loss)
    def monitor(*losses):
        m = callbacks.DivergenceMonitor(1e3, relative=True, floor=1e3)
        m.set_model(_frozen_model())
        for epoch, loss in enumerate(losses):  # one batch an epoch: its own loss
            m.on_epoch_begin(epoch)
            m.on_train_batch_end(0, {"loss": loss})
        return m

    # huge initial logits: 5e3 at batch 1 and falling is training (the old
    # absolute 1e3 called it diverged at batch 1) ...
    assert not monitor(5e3, 4e3, 3e3).diverged
    absolute = callbacks.DivergenceMonitor(1e3)
    absolute.set_model(_frozen_model())
    absolute.on_train_batch_end(0, {"loss": 5e3})
    assert absolute.diverged
    # ... but growing 1000x past its first loss is divergence, as NaN is
    assert monitor(5e3, 6e6).diverged and monitor(5e3, math.nan).diverged
    # a small first loss (0.5) still gets the absolute 1e3, not 1e3 x 0.5
    assert not monitor(0.5, 900.0).diverged and monitor(0.5, 1100.0).diverged
    assert callbacks.divergence_limit(1e3, 2.0, True, 1e3) == 2e3
    assert callbacks.divergence_limit(1e3, 0.5, True, 1e3) == 1e3
    assert callbacks.divergence_limit(1e3, 0.5, True) == 500.0  # regression
    assert callbacks.divergence_limit(1e3, None, True, 1e3) == 1e3  # none yet


def test_divergence_monitor_weighs_a_short_last_batch():
    x = np.zeros((25, 2), "float32")
    y = np.zeros((25, 1), "float32")
    y[20:] = 40.0  # the last batch holds 5 examples at loss 1600
    monitor = callbacks.DivergenceMonitor(1e3, batch_size=10, num_samples=25)
    _frozen_model().fit(
        x, y, batch_size=10, epochs=1, shuffle=False, verbose=0, callbacks=[monitor]
    )
    assert monitor.diverged
    assert monitor.last_batch_loss == pytest.approx(1600.0, rel=1e-4)


def test_step_budget_stops_at_exactly_that_many_steps():
    x = np.random.default_rng(0).normal(size=(100, 2)).astype("float32")
    y = np.zeros((100, 1), "float32")
    model = _frozen_model()
    settings = {"steps": 25, "epochs": None, "batch_size": 10}
    epochs = budget.epochs_for(settings, len(x))
    counter = callbacks.StepBudget(25)
    history = model.fit(
        x, y, batch_size=10, epochs=epochs, verbose=0, callbacks=[counter]
    )
    assert epochs == 3 and len(history.history["loss"]) == 3
    assert counter.steps_run == 25
    assert int(model.optimizer.iterations.numpy()) == 25
    assert budget.epochs_for({"steps": None, "epochs": 7}, 100) == 7


def test_three_way_split_holds_out_the_test_set():
    digits = data.load("digits")
    assert (len(digits.x_train), len(digits.x_val), len(digits.x_test)) == (
        1077,
        270,
        450,
    )

    def keys(x):
        return {row.tobytes() for row in x.reshape(len(x), -1)}

    train, val, test = keys(digits.x_train), keys(digits.x_val), keys(digits.x_test)
    assert not (train & val) and not (val & test) and not (train & test)
    # stratified: every class keeps about its share in the validation split
    shares = np.bincount(digits.y_val, minlength=10) / len(digits.y_val)
    assert np.all(np.abs(shares - 0.1) < 0.02)
    # subsampling the training split never touches validation or test
    small = data.load("digits", train_size=100)
    assert len(small.x_train) == 100
    assert np.array_equal(small.x_val, digits.x_val)
    assert np.array_equal(small.x_test, digits.x_test)
    assert 0.09 < digits.test_chance < 0.12 and "450 test" in digits.describe()


# what differs between runs by nature: time, memory, which run recorded it
_TIMING = {
    "seconds",
    "fit_seconds",
    "tuner_seconds",
    "run",
    "peak_rss_mb",
    "finished_at",
    "rss_mb",
}


def _results(path):
    with open(path) as f:
        return [
            {k: v for k, v in row.items() if k not in _TIMING}
            for row in csv.DictReader(f)
        ]


def test_the_same_command_writes_the_same_results(tmp_path):
    options = ["--lrs", "0.1,3", "--variants", "none,bn-batch-statistics"]
    options += ["--steps", "7"]  # 3 steps per epoch: a partial third epoch
    for name in ("a", "b"):
        command = study_command("lr", tmp_path / name, *options)
        del command[command.index("--epochs") : command.index("--epochs") + 2]
        process = start(command)
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-2000:]
    first, second = (_results(tmp_path / n / "results.csv") for n in "ab")
    assert len(first) == 4 and first == second  # every column but the timings
    assert {row["steps_run"] for row in first if row["status"] == "ok"} == {"7"}
    assert all(0 <= float(row["final_test_accuracy"]) <= 1 for row in first)
