"""The Keras Tuner Tuner that runs one study cell per trial and records it.

`StudyTuner.run_trial` adopts the cell's lease (`studies.engine.leases`), builds and
fits the cell through the `CellHyperModel`, turns any exception into a
recorded result (the study goes on), and writes the cell's record, if the
lease is still its own, then reports the objective to the oracle.

TensorBoard: Keras Tuner points a callback named `TensorBoard` at a folder
of the trial and writes an HParams session there. Here that folder is a
private staging folder (`tensorboard/.running/<cell>.<token>`), moved to
`tensorboard/<cell>` by the run that records the cell, so a second run of a
cell (after a lease was taken over, or a retried error) never deletes logs
that another run is still writing, and an interrupted attempt leaves no
second session.

`search` replaces Keras Tuner's loop: a process asks for cells until the
oracle says STOPPED (every cell has a record), waits while the remaining
cells are leased elsewhere, and a chief serves its workers until every cell
has a record, whatever happened to them (Keras Tuner's chief waits for
every worker that ever connected, forever if one died). The Keras Tuner
hooks this needs are overridden in `studies.engine.keras_tuner_adapter`.
"""

import glob
import math
import os
import shutil
import socket
import time
import uuid

import keras_tuner as kt

from studies import folder
from studies.engine import cell_memory, leases, records
from studies.engine import keras_tuner_adapter as adapter
from studies.engine.grouped_search import GroupedSearch
from studies.engine.oracle import IDLE, STOPPED, GridOracle
from studies.engine.process_memory import peak_rss_mb, rss_mb
from studies.engine.progress import Progress
from studies.science import tuning
from studies.science.spec import cell_key

POLL_SECONDS = 1.0  # how often a process with nothing to run asks again
CHIEF_GRACE_SECONDS = 5.0  # a finished chief's wait for workers to hear STOPPED


