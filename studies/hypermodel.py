"""The Keras Tuner HyperModel that builds and fits one cell of a study.

Each grid axis is a `hp.Choice` with the exact grid values (a log-sampled
`hp.Float` would give unordered mid-bin samples), so the HParams dashboard
shows the grid as it is. Fitting stops early when the loss diverges, and the
cell's outcome is a dict of finite numbers whatever happened.
"""

import math

import keras
import keras_tuner as kt
import numpy as np

from studies import instruments, models

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
    """

    def __init__(self, threshold=1e3, batch_size=None, num_samples=None):
        super().__init__()
        self.threshold = threshold
        self.batch_size = batch_size
        self.num_samples = num_samples
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
        if not math.isfinite(loss) or loss > self.threshold:
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


class CellHyperModel(kt.HyperModel):
    """Builds and fits the model of one study cell.

    Args:
        spec: The `StudySpec`; its axes become `hp.Choice`s, its fixed
            settings are used as they are.
        input_shape: Shape of one example.
        num_classes: Number of classes.
        chance: Validation accuracy recorded for a diverged cell.
        test_data: `(x_test, y_test)`, scored once after training (never
            used for selection), or None.
        test_chance: Test accuracy recorded for a diverged cell (default
            `chance`).
    """

    def __init__(
        self, spec, input_shape, num_classes, chance, test_data=None, test_chance=None
    ):
        super().__init__(name=spec.study)
        self.spec = spec
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.chance = chance
        self.test_data = test_data
        self.test_chance = chance if test_chance is None else test_chance

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
        model = models.build(
            s["model"],
            variant=s["variant"],
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            init=s["init"],
            init_scale=s["init_scale"],
            seed=s["seed"],
        )
        model.compile(
            optimizer=models.optimizer(s["optimizer"], s["lr"]),
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
            accuracy, chance for a diverged cell), `final_val_accuracy`,
            `best_val_accuracy`, `final_val_loss`, `best_val_loss`,
            `final_train_loss`, `final_train_accuracy` (inference mode, on
            the whole training split), `diverged` (0 or 1),
            `epochs_run`, `final_test_accuracy` (NaN without test data) and
            `steps_run`. Losses are NaN where training diverged. With
            instruments, also `curves` (see `instruments.curves`).
        """
        s = self.settings(hp)
        monitor = DivergenceMonitor(s["divergence_threshold"], s["batch_size"], len(x))
        budget = StepBudget(s.get("steps"))
        probes = instruments.callbacks(s, x, y, validation_data, log_dir)
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
        if not outcome["diverged"]:
            # inference mode, on the whole split: Keras's `accuracy` is a
            # training-mode running mean over the last epoch (noise and
            # dropout on), which would understate the train/validation gap
            outcome["final_train_accuracy"] = accuracy(model, x, y)
        outcome["final_test_accuracy"] = self.test_accuracy(model, outcome["diverged"])
        outcome["steps_run"] = budget.steps_run
        if probes:
            steps_per_epoch = math.ceil(len(x) / s["batch_size"])
            outcome["curves"] = instruments.curves(probes, steps_per_epoch)
        return outcome

    def test_accuracy(self, model, diverged):
        """Accuracy on the held-out test split (chance if the cell diverged)."""
        if self.test_data is None:
            return math.nan
        if diverged:
            return float(self.test_chance)
        return accuracy(model, *self.test_data)

    def failed_outcome(self):
        """The outcome recorded for a cell that raised an error."""
        outcome = self.outcome({}, diverged=False)
        return {
            **outcome,
            "diverged": 0,
            "epochs_run": 0,
            "final_test_accuracy": math.nan,
            "steps_run": 0,
        }

    def outcome(self, history, diverged):
        """Summarizes a Keras history dict into the cell's outcome."""
        val_acc = np.asarray(history.get("val_accuracy", [np.nan]), dtype=float)
        val_loss = np.asarray(history.get("val_loss", [np.nan]), dtype=float)
        diverged = bool(diverged) or not np.isfinite(val_loss[-1])
        final_acc = self.chance if diverged else float(val_acc[-1])
        return {
            "score": final_acc,
            "final_val_accuracy": final_acc,
            "best_val_accuracy": _nanmax(val_acc, default=self.chance),
            "final_val_loss": float(val_loss[-1]) if not diverged else math.nan,
            "best_val_loss": _nanmin(val_loss),
            "final_train_loss": _last(history.get("loss")),
            "final_train_accuracy": self.chance
            if diverged
            else _last(history.get("accuracy")),
            "diverged": int(diverged),
            "epochs_run": len(history.get("loss", [])),
        }


def accuracy(model, x, y):
    """Inference-mode accuracy of `model` on `(x, y)`.

    Direct calls in chunks: `predict` would trace a new function per cell.
    """
    correct = 0
    for start in range(0, len(x), _CHUNK):
        logits = model(x[start : start + _CHUNK], training=False)
        predicted = np.argmax(keras.ops.convert_to_numpy(logits), axis=-1)
        correct += int(np.sum(predicted == y[start : start + _CHUNK]))
    return correct / len(x)


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
