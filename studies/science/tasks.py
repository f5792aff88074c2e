"""What a study's cells are scored on: classification accuracy or regression R².

A task names the score every analysis, report and plot reads (`metric`), so
the rest of the studies package is written once for both:

- `classification`: integer labels, sparse cross-entropy on logits, scored by
  accuracy; a failed cell counts as chance (the majority class's share).
- `regression`: float targets, mean squared error, scored by R² on the same
  split, `1 - MSE / MSE of the constant predictor` (the training targets'
  mean): a normalized loss, so the tolerances (1 and 5 points) and the
  "trained" margin mean the same thing whatever the targets' units. A failed
  cell counts as the constant predictor (R² 0). Divergence is judged
  relative to the first batch's loss, since a loss's scale is the data's.

No Keras here; `hypermodel` turns a task into a loss and metrics.
"""

import dataclasses

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclasses.dataclass(frozen=True)
class Task:
    """A task's names.

    Attributes:
        name: `classification` or `regression`.
        metric: The score's key stem: `final_val_<metric>`, `best_val_<metric>`.
        label: The score's name in reports and plots.
        chance: What a failed cell counts as, in words.
        relative_divergence: Whether the divergence threshold multiplies the
            first batch's loss (regression) or is a loss itself.
    """

    name: str
    metric: str
    label: str
    chance: str
    relative_divergence: bool

    def key(self, split):
        """The record key of the final score on `split` (val, test or train)."""
        return f"final_{split}_{self.metric}"


_TASKS = {
    CLASSIFICATION: Task(CLASSIFICATION, "accuracy", "accuracy", "chance", False),
    REGRESSION: Task(
        REGRESSION, "r2", "R² (1 - MSE / constant predictor's MSE)", "R² 0", True
    ),
}
NAMES = tuple(_TASKS)  # the tasks' one vocabulary


def get(name):
    """The task named `name` (None: classification, as before tasks existed)."""
    return _TASKS[name or CLASSIFICATION]


def of(spec):
    """The task of a `StudySpec`."""
    return get(spec.fixed.get("task"))