class StudyTuner(GroupedSearch, adapter.CellTuner):
    """Runs the cells of a study handed out by a `GridOracle`.

    Args:
        spec: The `StudySpec`.
        study_dir: The study folder (records, leases, `tuner/`, `tensorboard/`).
        hypermodel: A `CellHyperModel` for `spec`.
        progress: Where finished cells are reported (a `Progress`).
        lease_timeout: Seconds without a heartbeat before a running cell is
            handed out again.
        retry_errors: Run again the cells whose record is an error.
        run_id: Names this process's run in the records (`runs/<run_id>.json`).
        fuse: Cells trained together at most (`grouped_search`); None: chosen
            from the model's size and the memory available.
    """

    def __init__(
        self,
        spec,
        study_dir,
        hypermodel,
        progress=None,
        lease_timeout=leases.DEFAULT_TIMEOUT,
        retry_errors=False,
        run_id="",
        fuse=None,
    ):
        if adapter.is_worker():  # not Keras Tuner's hour per call
            adapter.limit_chief_wait(lease_timeout)
        self._lease_timeout = lease_timeout
        space = kt.HyperParameters()
        hypermodel.declare_hyperparameters(space)
        self.spec = spec
        self.study_dir = study_dir
        self.progress = progress or Progress(spec, study_dir)
        self.run_id = run_id
        self._last_trial_end = None
        try:
            super().__init__(
                oracle=GridOracle(
                    spec,
                    study_dir,
                    space,
                    lease_timeout=lease_timeout,
                    retry_errors=retry_errors,
                    stream=self.progress.stream,
                ),
                hypermodel=hypermodel,
                directory=folder.tuner_dir(study_dir),
                # a tuning phase keeps its own Keras Tuner state
                project_name=spec.study + ("-tune" if tuning.is_tuning(spec) else ""),
            )
        except Exception as error:
            if adapter.is_worker() and adapter.is_unreachable(error):
                raise self._chief_gone() from None
            raise
        self.leases = leases.Leases(study_dir, lease_timeout)
        if not adapter.has_chief():
            # a plain run: unique, so two runs on one folder hold their own leases
            host = socket.gethostname()
            self.tuner_id = f"run-{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.oracle.verbose = 0  # the progress lines replace Keras Tuner's tables
        self.init_groups(fuse)

    def search(self, *fit_args, **fit_kwargs):
        try:
            return super().search(*fit_args, **fit_kwargs)
        except Exception as error:
            if adapter.is_worker() and adapter.is_unreachable(error):
                raise self._chief_gone() from None
            raise
        finally:
            # an interruption (KeyboardInterrupt, a fatal error) leaves no
            # cell of this run leased: the cells held, of a group or handed
            # out for the next one, are free for the next run at once
            for trial_id in list(self._heartbeats):
                heartbeat = self._heartbeats.pop(trial_id)
                self.leases.release(heartbeat)

    def _chief_gone(self):
        return adapter.ChiefGone(
            f"the chief at {adapter.chief_address()} did not answer for "
            f"{self._lease_timeout:g} s (--lease-timeout); this worker stops"
        )

    def trials_to_run(self):
        """Asks the oracle for cells until it says STOPPED (or, on a worker,
        until the chief has finished), waiting while the remaining cells are
        leased elsewhere.

        Yields:
            Each trial this process is to run.
        """
        waiting = None
        while True:
            if adapter.is_worker() and os.path.exists(self._finished_marker()):
                # the chief is gone: asking it would wait an hour for an answer
                self.progress.say("the chief has finished the study")
                return
            trial = self.oracle.create_trial(self.tuner_id)
            if trial.status == STOPPED:
                return
            if trial.status == IDLE:
                waiting = self._wait(waiting)
                continue
            waiting = None
            yield trial

    def _wait(self, said):
        """Nothing to hand out while other processes run the last cells."""
        held = sorted(self.leases.live())
        if held and held != said:
            self.progress.say(
                f"waiting for {len(held)} cell(s) running elsewhere: "
                + "; ".join(held[:3])
                + (" ..." if len(held) > 3 else "")
            )
        time.sleep(POLL_SECONDS)
        return held

    def serve_workers(self):
        """The chief: serves the oracle until every cell has a record, gives
        connected workers a moment to hear STOPPED, then returns."""
        marker = self._finished_marker()
        if os.path.exists(marker):
            os.remove(marker)  # a chief before this one finished a pass
        address = adapter.chief_address()
        with adapter.oracle_server(self.oracle, address):
            self.progress.say(
                f"chief: serving {len(self.oracle.pending_keys())} cells at "
                f"{address}; start workers with --worker ID"
            )
            idle_said = True  # the line above asked for workers
            while pending := self.oracle.pending_keys():
                idle = not self.leases.live()
                if idle and not idle_said:  # every worker gone, or none yet
                    self.progress.say(
                        f"chief: {len(pending)} cells left and none running; "
                        "waiting for a worker"
                    )
                idle_said = idle
                time.sleep(POLL_SECONDS)
            deadline = time.monotonic() + CHIEF_GRACE_SECONDS
            while self.oracle.connected_tuners() and time.monotonic() < deadline:
                time.sleep(0.1)
            folder.write(marker, self.run_id)  # for workers that ask after this

    def _finished_marker(self):
        phase = ".tune" if tuning.is_tuning(self.spec) else ""  # one per phase
        return os.path.join(self.leases.folder, folder.FINISHED + phase)

    def run_trial(self, trial, *fit_args, callbacks=(), **fit_kwargs):
        if trial.trial_id in self._ready:  # trained in its group
            return self._ready.pop(trial.trial_id)
        cell = self.cell_of(trial)
        key = cell_key(cell)
        if trial.trial_id not in self._heartbeats:
            self._adopt(trial, self.tuner_id)
        if trial.trial_id not in self._heartbeats:
            self.progress.say(f"cell {key}: its lease was taken over; skipped")
            return {"score": math.nan}
        root = self._tensorboard_root(callbacks)
        staged = folder.staged_logs(root, key)
        try:
            with cell_memory.freed_after():
                run = self._run_cell(trial, callbacks, staged, fit_args, fit_kwargs)
        except BaseException:
            self._drop(trial, staged)
            raise
        return self.finish_cell(trial, run["outcome"], run["logs"], staged)

    def _drop(self, trial, staged):
        """Lets the cell's lease go unrecorded and removes its staged logs."""
        heartbeat = self._heartbeats.pop(trial.trial_id, None)
        if heartbeat is not None:
            self.leases.release(heartbeat)
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)

    def finish_cell(self, trial, outcome, root, staged):
        """Records a cell that ran (if its lease is still this run's) and
        reports it; returns the trial's result for Keras Tuner."""
        cell = self.cell_of(trial)
        key = cell_key(cell)
        heartbeat = self._heartbeats.pop(trial.trial_id)
        outcome.update(trial_id=trial.trial_id, run=self.run_id)
        outcome.setdefault("group_size", 1)
        outcome.setdefault("lr", self.spec.settings(cell).get("lr"))  # as it ran
        try:
            finished = self.leases.finish(
                heartbeat, lambda: self._record(cell, outcome, root, staged)
            )
        except OSError as error:  # not the cell's fault: the run cannot go on
            self._heartbeats[trial.trial_id] = heartbeat
            self._drop(trial, staged)
            raise kt.errors.FatalError(
                f"cell {key}: could not write its record: {error}"
            ) from None
        if not finished:
            self._heartbeats[trial.trial_id] = heartbeat
            self._drop(trial, staged)
            self.progress.say(
                f"cell {key}: its lease was taken over while it ran "
                "(no heartbeat for longer than --lease-timeout); result dropped"
            )
            return {"score": math.nan}
        self.progress.cell_done(cell, outcome, outcome["status"])
        self._last_trial_end = time.perf_counter()
        return {"score": outcome["score"]}

    def _tensorboard_root(self, callbacks):
        roots = [c.log_dir for c in callbacks if type(c).__name__ == "TensorBoard"]
        return str(roots[0]) if roots else None

    def _run_cell(self, trial, callbacks, staged, fit_args, fit_kwargs):
        """Builds and fits one cell, logging to `staged`; any exception is
        its result."""
        start = time.perf_counter()
        tuner_seconds = (
            start - self._last_trial_end if self._last_trial_end else math.nan
        )
        fit_seconds = math.nan
        root = self._tensorboard_root(callbacks)
        hp = trial.hyperparameters
        try:
            callbacks = self.copy_callbacks(callbacks)
            self.configure_tensorboard(callbacks, trial, staged)
            model = self.hypermodel.build(hp)
            fit_start = time.perf_counter()
            outcome = self.hypermodel.fit(
                hp,
                model,
                *fit_args,
                callbacks=callbacks,
                log_dir=staged,
                **fit_kwargs,
            )
            fit_seconds = time.perf_counter() - fit_start
            status, message = ("diverged" if outcome["diverged"] else "ok"), ""
        except Exception as error:  # a genuine error is a result; the study goes on
            outcome = self.hypermodel.failed_outcome()
            status, message = "error", f"{type(error).__name__}: {error}"
        outcome.update(
            seconds=time.perf_counter() - start,
            fit_seconds=fit_seconds,
            tuner_seconds=tuner_seconds,
            status=status,
            message=message,
            peak_rss_mb=peak_rss_mb(),
            rss_mb=rss_mb(),
        )
        return {"outcome": outcome, "logs": root}

    def _record(self, cell, outcome, root, staged):
        """Under the cell's lease: the record, then its logs (staged in
        `staged`) in place."""
        records.write(self.study_dir, cell, {**outcome, "finished_at": time.time()})
        if root is None:
            return
        key = cell_key(cell)
        final = os.path.join(root, key)
        shutil.rmtree(final, ignore_errors=True)
        if staged is not None and os.path.isdir(staged):
            os.replace(staged, final)
        for staging in run_logs(root, key):  # left by runs that were killed
            shutil.rmtree(staging, ignore_errors=True)


