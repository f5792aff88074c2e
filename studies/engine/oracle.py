"""A Keras Tuner Oracle that walks a fixed grid and survives faults.

Keras Tuner's `GridSearch` keeps its queue in memory, so a resumed search
stops early or raises `KeyError` (keras-tuner #1055), and its chief waits
forever for a worker that died. `GridOracle` instead derives everything from
the study folder:

- the cell records (`studies.engine.records`): a cell with a record is done;
- the cell leases (`studies.engine.leases`): a cell with a live lease is running
  somewhere (this process, another plain run on the same folder, or a
  worker of this chief or of a chief before it).

The next trial is the first cell that is neither, in grid order with the
cells of one group key together and the normalization variant varying
fastest (`handout_order`); handing it out takes
its lease for the tuner that asked. When every remaining cell is leased,
the answer is IDLE (ask again shortly), so a process that outlives the
others takes over their cells when their leases die. When every cell has a
record, the answer is STOPPED.

Keras Tuner's own retry queue and ongoing-trial state are dropped on
reload: progress lives in the records, and a trial the chief does not know
(cut short by a kill) is accepted from a worker without error. Those Keras
Tuner overrides live in `studies.engine.keras_tuner_adapter`.
"""

import keras_tuner as kt

from studies.engine import groups, leases, records
from studies.engine import keras_tuner_adapter as adapter
from studies.science.spec import cell_key

IDLE = adapter.IDLE
RUNNING = adapter.RUNNING
STOPPED = adapter.STOPPED


def handout_order(spec):
    """The grid's cells, those of one group key together (`groups.key`: the
    seed, the batch size), the variant varying fastest within them: cells
    that can train together come one after another, a study stopped early
    has every variant at the same grid points, and the first cells show
    what each variant costs (for the ETA)."""
    names = spec.axis_names
    outer = [n for n in names if n not in groups.FUSABLE]
    inner = [n for n in names if n in groups.FUSABLE and n != "variant"]
    last = ["variant"] if "variant" in names else []

    def position(cell):
        return tuple(spec.axes[n].index(cell[n]) for n in outer + inner + last)

    return sorted(spec.cells(), key=position)


def _identity(record):
    return (record.get("run"), record.get("trial_id"), record.get("finished_at"))


class GridOracle(adapter.HandoutOracle):
    """Hands out the cells of `spec` that have no record and no live lease,
    variant by variant at each point of the grid.

    Args:
        spec: The `StudySpec` whose `cells()` are walked.
        study_dir: The study folder holding the cell records and leases.
        hyperparameters: The `kt.HyperParameters` space (one `Choice` per
            axis), so trials carry the axis values even on reload.
        lease_timeout: Seconds without a heartbeat after which a running
            cell's lease is dead and the cell is handed out again.
        retry_errors: Run again the cells whose record is an error from
            before this oracle started.
        stream: Where a cell handed out again is reported (None: nowhere).
    """

    def __init__(
        self,
        spec,
        study_dir,
        hyperparameters,
        lease_timeout=leases.DEFAULT_TIMEOUT,
        retry_errors=False,
        stream=None,
    ):
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
        self.leases = leases.Leases(study_dir, lease_timeout)
        self.stream = stream
        # key -> the error record to replace (a new record of the cell, even
        # another error, ends its retry; no clocks compared across machines)
        self._errors_to_retry = {}
        if retry_errors:
            self._errors_to_retry = {
                key: _identity(record)
                for key, record in records.read_all(study_dir).items()
                if record.get("status") == "error"
            }

    def is_pending(self, key, finished=None):
        """Whether cell `key` still needs a run: no record, or an error
        record to retry that is older than this oracle."""
        finished = (
            records.finished_keys(self.study_dir) if finished is None else finished
        )
        if key not in finished:
            return True
        if key not in self._errors_to_retry:
            return False
        record = records.read(self.study_dir, key) or {}
        return _identity(record) == self._errors_to_retry[key]

    def pending_keys(self):
        """Keys of the cells that still need a run, in grid order."""
        finished = records.finished_keys(self.study_dir)
        keys = (cell_key(cell) for cell in handout_order(self.spec))
        return [key for key in keys if self.is_pending(key, finished)]

    def hand_out(self, tuner_id, trial_id):
        """The first pending cell whose lease `tuner_id` can take.

        Args:
            tuner_id: The tuner asking; the lease is taken in its name.
            trial_id: The trial the cell is handed out as.

        Returns:
            `{"status": RUNNING, "values": cell}`, or IDLE (every pending
            cell is leased) or STOPPED (none is pending) with no values.
        """
        cells = {cell_key(cell): cell for cell in self.spec.cells()}
        pending = self.pending_keys()
        for key in pending:
            taken, previous = self.leases.take(
                key,
                tuner_id,
                trial_id,
                lambda key=key: self.is_pending(key),
                here=not adapter.has_chief(),
            )
            if taken:
                if previous is not None:
                    self._forget(previous, tuner_id)
                return {"status": RUNNING, "values": cells[key]}
        return {"status": IDLE if pending else STOPPED, "values": None}

    def _forget(self, dead, asker):
        """A dead lease was replaced for `asker`: its holder is gone (or too
        late)."""
        holder = dead.get("holder")
        if self.stream is not None:
            print(
                f"cell {dead.get('cell')}: its run by {holder} stopped heartbeating "
                f"{dead['age']:.0f}s ago; handing it out again",
                file=self.stream,
                flush=True,
            )
        # so a chief does not wait for a dead worker before it exits
        if holder != asker:
            self.forget_tuner(holder)
