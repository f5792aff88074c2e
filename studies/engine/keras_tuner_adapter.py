"""Everything the studies take from Keras Tuner beyond its public API.

Keras Tuner is subclassed through its public classes (`kt.Oracle`,
`kt.Tuner`), but a study also needs what Keras Tuner keeps to itself: its
distribution helpers, its gRPC servicer, its oracle's bookkeeping
(`trials`, `ongoing_trials`, `tuner_ids`, ...) and a few private hooks. All of
that lives here; `oracle.py` and `tuner.py` use only this module and Keras
Tuner's public API. Each override says which Keras Tuner behaviour it
replaces and why. `tests/studies/test_keras_tuner_adapter.py` pins every
Keras Tuner behaviour relied on here, so a Keras Tuner release that changes
one fails there, not in the middle of a study.

Imports: Keras Tuner only.
"""

import contextlib
import glob
import os

import keras_tuner as kt
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import stateful

Trial = kt.engine.trial.Trial
IDLE = kt.engine.trial.TrialStatus.IDLE
RUNNING = kt.engine.trial.TrialStatus.RUNNING
STOPPED = kt.engine.trial.TrialStatus.STOPPED

# Keras Tuner's per-oracle lock: its chief serves gRPC calls on threads, and
# it decorates `create_trial`, `update_trial` and `end_trial` with it (an
# override that calls the decorated method re-enters without deadlock).
synchronized = kt.synchronized


def has_chief():
    """Whether this process is part of a distributed search (chief or
    worker), as Keras Tuner decides it from `KERASTUNER_*` variables."""
    return dist_utils.has_chief_oracle()


def is_chief():
    """Whether this process is the chief (it serves the oracle)."""
    return dist_utils.is_chief_oracle()


def is_worker():
    """Whether this process is a worker (it asks the chief for trials)."""
    return has_chief() and not is_chief()


def chief_address():
    """The `host:port` Keras Tuner's workers connect to."""
    env = os.environ
    return f"{env['KERASTUNER_ORACLE_IP']}:{env['KERASTUNER_ORACLE_PORT']}"


# An error that ends the search (Keras Tuner re-raises it from a trial).
FatalError = kt.errors.FatalError


class ChiefGone(FatalError):
    """A worker's chief did not answer within the lease timeout."""


def limit_chief_wait(seconds):
    """How long a worker's call to the chief may wait for an answer.

    Keras Tuner's `OracleClient` waits up to an hour for every call
    (keras-team/keras-tuner#990), so a worker whose chief is gone hangs;
    its module-level `TIMEOUT`, read at each call, is set here instead.
    """
    from keras_tuner.src.distribute import oracle_client

    oracle_client.TIMEOUT = float(seconds)


def is_unreachable(error):
    """Whether `error` is a gRPC call to the chief that got no answer."""
    import grpc

    return isinstance(error, grpc.RpcError)


