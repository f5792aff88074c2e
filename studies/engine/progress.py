"""One readable line per finished cell, with an ETA for the whole study."""

import math
import statistics
import sys

from studies.engine import leases, records
from studies.science import tasks
from studies.science.spec import cell_key

# Axes whose value changes what a cell costs, most telling first; a remaining
# cell's cost is the mean of the finished cells that share the most of them.
COST_AXES = ("variant", "batch_size")


def format_duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def estimate_remaining(spec, finished, running=1):
    """Seconds until every cell has a record.

    Each cell still to run costs what the finished cells like it cost (the
    same variant and batch size, else the same variant, else any): the
    variants differ in cost (a kbn cell compiles its kernel), so
    extrapolating from the cells run first would be wrong.

    Args:
        spec: The `StudySpec`.
        finished: Cell key -> record (with `cell` and `seconds`).
        running: How many processes run cells now (they share the rest).

    Returns:
        The estimate in seconds; nan before any cell has finished.
    """
    costs = [r for r in finished.values() if math.isfinite(r.get("seconds", math.nan))]
    if not costs:
        return math.nan
    axes = [a for a in COST_AXES if a in spec.axes]
    levels = [axes[:n] for n in range(len(axes), -1, -1)]
    means = {}
    for level in levels:
        groups = {}
        for r in costs:
            groups.setdefault(_values(r["cell"], level), []).append(r["seconds"])
        means[tuple(level)] = {k: statistics.fmean(v) for k, v in groups.items()}
    total = 0.0
    for cell in spec.cells():
        if cell_key(cell) in finished:
            continue
        for level in levels:
            mean = means[tuple(level)].get(_values(cell, level))
            if mean is not None:
                total += mean
                break
    return total / max(running, 1)


def _values(cell, axes):
    return tuple(cell.get(a) for a in axes)


class Progress:
    """Prints `[done/total] cell values  result  time  ETA` lines.

    Counts and costs are read from the study's records, so with several
    processes each one reports the study's progress, not only its own.

    Args:
        spec: The `StudySpec`.
        study_dir: The study folder.
        stream: Where to print (stdout by default).
        lease_timeout: The study's lease timeout (which running cells count).
    """

    def __init__(self, spec, study_dir, stream=None, lease_timeout=None):
        self.spec = spec
        self.study_dir = study_dir
        self.stream = stream or sys.stdout
        self.leases = leases.Leases(study_dir, lease_timeout or leases.DEFAULT_TIMEOUT)
        self._keys = {cell_key(cell) for cell in spec.cells()}

    def line(self, cell, outcome, status):
        finished = records.read_all(self.study_dir)
        # this phase's cells only (a tuning study's folder holds both phases)
        done = len(self._keys & finished.keys())
        total = self.spec.size
        # the others running now, and this process, which runs on
        running = len(self.leases.live()) + 1
        eta = estimate_remaining(self.spec, finished, running)
        values = " ".join(f"{k}={v}" for k, v in cell.items())
        if status == "error":
            result = f"ERROR {outcome.get('message', '')}"[:120]
        else:
            result = tasks.of(self.spec).progress_line(outcome)
            if outcome["diverged"]:
                result += f" diverged@epoch {outcome['epochs_run']}"
        width = len(str(total))
        return (
            f"[{done:>{width}}/{total}] {values}  {result}  "
            f"{outcome['seconds']:.1f}s  ETA {format_duration(eta)}"
        )

    def cell_done(self, cell, outcome, status):
        self.say(self.line(cell, outcome, status))

    def say(self, text):
        print(text, file=self.stream, flush=True)
