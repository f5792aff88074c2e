"""The Keras Tuner HyperModel that builds and fits one cell of a study.

Each grid axis is a `hp.Choice` with the exact grid values (a log-sampled
`hp.Float` would give unordered mid-bin samples), so the HParams dashboard
shows the grid as it is. The model comes from the study's builder
(`studies.inputs.builders`), compiled for the data's task
(`studies.science.tasks`). Fitting stops early when the loss diverges,
and the cell's outcome is a dict of finite numbers whatever happened.
"""

import math

import keras
import keras_tuner as kt
import numpy as np

from studies.engine import instruments, optimizers
from studies.inputs import builders
from studies.science import tasks

_CHUNK = 1024  # examples per forward pass when scoring a split


class DivergenceMonitor(keras.callbacks.Callback):
    """Stops training when one batch's loss is NaN, inf or above `threshold`.

    Divergence is a result of a learning-rate study, not a failure, so this
    only stops the fit and remembers that it happened (unlike
    `keras.callbacks.TerminateOnNaN`, it also catches a loss that explodes
    without overflowing).

    Keras reports the running mean of the loss over the epoch so far, which
    dilutes a spike (one batch at 20x the threshold late in an epoch can leave
    the mean below it). The batch's own loss is recovered from consecutive
    means, weighted by the examples seen, as Keras weights them:
    `loss_k = (W_k * mean_k - W_(k-1) * mean_(k-1)) / (W_k - W_(k-1))`.

    Args:
        threshold: Largest loss still considered training (Bjorck et al. 2018
            flag divergence at 1e3).
        batch_size: Examples per batch (None: all batches weigh the same).
        num_samples: Examples per epoch, for the size of the last batch.
        relative: The threshold multiplies the first batch's loss (for a
            regression loss, whose scale is the targets').
    """

    def __init__(
        self, threshold=1e3, batch_size=None, num_samples=None, relative=False
    ):
        super().__init__()
        self.threshold = threshold
        self.batch_size = batch_size
        self.num_samples = num_samples
        self.relative = relative
        self.initial_loss = None
        self.diverged = False
        self.last_batch_loss = math.nan
        self._seen = self._total = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._seen = self._total = 0.0

    def _examples_through(self, batch):
        if self.batch_size is None:
            return float(batch + 1)
        seen = (batch + 1) * self.batch_size
        return float(min(seen, self.num_samples) if self.num_samples else seen)

    def on_train_batch_end(self, batch, logs=None):
        mean = float((logs or {}).get("loss", 0.0))
        seen = self._examples_through(batch)
        total = mean * seen
        weight = seen - self._seen
        loss = (total - self._total) / weight if weight > 0 else mean
        self._seen, self._total = seen, total
        self.last_batch_loss = loss
        if self.initial_loss is None and math.isfinite(loss):
            self.initial_loss = abs(loss)
        scale = (self.initial_loss or 1.0) if self.relative else 1.0
        limit = self.threshold * scale
        if not math.isfinite(loss) or loss > limit:
            self.diverged = True
            self.model.stop_training = True


class StepBudget(keras.callbacks.Callback):
    """Counts optimizer steps and, given a budget, stops training at it.

    Keras still runs the validation of the epoch it stops in, so the last
    epoch's numbers are those after exactly `steps` steps.

    Args:
        steps: The budget in optimizer steps, or None to count only.
    """

    def __init__(self, steps=None):
        super().__init__()
        self.steps = steps
        self.steps_run = 0
        self._epoch_start = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.steps_run

    def on_train_batch_end(self, batch, logs=None):
        self.steps_run = self._epoch_start + batch + 1
        if self.steps is not None and self.steps_run >= self.steps:
            self.model.stop_training = True


def epochs_for(settings, num_samples):
    """The epochs to ask `fit` for: the setting, or enough to hold the step budget."""
    if settings.get("steps") is None:
        return settings["epochs"]
    return math.ceil(
        settings["steps"] / math.ceil(num_samples / settings["batch_size"])
    )