@contextlib.contextmanager
def oracle_server(oracle, address):
    """Serves `oracle` to Keras Tuner workers at `address` while the block
    runs, with Keras Tuner's own gRPC servicer.

    Replaces `oracle_chief.start_server`, which returns only once every
    tuner that ever asked has heard STOPPED and ended its trial
    (https://github.com/keras-team/keras-tuner/pull/967): a worker that died
    keeps the chief waiting forever. The caller decides here when serving
    ends.

    Args:
        oracle: The chief's oracle.
        address: `host:port` to listen on.

    Yields:
        The started `grpc.Server` (stopped, with a second's grace, on exit).
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    # one thread, as in Keras Tuner: calls reach the oracle one at a time
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    protos.get_service_grpc().add_OracleServicer_to_server(
        oracle_chief.OracleServicer(oracle), server
    )
    server.add_insecure_port(address)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


class HandoutOracle(kt.Oracle):
    """A Keras Tuner `Oracle` whose hand-out is told which tuner asks, that
    accepts reports of trials it never handed out, and reloads from files
    cut short by a kill.

    Subclasses implement `hand_out(tuner_id, trial_id)` in place of
    Keras Tuner's `populate_space(trial_id)`. Takes `kt.Oracle`'s arguments.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # The tuner id of the `create_trial` call in progress (None between
        # calls): Keras Tuner's `populate_space` hook is given only the trial
        # id, so the asker is held here for the one synchronized call.
        self._create_trial_tuner_id = None

    def hand_out(self, tuner_id, trial_id):
        """The next trial for `tuner_id`, as `populate_space` answers.

        Args:
            tuner_id: The tuner asking (Keras Tuner's `tuner_id`).
            trial_id: The id the trial will have if it runs.

        Returns:
            `{"status": RUNNING, "values": {...}}`, or IDLE or STOPPED with
            `"values": None`.
        """
        raise NotImplementedError

    @synchronized
    def create_trial(self, tuner_id):
        # Keras Tuner's `create_trial` keeps its bookkeeping (the asking
        # tuner, a trial already running for it, the trial files) and calls
        # `populate_space(trial_id)` for a new trial, without the tuner id;
        # the hand-out needs it, so it is held for this call only.
        self._create_trial_tuner_id = tuner_id
        try:
            return super().create_trial(tuner_id)
        finally:
            self._create_trial_tuner_id = None

    def populate_space(self, trial_id):
        # Keras Tuner calls it only from `create_trial` (synchronized there).
        tuner_id = self._create_trial_tuner_id
        if tuner_id is None:
            raise RuntimeError(
                "Keras Tuner called populate_space outside create_trial; "
                "studies.engine.keras_tuner_adapter needs updating"
            )
        return self.hand_out(tuner_id, trial_id)

    def forget_tuner(self, tuner_id):
        """Stops waiting for `tuner_id` (its holder is gone).

        Keras Tuner keeps every tuner that asked in `tuner_ids`, and its trial
        in `ongoing_trials`, until the tuner hears STOPPED or ends the trial;
        a dead tuner never does. Call from within `hand_out` (synchronized).
        """
        self.tuner_ids.discard(tuner_id)
        self.ongoing_trials.pop(tuner_id, None)

    def connected_tuners(self):
        """Tuner ids that asked for a trial and have not heard STOPPED.

        Not synchronized, unlike Keras Tuner's `exit_chief`: a synchronized
        call that raises leaves Keras Tuner's lock held (its wrapper has no
        `finally`), and the chief must not hang on it; reading a set is safe.
        """
        return set(self.tuner_ids)

    def _stand_in(self, trial_id):
        return Trial(self.hyperparameters.copy(), trial_id=trial_id, status=RUNNING)

    def get_trial(self, trial_id):
        # Keras Tuner raises KeyError for a trial it does not know: one
        # handed out by a chief before a restart, whose trial file the kill
        # cut short. A stand-in answers; the cell's record is what counts.
        if trial_id not in self.trials:
            return self._stand_in(trial_id)
        return super().get_trial(trial_id)

    @synchronized
    def update_trial(self, trial_id, metrics, step=0):
        # As `get_trial`: a report of an unknown trial is dropped, not a
        # KeyError in the chief's gRPC thread.
        if trial_id not in self.trials:
            return self._stand_in(trial_id)
        return super().update_trial(trial_id, metrics, step=step)

    @synchronized
    def end_trial(self, trial):
        # As `get_trial`: an unknown trial only frees its tuner, so the
        # chief does not count it as running.
        if trial.trial_id not in self.trials:
            for tuner_id, ongoing in list(self.ongoing_trials.items()):
                if ongoing.trial_id == trial.trial_id:
                    self.ongoing_trials.pop(tuner_id)
            return
        super().end_trial(trial)

    def reload(self):
        # Replaces `Oracle.reload`, which raises on a trial or oracle file
        # cut short by a kill and sends the trials that were running to its
        # retry queue. Progress lives in the study's records, so trials are
        # reloaded only for their bookkeeping (a trial id is never reused),
        # unreadable files are skipped, and no trial is retried or running.
        pattern = os.path.join(self._project_dir, "trial_*", "trial.json")
        for fname in glob.glob(pattern):
            try:
                trial = Trial.load(fname)
            except (ValueError, KeyError, OSError):
                continue
            self.trials[trial.trial_id] = trial
        try:  # the oracle's own state, skipping `Oracle.reload`
            stateful.Stateful.reload(self, self._get_oracle_fname())
        except (ValueError, KeyError, OSError):
            pass
        self.ongoing_trials = {}
        self.tuner_ids = set()
        self._retry_queue = []
        # orders that may name a trial file skipped above
        self.start_order = [t for t in self.start_order if t in self.trials]
        self.end_order = [t for t in self.end_order if t in self.trials]


