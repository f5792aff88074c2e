"""The `Dataset` a study trains on, and the error every data failure raises."""

import dataclasses
import hashlib

import numpy as np

from studies.science import tasks


class DatasetError(ValueError):
    """A dataset that cannot be loaded, with a message for the user."""


@dataclasses.dataclass
class Dataset:
    """Training, validation and test arrays plus what a model needs to know.

    `x_*` keep their natural shape (images as H x W x C, sequences as
    L x 1, tabular data flat) as float32; `y_*` are int32 labels
    (classification) or float32 targets of shape (N, outputs) (regression).
    The validation split comes out of the source's training split; the test
    split is the source's own.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str = tasks.CLASSIFICATION
    scaling: str = "as given"

    @property
    def input_shape(self):
        return self.x_train.shape[1:]

    @property
    def outputs(self):
        """Number of logits (classes) or regression targets."""
        if self.task == tasks.REGRESSION:
            return int(self.y_train.shape[1])
        return self.num_classes

    @property
    def num_classes(self):
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1

    @property
    def chance(self):
        """The score of a failed cell on validation: the majority class's
        accuracy, or R² 0 (the constant predictor) for regression."""
        if self.task == tasks.REGRESSION:
            return 0.0
        return _majority(self.y_val)

    @property
    def test_chance(self):
        """The same on the test split."""
        if self.task == tasks.REGRESSION:
            return 0.0
        return _majority(self.y_test)

    def baseline_loss(self, split):
        """MSE of predicting the training targets' mean on `split` (val, test,
        train): the denominator of R²."""
        y = {"train": self.y_train, "val": self.y_val, "test": self.y_test}[split]
        return float(np.mean((y - self.y_train.mean(axis=0)) ** 2))

    def describe(self):
        if self.task == tasks.REGRESSION:
            target = f"regression, {self.outputs} target(s)"
        else:
            target = f"{self.num_classes} classes"
        return (
            f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} validation "
            f"/ {len(self.x_test)} test, input {tuple(self.input_shape)}, "
            f"{target}; features {self.scaling}"
        )

    def fingerprint(self):
        """A hash of every split's values, shapes and dtypes (16 hex digits)."""
        digest = hashlib.sha256()
        for array in (
            self.x_train,
            self.y_train,
            self.x_val,
            self.y_val,
            self.x_test,
            self.y_test,
        ):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()[:16]

    def record(self):
        """What `dataset.json` keeps: enough to rebuild the report, and the
        fingerprint a resumed study must match."""
        info = {
            "description": self.describe(),
            "fingerprint": self.fingerprint(),
            "task": self.task,
            "scaling": self.scaling,
            "chance": self.chance,
            "test_chance": self.test_chance,
            # the evaluation splits' binomial noise needs their sizes
            "sizes": {
                "train": len(self.x_train),
                "val": len(self.x_val),
                "test": len(self.x_test),
            },
        }
        if self.task == tasks.REGRESSION:
            info["baseline_val_loss"] = self.baseline_loss("val")
            info["baseline_test_loss"] = self.baseline_loss("test")
        return info


def _majority(labels):
    return float(np.bincount(labels).max() / len(labels))
