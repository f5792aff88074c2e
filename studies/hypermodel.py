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


class DivergenceMonitor(keras.callbacks.Callback):
    """Stops training when the loss is NaN, inf or above `threshold`.

    Divergence is a result of a learning-rate study, not a failure, so this
    only stops the fit and remembers that it happened (unlike
    `keras.callbacks.TerminateOnNaN`, it also catches a loss that explodes
    without overflowing).

    Args:
        threshold: Largest loss still considered training (Bjorck et al. 2018
            flag divergence at 1e3).
    """

    def __init__(self, threshold=1e3):
        super().__init__()
        self.threshold = threshold
        self.diverged = False

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss) or loss > self.threshold:
            self.diverged = True
            self.model.stop_training = True


class CellHyperModel(kt.HyperModel):
    """Builds and fits the model of one study cell.

    Args:
        spec: The `StudySpec`; its axes become `hp.Choice`s, its fixed
            settings are used as they are.
        input_shape: Shape of one example.
        num_classes: Number of classes.
        chance: Accuracy recorded for a diverged cell.
    """

    def __init__(self, spec, input_shape, num_classes, chance):
        super().__init__(name=spec.study)
        self.spec = spec
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.chance = chance

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
            `final_train_loss`, `final_train_accuracy`, `diverged` (0 or 1) and
            `epochs_run`. Losses are NaN where training diverged. With
            instruments, also `curves` (see `instruments.curves`).
        """
        s = self.settings(hp)
        monitor = DivergenceMonitor(s["divergence_threshold"])
        probes = instruments.callbacks(s, x, y, validation_data, log_dir)
        history = model.fit(
            x,
            y,
            validation_data=validation_data,
            batch_size=s["batch_size"],
            epochs=s["epochs"],
            callbacks=[*callbacks, *probes, monitor],
            verbose=0,
            **kwargs,
        )
        outcome = self.outcome(history.history, monitor.diverged)
        if probes:
            steps_per_epoch = math.ceil(len(x) / s["batch_size"])
            outcome["curves"] = instruments.curves(probes, steps_per_epoch)
        return outcome

    def failed_outcome(self):
        """The outcome recorded for a cell that raised an error."""
        outcome = self.outcome({}, diverged=False)
        return {**outcome, "diverged": 0, "epochs_run": 0}

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