def total_steps(settings, num_samples):
    """Optimizer steps a cell takes if it runs its whole budget."""
    if settings.get("steps") is not None:
        return settings["steps"]
    return settings["epochs"] * math.ceil(num_samples / settings["batch_size"])


class CellHyperModel(kt.HyperModel):
    """Builds and fits the model of one study cell.

    Args:
        spec: The `StudySpec`; its axes become `hp.Choice`s, its fixed
            settings are used as they are.
        dataset: The `data.Dataset` (its shapes, task, chance and baselines;
            the test split is scored once after training, never used for
            selection).
        builder: The model builder (`studies.inputs.builders`).
    """

    def __init__(self, spec, dataset, builder):
        super().__init__(name=spec.study)
        self.spec = spec
        self.task = tasks.get(dataset.task)
        self.dataset = dataset
        self.builder = builder
        self.normalization = None  # of the model built last

    def declare_hyperparameters(self, hp):
        for name, values in self.spec.axes.items():
            hp.Choice(name, list(values), ordered=not isinstance(values[0], str))

    def settings(self, hp):
        """The fixed settings with this cell's axis values on top."""
        return self.spec.settings({name: hp.get(name) for name in self.spec.axes})

    def build(self, hp):
        self.declare_hyperparameters(hp)
        s = self.settings(hp)
        keras.utils.set_random_seed(s["seed"])
        model, self.normalization, _ = builders.build(
            self.builder,
            s,
            self.dataset.input_shape,
            self.dataset.outputs,
            s["model"],
        )
        optimizer = optimizers.make(s, total_steps(s, len(self.dataset.x_train)))
        if self.task.name == tasks.REGRESSION:
            model.compile(
                optimizer=optimizer,
                loss="mse",
                metrics=[keras.metrics.MeanSquaredError(name="mse")],
            )
        else:
            model.compile(
                optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
            )
        return model

    def fit(
        self, hp, model, x, y, validation_data, callbacks=(), log_dir=None, **kwargs
    ):
        """Fits `model` and returns the cell's outcome (finite numbers).

        Args:
            log_dir: The cell's TensorBoard folder, where the instruments (if
                the study has any) write.

        Returns:
            A dict with `score` (the tuner's objective: the final validation
            score, chance for a diverged cell), `final_val_<metric>`,
            `best_val_<metric>`, `final_train_<metric>` (inference mode, on
            the whole training split), `final_test_<metric>` (NaN without
            test data), where the metric is `accuracy` or `r2`
            (`studies.science.tasks`); `final_val_loss`, `best_val_loss`,
            `final_train_loss`, `diverged` (0 or 1), `epochs_run` and
            `steps_run`; for regression also `final_test_loss`. Losses are
            NaN where training diverged. With instruments, also `curves`
            (see `instruments.curves`) and `batch_noise`.
        """
        s = self.settings(hp)
        monitor = DivergenceMonitor(
            s["divergence_threshold"],
            s["batch_size"],
            len(x),
            relative=self.task.relative_divergence,
        )
        budget = StepBudget(s.get("steps"))
        probes = instruments.callbacks(
            s, x, y, validation_data, log_dir, self.scorer, self.task.metric
        )
        history = model.fit(
            x,
            y,
            validation_data=validation_data,
            batch_size=s["batch_size"],
            epochs=epochs_for(s, len(x)),
            callbacks=[*callbacks, *probes, budget, monitor],
            verbose=0,
            **kwargs,
        )
        outcome = self.outcome(history.history, monitor.diverged)
        train_key = self.task.key("train")
        if not outcome["diverged"]:
            # inference mode, on the whole split: Keras's running metric is a
            # training-mode mean over the last epoch (noise and dropout on),
            # which would understate the train/validation gap
            outcome[train_key] = self.scorer(model, x, y, "train")
        outcome.update(self.test_scores(model, outcome["diverged"]))
        outcome["steps_run"] = budget.steps_run
        if probes:
            steps_per_epoch = math.ceil(len(x) / s["batch_size"])
            outcome["curves"] = instruments.curves(probes, steps_per_epoch)
        if "batch_noise" in s["instruments"] and not outcome["diverged"]:
            layers = self.normalization.layers if self.normalization else []
            outcome["batch_noise"] = instruments.batch_noise(
                model, layers, x, s["batch_size"], s["seed"]
            )
        return outcome

    def scorer(self, model, x, y, split):
        """The task's score of `model` on `(x, y)` from `split` (inference mode)."""
        if self.task.name == tasks.REGRESSION:
            loss = mean_squared_error(model, x, y)
            return 1.0 - loss / self.dataset.baseline_loss(split)
        return accuracy(model, x, y)

    def test_scores(self, model, diverged):
        """The score on the held-out test split (chance if the cell diverged)."""
        key = self.task.key("test")
        x, y = self.dataset.x_test, self.dataset.y_test
        if self.task.name == tasks.REGRESSION:
            loss = math.nan if diverged else mean_squared_error(model, x, y)
            score = (
                self.dataset.test_chance
                if diverged
                else (1.0 - loss / self.dataset.baseline_loss("test"))
            )
            return {key: float(score), "final_test_loss": loss}
        score = self.dataset.test_chance if diverged else accuracy(model, x, y)
        return {key: float(score)}

    def failed_outcome(self):
        """The outcome recorded for a cell that raised an error."""
        outcome = self.outcome({}, diverged=False)
        return {
            **outcome,
            "diverged": 0,
            "epochs_run": 0,
            self.task.key("test"): math.nan,
            "steps_run": 0,
        }

    def outcome(self, history, diverged):
        """Summarizes a Keras history dict into the cell's outcome."""
        chance = self.dataset.chance
        val_loss = np.asarray(history.get("val_loss", [np.nan]), dtype=float)
        diverged = bool(diverged) or not np.isfinite(val_loss[-1])
        if self.task.name == tasks.REGRESSION:
            baseline = self.dataset.baseline_loss("val")
            val = 1.0 - np.asarray(history.get("val_mse", [np.nan]), float) / baseline
            train = _last(history.get("mse"))
            train = 1.0 - train / self.dataset.baseline_loss("train")
        else:
            val = np.asarray(history.get("val_accuracy", [np.nan]), dtype=float)
            train = _last(history.get("accuracy"))
        final = chance if diverged else float(val[-1])
        metric = self.task.metric
        return {
            "score": final,
            f"final_val_{metric}": final,
            f"best_val_{metric}": _nanmax(val, default=chance),
            "final_val_loss": float(val_loss[-1]) if not diverged else math.nan,
            "best_val_loss": _nanmin(val_loss),
            "final_train_loss": _last(history.get("loss")),
            f"final_train_{metric}": chance if diverged else train,
            "diverged": int(diverged),
            "epochs_run": len(history.get("loss", [])),
        }


