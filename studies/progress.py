"""One readable line per finished cell, with an ETA for the whole study."""

import math
import sys
import time

from studies import records, tasks


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


class Progress:
    """Prints `[done/total] cell values  result  time  ETA` lines.

    Counts are read from the study's records, so with several workers each
    one reports the study's progress, not only its own, and the ETA uses the
    whole study's rate since this process started.

    Args:
        spec: The `StudySpec`.
        study_dir: The study folder.
        stream: Where to print (stdout by default).
    """

    def __init__(self, spec, study_dir, stream=None):
        self.spec = spec
        self.study_dir = study_dir
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self.done_at_start = len(self._done())

    def _done(self):
        return records.finished_keys(self.study_dir)

    def line(self, cell, outcome, status, seconds):
        done = len(self._done())
        total = self.spec.size
        finished_here = max(done - self.done_at_start, 1)
        rate = (time.monotonic() - self.started) / finished_here
        values = " ".join(f"{k}={v}" for k, v in cell.items())
        if status == "error":
            result = "ERROR (see results.csv)"
        else:
            task = tasks.of(self.spec)
            if task.name == tasks.REGRESSION:
                result = (
                    f"val_r2 {outcome['final_val_r2']:.3f} "
                    f"val_loss {outcome['final_val_loss']:.4g}"
                )
            else:
                result = f"val_acc {outcome['final_val_accuracy']:.3f}"
            if outcome["diverged"]:
                result += f" diverged@epoch {outcome['epochs_run']}"
        width = len(str(total))
        return (
            f"[{done:>{width}}/{total}] {values}  {result}  "
            f"{seconds:.1f}s  ETA {format_duration(rate * (total - done))}"
        )

    def cell_done(self, cell, outcome, status, seconds):
        print(self.line(cell, outcome, status, seconds), file=self.stream, flush=True)
