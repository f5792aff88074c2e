"""The Keras Tuner HyperModel that builds and fits one cell of a study.

Each grid axis is a `hp.Choice` with the exact grid values (a log-sampled
`hp.Float` would give unordered mid-bin samples), so the HParams dashboard
shows the grid as it is. The model comes from the study's builder
(`studies.inputs.builders`), compiled with the loss and metric the data's
task names (`studies.science.tasks`). Fitting stops early when the loss
diverges (`callbacks`), or at the step budget (`budget`), and the cell's
outcome is a dict of finite numbers whatever happened (`scoring`).
"""

import math
import weakref

import keras
import keras_tuner as kt

from studies.engine import budget, instruments, optimizers, scoring
from studies.engine.callbacks import DivergenceMonitor, StepBudget
from studies.inputs import builders
from studies.science import tasks


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
        # each model's own normalization: a group builds all its members
        # before any is scored, so "the last built" is not the member's
        self._normalizations = weakref.WeakKeyDictionary()
        # each cell's gradient norms at initialization, measured when its
        # model is built (a group re-initializes members from fresh builds)
        self._init_grad_norms = {}

    def declare_hyperparameters(self, hp):
        for name, values in self.spec.axes.items():
            hp.Choice(name, list(values), ordered=not isinstance(values[0], str))

    def settings(self, hp):
        """The fixed settings with this cell's axis values on top."""
        return self.spec.settings({name: hp.get(name) for name in self.spec.axes})

    def build(self, hp):
        self.declare_hyperparameters(hp)
        return self.build_cell(self.settings(hp))

    def build_cell(self, s):
        """The compiled model of the cell with settings `s` (seeded by its seed)."""
        keras.utils.set_random_seed(s["seed"])
        model, self.normalization, _ = builders.build(
            self.builder,
            s,
            self.dataset.input_shape,
            self.dataset.outputs,
            s["model"],
        )
        self._normalizations[model] = self.normalization
        model.compile(
            optimizer=self.optimizer(s),
            loss=_keras(self.task.loss, keras.losses),
            metrics=[_keras(self.task.compiled, keras.metrics)],
        )
        if "init_grad_norms" in s["instruments"]:
            batch = slice(0, s["batch_size"])  # one fixed training batch
            self._init_grad_norms[_key(s)] = instruments.init_grad_norms(
                model, self.dataset.x_train[batch], self.dataset.y_train[batch]
            )
        return model

    def optimizer(self, s):
        """The cell's own optimizer (its rate, schedule and state)."""
        return optimizers.make(s, budget.total_steps(s, len(self.dataset.x_train)))

    def divergence(self, s):
        """`(threshold, relative, floor)`: when a batch loss means the cell
        diverged (`callbacks.DivergenceMonitor`'s arguments; `floor` is None
        or the threshold, `studies.science.tasks.Task.divergence_floor`)."""
        threshold = s["divergence_threshold"]
        floor = threshold if self.task.divergence_floor else None
        return threshold, self.task.relative_divergence, floor

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
            (see `instruments.curves`) and `batch_noise`; with
            `init_grad_norms`, the per-layer gradient norms at
            initialization (`instruments.init_grad_norms`). With
            `eval_statistics` `recomputed` or `both`, also the scores with
            recomputed statistics (`recomputed_scores`).
        """
        s = self.settings(hp)
        monitor, steps = self._monitors(s, len(x))
        probes = instruments.callbacks(
            s, x, y, validation_data, log_dir, self.scorer, self.task.metric
        )
        history = model.fit(
            x,
            y,
            validation_data=validation_data,
            batch_size=s["batch_size"],
            epochs=budget.epochs_for(s, len(x)),
            callbacks=[*callbacks, *probes, steps, monitor],
            verbose=0,
            **kwargs,
        )
        return self.finish(
            s, model, x, y, history.history, monitor.diverged, steps.steps_run, probes
        )

    def finish(self, s, model, x, y, history, diverged, steps_run, probes=()):
        """The outcome of a fitted cell (see `fit`), from its Keras history.

        Args:
            s: The cell's settings.
            model: The trained model (scored in inference mode).
            x, y: The training split.
            history: `History.history` of the fit.
            diverged: Whether the divergence check stopped it.
            steps_run: Optimizer steps it took.
            probes: Its instruments' callbacks (empty without instruments).
        """
        outcome = self.outcome(history, diverged)
        if not outcome["diverged"]:
            # inference mode, on the whole split: Keras's running metric is a
            # training-mode mean over the last epoch (noise and dropout on),
            # which would understate the train/validation gap
            outcome[self.task.key("train")] = self.scorer(model, x, y, "train")
        outcome.update(self.test_scores(model, outcome["diverged"]))
        outcome["steps_run"] = steps_run
        outcome.update(self._instrument_numbers(s, model, x, probes, outcome))
        outcome.update(self.recomputed_scores(s, model, x, y, outcome))
        return outcome

    def recomputed_scores(self, s, model, x, y, outcome):
        """The scores with batch normalization statistics recomputed over the
        training split `x` (`scoring.with_recomputed_statistics`), by the
        cell's `eval_statistics` setting (`{}` for `moving`).

        Entries: `final_val_<metric>_recomputed` and
        `final_test_<metric>_recomputed`, and `statistics_recomputed`: 1
        where the model's BN layers had their statistics recomputed; 0 where
        it has none (`none`, `layer-norm`, `group-norm`: no moving
        statistics, so its recomputed scores are copies of its scores) or the
        cell diverged (chance both ways). The moving statistics are restored
        afterwards. With `recomputed`, the cell's own scores (`score`,
        `final_val_<metric>`, `final_train_<metric>`, `final_test_<metric>`,
        and for regression `final_test_loss`) become the recomputed ones;
        the curves, the losses and `best_val_<metric>` stay those training
        saw. With `both`, the cell's own scores stay the moving ones.
        """
        mode = s.get("eval_statistics", "moving")
        if mode == "moving":
            return {}
        val, test = self.task.key("val"), self.task.key("test")
        own = {k: v for k, v in outcome.items() if k.startswith("final_")}
        found, recomputed = None, False
        if not outcome["diverged"]:
            found, recomputed = scoring.with_recomputed_statistics(
                model, x, lambda: self._final_scores(model, x, y, mode)
            )
        found = found or own
        numbers = {
            f"{val}_recomputed": found[val],
            f"{test}_recomputed": found[test],
            "statistics_recomputed": int(recomputed),
        }
        if mode == "recomputed":
            numbers.update(found, score=found[val])
        return numbers

    def _final_scores(self, model, x, y, mode):
        """The validation and test scores of `model` as it is (with
        `recomputed`, also the training score and the test loss)."""
        dataset = self.dataset
        scores = self.test_scores(model, diverged=False)
        scores[self.task.key("val")] = self.scorer(
            model, dataset.x_val, dataset.y_val, "val"
        )
        if mode == "recomputed":
            scores[self.task.key("train")] = self.scorer(model, x, y, "train")
        return scores

    def _monitors(self, s, num_samples):
        """The divergence monitor and the step budget of one fit."""
        threshold, relative, floor = self.divergence(s)
        monitor = DivergenceMonitor(
            threshold, s["batch_size"], num_samples, relative=relative, floor=floor
        )
        return monitor, StepBudget(s.get("steps"))

    def _instrument_numbers(self, s, model, x, probes, outcome):
        """The instruments' curves and batch noise (`{}` without instruments)."""
        numbers = {}
        if probes:
            per_epoch = budget.steps_per_epoch(s, len(x))
            numbers["curves"] = instruments.curves(probes, per_epoch)
        if "init_grad_norms" in s["instruments"]:
            numbers["init_grad_norms"] = self._init_grad_norms.pop(_key(s), None)
        if "batch_noise" in s["instruments"] and not outcome["diverged"]:
            normalization = self._normalizations.get(model, self.normalization)
            layers = normalization.layers if normalization else []
            numbers["batch_noise"] = instruments.batch_noise(
                model, layers, x, s["batch_size"], s["seed"]
            )
        return numbers

    def scorer(self, model, x, y, split):
        """The task's score of `model` on `(x, y)` from `split` (inference mode)."""
        measured = scoring.measure(self.task, model, x, y)
        return self.task.score(measured, lambda: self.dataset.baseline_loss(split))

    def test_scores(self, model, diverged):
        """The score on the held-out test split (chance if the cell diverged)."""
        if diverged:
            return self.task.test_numbers(math.nan, self.dataset.test_chance)
        x, y = self.dataset.x_test, self.dataset.y_test
        measured = scoring.measure(self.task, model, x, y)
        score = self.task.score(measured, lambda: self.dataset.baseline_loss("test"))
        return self.task.test_numbers(measured, score)

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
        return scoring.outcome(
            self.task,
            history,
            diverged,
            self.dataset.chance,
            self.dataset.baseline_loss,
        )


def _key(settings):
    """A hashable identity of a cell's settings."""
    return repr(sorted(settings.items()))


def _keras(identifier, module):
    """A Keras loss or metric from a task's identifier: a name stays a name
    (so `compile` resolves `"accuracy"` for the labels' shape), a
    serialized config becomes the object."""
    return module.get(identifier) if isinstance(identifier, dict) else identifier