def search_cells(
    spec,
    study_dir,
    dataset,
    builder,
    stream,
    run_id,
    lease_timeout=leases.DEFAULT_TIMEOUT,
    retry_errors=False,
    fuse=None,
):
    """Runs this process's share of the cells of `study_dir` with a
    `StudyTuner` (progress lines to `stream`); returns when every cell has
    a record (or, for a worker, none is left to hand out)."""
    import keras

    from studies.engine.hypermodel import CellHyperModel

    tuner = StudyTuner(
        spec,
        study_dir,
        CellHyperModel(spec, dataset, builder),
        Progress(spec, study_dir, stream, lease_timeout),
        lease_timeout=lease_timeout,
        retry_errors=retry_errors,
        run_id=run_id,
        fuse=fuse,
    )
    logdir = folder.tensorboard_dir(study_dir)
    tuner.search(
        dataset.x_train,
        dataset.y_train,
        validation_data=(dataset.x_val, dataset.y_val),
        callbacks=[
            keras.callbacks.TensorBoard(logdir, write_graph=False, profile_batch=0)
        ],
    )


def run_logs(root, key):
    """Staging folders of cell `key` (runs in progress or killed)."""
    if root is None:
        return []
    return glob.glob(
        os.path.join(glob.escape(root), folder.RUNNING_LOGS, glob.escape(key) + ".*")
    )
