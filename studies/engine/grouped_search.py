"""The tuner's cell groups: asking the oracle for a group's cells, training
them together and recording each member as the cell it is.

A group is collected from the oracle one cell at a time (it hands out cells
in grid order, each group key's cells together: `oracle.handout_order`).
Keras Tuner gives a tuner one trial at a time, so the members after the
first are asked for under member tuner ids (`<tuner id>~<n>`), each the
holder of its cell's lease. Every cell's lease is adopted (its heartbeat
started) as soon as it is handed out, so all of a group's leases are held
while it trains; a process killed mid-group leaves them all to die, and the
cells are handed out again together. A cell handed out that cannot join the
group (another group key) starts the next one.

After the group has trained, each member goes through the tuner's usual
per-trial flow (`run_trial` returns its result; the record is written
under its own lease), so resume, retries and the chief see cells as before.
If building or training the group raises, its cells run one at a time, so
each error lands on the cell that caused it.
"""

import itertools
import math
import shutil
import time

import keras

from studies import folder
from studies.engine import cell_memory, groups, provenance
from studies.engine.group_fit import CompiledGroups, fit_group
from studies.engine.process_memory import peak_rss_mb, rss_mb
from studies.science.spec import cell_key


class GroupedSearch:
    """Mixin for `StudyTuner`: `groups_to_run` and `run_group`.

    Needs the tuner's `spec`, `oracle`, `leases`, `hypermodel`, `progress`,
    `tuner_id`, `_record`, `_tensorboard_root`, `copy_callbacks` and
    `configure_tensorboard`.

    Args:
        fuse: Members per group at most (1: one cell at a time, through the
            same engine); None: chosen from the model's size and the memory
            available (`groups.default_size`).
    """

    def init_groups(self, fuse=None):
        self.fuse = fuse
        self.group_size = fuse  # what the run uses (decided at the first group)
        self._size_noted = False
        self._compiled = CompiledGroups()
        self._ready = {}  # trial id -> the result run_trial returns
        self._heartbeats = {}  # trial id -> its adopted lease's heartbeat
        self._member_ids = (f"{self.tuner_id}~{n}" for n in itertools.count(1))

    # -- collecting a group -------------------------------------------------

    def cell_of(self, trial):
        return {name: trial.hyperparameters.get(name) for name in self.spec.axes}

    def _adopt(self, trial, holder):
        heartbeat = self.leases.adopt(
            cell_key(self.cell_of(trial)), holder, trial.trial_id
        )
        if heartbeat is not None:
            self._heartbeats[trial.trial_id] = heartbeat
        return trial

    def _ask(self):
        """One more cell for the group under a new member id, or None."""
        holder = next(self._member_ids)
        trial = self.oracle.create_trial(holder)
        if trial.status != "RUNNING":
            return None
        return self._adopt(trial, holder)

    def groups_to_run(self):
        carry = None
        source = self.trials_to_run()
        while True:
            first = carry or next(source, None)
            carry = None
            if first is None:
                return
            if first.trial_id not in self._heartbeats:
                self._adopt(first, self.tuner_id)
            group = [first]
            settings = self.hypermodel.settings(first.hyperparameters)
            if groups.fusable(settings):
                cap = self._cap(settings)
                while len(group) < cap and (trial := self._ask()) is not None:
                    other = self.hypermodel.settings(trial.hyperparameters)
                    if groups.key(other) != groups.key(settings):
                        carry = trial
                        break
                    group.append(trial)
            yield group

    def _cap(self, settings):
        if self.group_size is None:
            try:
                model = self.hypermodel.build_cell(settings)
            except Exception:  # noqa: BLE001  the cells will say why, one by one
                return groups.DEFAULT_CAP
            widest = max(
                math.prod(layer.output.shape[1:])
                for layer in model.layers
                if hasattr(layer, "output")
            )
            self.group_size = groups.default_size(
                model.count_params(),
                settings["batch_size"],
                widest,
                backend=keras.config.backend(),
            )
            del model
        if not self._size_noted:
            self._size_noted = True
            provenance.note(
                self.study_dir, self.run_id, fuse=self.fuse, group_size=self.group_size
            )
            if self.group_size > 1:
                self.progress.say(f"training up to {self.group_size} cells together")
        return self.group_size

    # -- training it ------------------------------------------------------

    def run_group(self, trials, *fit_args, **fit_kwargs):
        held = [t for t in trials if t.trial_id in self._heartbeats]
        settings = self.hypermodel.settings(trials[0].hyperparameters)
        if held and groups.fusable(settings):
            try:
                self._train_group(held, fit_args, fit_kwargs)
            except Exception as error:  # noqa: BLE001  each cell alone finds its own
                self._compiled.clear()
                if len(held) == 1:  # the cell alone: its error is its result
                    self._record_error(held[0], error, fit_kwargs)
                else:
                    self.progress.say(
                        f"a group of {len(held)} cells raised "
                        f"{type(error).__name__}: {error}; running them one at a time"
                    )
        self.run_trials(trials, *fit_args, **fit_kwargs)

    def _record_error(self, trial, error, fit_kwargs):
        outcome = self.hypermodel.failed_outcome()
        outcome.update(
            seconds=math.nan,
            fit_seconds=math.nan,
            tuner_seconds=math.nan,
            status="error",
            message=f"{type(error).__name__}: {error}",
            peak_rss_mb=peak_rss_mb(),
            rss_mb=rss_mb(),
        )
        root = self._tensorboard_root(fit_kwargs.get("callbacks", ()))
        self._ready[trial.trial_id] = self.finish_cell(trial, outcome, root, None)

    def _train_group(self, trials, fit_args, fit_kwargs):
        """Trains `trials` together and records each; their results wait in
        `_ready` for `run_trial`."""
        x, y = fit_args[:2]
        callbacks = fit_kwargs.get("callbacks", ())
        root = self._tensorboard_root(callbacks)
        staged, member_callbacks = [], []
        for trial in trials:
            own = self.copy_callbacks(callbacks)
            logs = folder.staged_logs(root, cell_key(self.cell_of(trial)))
            self.configure_tensorboard(own, trial, logs)
            staged.append(logs)
            member_callbacks.append(own)
        settings = [self.hypermodel.settings(t.hyperparameters) for t in trials]
        start = time.perf_counter()
        try:
            with cell_memory.freed_after(clear=False):
                members, timing = fit_group(
                    self.hypermodel,
                    settings,
                    member_callbacks,
                    x,
                    y,
                    fit_kwargs["validation_data"],
                    self._compiled,
                )
                fit_seconds = time.perf_counter() - start
                scored = time.perf_counter()
                outcomes = [
                    self.hypermodel.finish(
                        s, model, x, y, ev.history, ev.diverged, ev.steps_run
                    )
                    for s, (model, ev) in zip(settings, members, strict=True)
                ]
        except BaseException:
            for path in staged:
                if path is not None:
                    shutil.rmtree(path, ignore_errors=True)
            raise
        timing["scoring"] = time.perf_counter() - scored
        seconds = (time.perf_counter() - start) / len(trials)
        for trial, outcome, path in zip(trials, outcomes, staged, strict=True):
            outcome.update(
                seconds=seconds,
                fit_seconds=fit_seconds / len(trials),
                tuner_seconds=math.nan,
                group_size=len(trials),
                status="diverged" if outcome["diverged"] else "ok",
                message="",
                peak_rss_mb=peak_rss_mb(),
                rss_mb=rss_mb(),
                timing={k: round(v, 4) for k, v in timing.items()},
            )
            self._ready[trial.trial_id] = self.finish_cell(trial, outcome, root, path)
