"""The Keras Tuner Tuner that runs one study cell per trial and records it.

`StudyTuner.run_trial` builds and fits the cell through the `CellHyperModel`,
turns any exception into a recorded result (the study goes on), writes the
cell's record atomically, and reports the objective to the oracle. It keeps
Keras Tuner's TensorBoard redirection (a callback named `TensorBoard` is
pointed at the cell's own folder and gets an HParams session), but names the
folder after the cell instead of the trial id, so a cell re-run after an
interruption replaces its partial logs instead of adding a second session.
"""

import math
import os
import shutil
import time

import keras_tuner as kt

from studies import records
from studies.oracle import GridOracle
from studies.progress import Progress
from studies.spec import cell_key


class StudyTuner(kt.Tuner):
    """Runs the cells of a study handed out by a `GridOracle`.

    Args:
        spec: The `StudySpec`.
        study_dir: The study folder (records, `tuner/`, `tensorboard/`).
        hypermodel: A `CellHyperModel` for `spec`.
        progress: Where finished cells are reported (a `Progress`).
    """

    def __init__(self, spec, study_dir, hypermodel, progress=None):
        space = kt.HyperParameters()
        hypermodel.declare_hyperparameters(space)
        self.spec = spec
        self.study_dir = study_dir
        self.progress = progress or Progress(spec, study_dir)
        self._last_trial_end = None
        super().__init__(
            oracle=GridOracle(spec, study_dir, space),
            hypermodel=hypermodel,
            directory=os.path.join(study_dir, "tuner"),
            project_name=spec.study,
        )
        self.oracle.verbose = 0  # the progress lines replace Keras Tuner's tables

    def reload(self):
        # The tuner's own state file is empty ({}); only the oracle matters,
        # and it tolerates files cut short by a kill.
        if not self._is_worker():
            self.oracle.reload()

    def _get_tensorboard_dir(self, logdir, trial_id, execution):
        return os.path.join(str(logdir), self._current_key)

    def run_trial(self, trial, *fit_args, callbacks=(), **fit_kwargs):
        hp = trial.hyperparameters
        cell = {name: hp.get(name) for name in self.spec.axes}
        self._current_key = cell_key(cell)
        start = time.perf_counter()
        tuner_seconds = (
            start - self._last_trial_end if self._last_trial_end else math.nan
        )
        fit_seconds = math.nan
        try:
            callbacks = self._deepcopy_callbacks(list(callbacks))
            log_dirs = [
                self._get_tensorboard_dir(c.log_dir, trial.trial_id, 0)
                for c in callbacks
                if type(c).__name__ == "TensorBoard"
            ]
            for folder in log_dirs:
                # partial logs of an interrupted attempt at this cell
                shutil.rmtree(folder, ignore_errors=True)
            self._configure_tensorboard_dir(callbacks, trial)  # points them there
            model = self.hypermodel.build(hp)
            fit_start = time.perf_counter()
            outcome = self.hypermodel.fit(
                hp,
                model,
                *fit_args,
                callbacks=callbacks,
                log_dir=log_dirs[0] if log_dirs else None,
                **fit_kwargs,
            )
            fit_seconds = time.perf_counter() - fit_start
            status, message = ("diverged" if outcome["diverged"] else "ok"), ""
        except Exception as error:  # a genuine error is a result; the study goes on
            outcome = self.hypermodel.failed_outcome()
            status, message = "error", f"{type(error).__name__}: {error}"
        seconds = time.perf_counter() - start
        records.write(
            self.study_dir,
            cell,
            {
                **outcome,
                "seconds": seconds,
                "fit_seconds": fit_seconds,
                "tuner_seconds": tuner_seconds,
                "status": status,
                "message": message,
                "trial_id": trial.trial_id,
            },
        )
        self.progress.cell_done(cell, outcome, status, seconds)
        self._last_trial_end = time.perf_counter()
        return {"score": outcome["score"]}
