"""A model's score on a split in inference mode, and a Keras history as the
cell's outcome, both through the task (`studies.science.tasks`).

The score on a whole split is computed here rather than read from Keras's
running metrics: those are training-mode means over an epoch (noise and
dropout on). `with_recomputed_statistics` scores a model as it would score
with its batch normalization statistics recomputed, and leaves it as it was.
"""

import math

import keras
import numpy as np

import kbn
from kbn import model_graph

_CHUNK = 1024  # examples per forward pass when scoring a split


def _predictions(model, x):
    """Inference-mode outputs in chunks (`predict` would trace a function per cell)."""
    for start in range(0, len(x), _CHUNK):
        yield (
            start,
            keras.ops.convert_to_numpy(
                model(x[start : start + _CHUNK], training=False)
            ),
        )


def measure(task, model, x, y):
    """The task's measured metric (accuracy or MSE) of `model` on `(x, y)`."""
    total = 0
    for start, outputs in _predictions(model, x):
        total += task.tally(outputs, y[start : start + _CHUNK])
    return total / task.count(y)


def with_recomputed_statistics(model, x, scores):
    """`(scores(), True)`: `scores()` called while `model`'s batch
    normalization statistics are recomputed over `x`; `(None, False)` for a
    model without any.

    Every `keras.layers.BatchNormalization` (kbn's included) gets exact
    statistics over `x` (`kbn.recompute_statistics`, in batches of
    `_CHUNK`: the pooling is exact whatever the batch, so the size only
    sets speed and memory). Its moving statistics (every non-trainable
    weight of those layers) are put back afterwards, in a `finally`, so the
    model scores with them as before. A model without batch normalization
    has no moving statistics, and nothing to score again.
    """
    layers = model_graph.batch_norm_layers(model)
    if not layers:
        return None, False
    saved = [
        (w, keras.ops.convert_to_numpy(w))
        for layer in layers
        for w in layer.non_trainable_weights
    ]
    try:
        kbn.recompute_statistics(model, x, batch_size=_CHUNK)
        return scores(), True
    finally:
        for weight, value in saved:
            weight.assign(value)


def outcome(task, history, diverged, chance, baseline):
    """Summarizes a Keras history dict into the cell's outcome.

    Args:
        task: The `tasks.Task`.
        history: `History.history` (`{}` for a cell that raised).
        diverged: Whether the divergence monitor stopped the fit.
        chance: The validation score of a failed cell.
        baseline: `baseline(split)`: the constant predictor's MSE on `split`.
    """
    val_loss = np.asarray(history.get("val_loss", [np.nan]), dtype=float)
    diverged = bool(diverged) or not np.isfinite(val_loss[-1])
    val = task.score(
        np.asarray(history.get(f"val_{task.measured}", [np.nan]), dtype=float),
        lambda: baseline("val"),
    )
    train = task.score(_last(history.get(task.measured)), lambda: baseline("train"))
    final = chance if diverged else float(val[-1])
    metric = task.metric
    return {
        "score": final,
        f"final_val_{metric}": final,
        f"best_val_{metric}": _nanmax(val, default=chance),
        "final_val_loss": float(val_loss[-1]) if not diverged else math.nan,
        "best_val_loss": _nanmin(val_loss),
        "final_train_loss": _last(history.get("loss")),
        f"final_train_{metric}": chance if diverged else train,
        "diverged": int(diverged),
        "epochs_run": len(history.get("loss", [])),
    }


def _finite(values):
    values = np.asarray(values if values is not None else [], dtype=float)
    return values[np.isfinite(values)]


def _nanmax(values, default):
    finite = _finite(values)
    return float(finite.max()) if finite.size else float(default)


def _nanmin(values):
    finite = _finite(values)
    return float(finite.min()) if finite.size else math.nan


def _last(values):
    return float(values[-1]) if values else math.nan
