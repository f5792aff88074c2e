"""What a study's cells are scored on: classification accuracy or regression R².

A task names the score every analysis, report and plot reads (`metric`), so
the rest of the studies package is written once for both:

- `classification`: integer labels, sparse cross-entropy on logits, scored by
  accuracy; a failed cell counts as chance (the majority class's share).
  Divergence is judged relative to the first batch's loss too, with the
  threshold itself as a floor: an init with huge logits starts far above
  1e3 and may be falling, and a cross-entropy near ln(classes) still gets
  at least the absolute limit.
- `regression`: float targets, mean squared error, scored by R² on the same
  split, `1 - MSE / MSE of the constant predictor` (the training targets'
  mean): a normalized loss, so the tolerances (1 and 5 points) and the
  "trained" margin mean the same thing whatever the targets' units. A failed
  cell counts as the constant predictor (R² 0). Divergence is judged
  relative to the first batch's loss, since a loss's scale is the data's.

What differs between the two when a cell is compiled, scored and shown is
here, once: the names, the loss and metric compiled (Keras identifiers, as
plain data), how a measured metric becomes the score, and what a progress
line shows. No Keras here;
`studies.engine.hypermodel` compiles what a task names and
`studies.engine.scoring` measures it.
"""

import dataclasses

import numpy as np

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
            first batch's loss (both tasks) or is a loss itself.
        divergence_floor: Whether the threshold is also the smallest limit
            (classification: `max(threshold, threshold * first loss)`); a
            regression loss has the targets' scale, so it has none.
        loss: The Keras loss to compile: a name or a serialized config
            (`{"class_name": ..., "config": ...}`).
        compiled: The Keras metric to compile, the same way; its history
            key is `measured` (`val_<measured>` on validation).
        measured: The name of the compiled metric in the history.
        relative: Whether the score is relative to the constant predictor
            (`1 - measured / baseline loss`, R²) or the measured value itself.
        measured_is_loss: Whether the measured metric is the loss itself (MSE),
            so the test split's is recorded as `final_test_loss` too.
        progress: What a progress line shows: `(label, record key, format)`.
    """

    name: str
    metric: str
    label: str
    chance: str
    relative_divergence: bool
    divergence_floor: bool
    loss: object
    compiled: object
    measured: str
    relative: bool
    measured_is_loss: bool
    progress: tuple

    def key(self, split):
        """The record key of the final score on `split` (val, test or train)."""
        return f"final_{split}_{self.metric}"

    def score(self, measured, baseline):
        """The score from the measured metric (a number or an array).

        Args:
            measured: Accuracy, or MSE for a relative score.
            baseline: A function of no arguments returning the constant
                predictor's MSE on the same split (called for R² only).
        """
        if self.relative:
            return 1.0 - measured / baseline()
        return measured

    def tally(self, outputs, y):
        """The measured metric's sum over one chunk of model outputs:
        correct predictions (accuracy) or squared errors, in float64 (MSE)."""
        if self.measured_is_loss:
            return float(np.sum((outputs.astype("float64") - y) ** 2))
        return int(np.sum(np.argmax(outputs, axis=-1) == y))

    def count(self, y):
        """What `tally`'s sums are divided by: examples, or target values."""
        return y.size if self.measured_is_loss else len(y)

    def test_numbers(self, measured, score):
        """The test split's record entries (`measured` NaN if it diverged)."""
        numbers = {self.key("test"): float(score)}
        if self.measured_is_loss:
            numbers["final_test_loss"] = measured
        return numbers

    def progress_line(self, outcome):
        """The outcome's scores as a progress line shows them."""
        return " ".join(
            f"{label} {outcome[key]:{form}}" for label, key, form in self.progress
        )


_TASKS = {
    CLASSIFICATION: Task(
        CLASSIFICATION,
        metric="accuracy",
        label="accuracy",
        chance="chance",
        relative_divergence=True,
        divergence_floor=True,
        loss={
            "class_name": "SparseCategoricalCrossentropy",
            "config": {"from_logits": True},
        },
        compiled="accuracy",
        measured="accuracy",
        relative=False,
        measured_is_loss=False,
        progress=(("val_acc", "final_val_accuracy", ".3f"),),
    ),
    REGRESSION: Task(
        REGRESSION,
        metric="r2",
        label="R² (1 - MSE / constant predictor's MSE)",
        chance="R² 0",
        relative_divergence=True,
        divergence_floor=False,
        loss="mse",
        compiled={"class_name": "MeanSquaredError", "config": {"name": "mse"}},
        measured="mse",
        relative=True,
        measured_is_loss=True,
        progress=(
            ("val_r2", "final_val_r2", ".3f"),
            ("val_loss", "final_val_loss", ".4g"),
        ),
    ),
}
NAMES = tuple(_TASKS)  # the tasks' one vocabulary


def get(name):
    """The task named `name` (None: classification, as before tasks existed)."""
    return _TASKS[name or CLASSIFICATION]


def of(spec):
    """The task of a `StudySpec`."""
    return get(spec.fixed.get("task"))
