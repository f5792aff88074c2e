"""A Keras Tuner Oracle that walks a fixed grid and resumes after any interruption.

Keras Tuner's `GridSearch` keeps its queue in memory, so a resumed search
stops early or raises `KeyError` (keras-tuner #1055). `GridOracle` instead
derives its progress from the study's cell records (`studies.records`): the
next trial is the first grid cell that has no record and has not been handed
out in this session. Keras Tuner's own retry queue and ongoing-trial state
are dropped on reload, because a trial that was running when the process
died has no record and is handed out again from the grid, exactly once.

In a distributed study the chief owns the oracle; workers reach it through
Keras Tuner's gRPC protocol and write their records to the shared folder.
"""

import glob
import os

import keras_tuner as kt
from keras_tuner.src.engine import stateful
from keras_tuner.src.engine import trial as trial_module

from studies import records
from studies.spec import cell_key


class GridOracle(kt.Oracle):
    """Hands out the cells of `spec` that have no record, in grid order.

    Args:
        spec: The `StudySpec` whose `cells()` are walked.
        study_dir: The study folder holding the cell records.
        hyperparameters: The `kt.HyperParameters` space (one `Choice` per
            axis), so trials carry the axis values even on reload.
    """

    def __init__(self, spec, study_dir, hyperparameters):
        super().__init__(
            objective=kt.Objective("score", direction="max"),
            hyperparameters=hyperparameters,
            max_trials=None,
            # Every error is recorded as a result by the tuner, so no run of
            # failures should end the study (Keras Tuner's default is 3).
            max_consecutive_failed_trials=spec.size + 1,
        )
        self.spec = spec
        self.study_dir = study_dir
        self._handed_out = set()

    def populate_space(self, trial_id):
        done = records.finished_keys(self.study_dir) | self._handed_out
        for cell in self.spec.cells():
            key = cell_key(cell)
            if key not in done:
                self._handed_out.add(key)
                return {"status": trial_module.TrialStatus.RUNNING, "values": cell}
        return {"status": trial_module.TrialStatus.STOPPED, "values": None}

    def reload(self):
        # Trials are reloaded only for their bookkeeping; a trial or oracle
        # file cut short by a kill is skipped, since progress lives in the
        # cell records.
        for fname in glob.glob(
            os.path.join(self._project_dir, "trial_*", "trial.json")
        ):
            try:
                trial = trial_module.Trial.load(fname)
            except (ValueError, KeyError, OSError):
                continue
            self.trials[trial.trial_id] = trial
        try:
            stateful.Stateful.reload(self, self._get_oracle_fname())
        except (ValueError, KeyError, OSError):
            pass
        self.ongoing_trials = {}
        self._retry_queue = []