def _predictions(model, x):
    """Inference-mode outputs in chunks (`predict` would trace a function per cell)."""
    for start in range(0, len(x), _CHUNK):
        yield (
            start,
            keras.ops.convert_to_numpy(
                model(x[start : start + _CHUNK], training=False)
            ),
        )


def accuracy(model, x, y):
    """Inference-mode accuracy of `model` on `(x, y)`."""
    correct = 0
    for start, logits in _predictions(model, x):
        correct += int(np.sum(np.argmax(logits, axis=-1) == y[start : start + _CHUNK]))
    return correct / len(x)


def mean_squared_error(model, x, y):
    """Inference-mode MSE of `model` on `(x, y)` (float64 sums)."""
    total = 0.0
    for start, out in _predictions(model, x):
        error = out.astype("float64") - y[start : start + _CHUNK]
        total += float(np.sum(error**2))
    return total / y.size


def _finite(values):
    values = np.asarray(values if values is not None else [], dtype=float)
    return values[np.isfinite(values)]


def _nanmax(values, default):
    finite = _finite(values)
    return float(finite.max()) if finite.size else float(default)


def _nanmin(values):
    finite = _finite(values)
    return float(finite.min()) if finite.size else math.nan


def _last(values):
    return float(values[-1]) if values else math.nan