class CellTuner(kt.Tuner):
    """A Keras Tuner `Tuner` whose search loop and chief are the caller's.

    Subclasses implement `trials_to_run()` (a generator of the trials this
    process runs, asking `self.oracle.create_trial`) and `serve_workers()`
    (the chief's whole search). Takes `kt.Tuner`'s arguments.
    """

    def __init__(self, *args, **kwargs):
        # trial id -> its TensorBoard folder, while `configure_tensorboard`
        # runs (Keras Tuner's `_get_tensorboard_dir` hook gets the trial id)
        self._tensorboard_dirs = {}
        super().__init__(*args, **kwargs)

    def _populate_initial_space(self):
        # Replaces Keras Tuner's, which builds the hypermodel (a whole
        # model, at every start) to discover conditional hyperparameters. A
        # study has none: its hypermodel declares the grid up front.
        if self.hypermodel is None:
            return
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    def trials_to_run(self):
        """Yields each trial this process runs, until there are none."""
        raise NotImplementedError

    def serve_workers(self):
        """The chief's search: serves the oracle (`oracle_server`)."""
        raise NotImplementedError

    def reload(self):
        # Replaces `BaseTuner.reload`, which also reads this tuner's state
        # file: Keras Tuner's `Tuner` state is empty ({}) and a file cut
        # short by a kill would raise. Only the oracle matters (a worker's
        # is the chief's), and it tolerates such files.
        if not is_worker():
            self.oracle.reload()

    def search(self, *fit_args, **fit_kwargs):
        # Replaces `BaseTuner.search`: its loop asks again at once on IDLE
        # (a busy loop while other processes run the last cells) and its
        # chief (`oracle_chief.start_server`) waits forever for a worker that
        # died (keras-team/keras-tuner#967), while a worker whose chief has
        # gone retries each call for an hour (keras-team/keras-tuner#990).
        # Here `trials_to_run` decides when to ask and when to stop (a worker
        # stops once the chief has finished), `serve_workers` how long the
        # chief serves; each trial still runs through Keras Tuner's
        # `_try_run_and_update_trial` (result to the oracle, exceptions to
        # the trial's status) and `on_trial_end`.
        if is_chief():
            self.save()
            return self.serve_workers()
        self.on_search_begin()
        for trials in self.groups_to_run():
            self.run_group(trials, *fit_args, **fit_kwargs)
        self.on_search_end()

    def groups_to_run(self):
        """Yields the trials this process runs, as lists run together (by
        default one trial a list, from `trials_to_run`)."""
        for trial in self.trials_to_run():
            yield [trial]

    def run_group(self, trials, *fit_args, **fit_kwargs):
        """Runs `trials` (by default one after another, `run_trials`)."""
        self.run_trials(trials, *fit_args, **fit_kwargs)

    def run_trials(self, trials, *fit_args, **fit_kwargs):
        """Each trial through Keras Tuner's own flow: `run_trial`, its result
        to the oracle (`_try_run_and_update_trial`, which turns an exception
        into the trial's status and re-raises a `FatalError`) and
        `on_trial_end`."""
        for trial in trials:
            self.on_trial_begin(trial)
            self._try_run_and_update_trial(trial, *fit_args, **fit_kwargs)
            self.on_trial_end(trial)

    def copy_callbacks(self, callbacks):
        """Keras Tuner's copy of the search's callbacks for one trial (it
        raises `FatalValueError` for one that cannot be deep-copied)."""
        return self._deepcopy_callbacks(list(callbacks))

    def configure_tensorboard(self, callbacks, trial, log_dir):
        """Keras Tuner's TensorBoard set-up for `trial` with `log_dir` as the
        trial's folder: under the TensorFlow backend, every callback named
        `TensorBoard` in `callbacks` logs there and an HParams session of the
        trial's values is written there (appended to `callbacks`).

        Args:
            callbacks: The trial's copied callbacks (changed in place).
            trial: The `Trial`.
            log_dir: The folder for the trial's logs.
        """
        self._tensorboard_dirs[trial.trial_id] = log_dir
        try:
            self._configure_tensorboard_dir(callbacks, trial)
        finally:
            del self._tensorboard_dirs[trial.trial_id]

    def _get_tensorboard_dir(self, logdir, trial_id, execution):
        # Replaces Keras Tuner's `<logdir>/<trial_id>/execution<n>`: a study
        # logs each cell to a staging folder it names itself (a trial id
        # means nothing across runs).
        return self._tensorboard_dirs[trial_id]
