"""The base of kbn's instruments: fire every N optimizer steps, log to TensorBoard.

The step is counted from the optimizer's `iterations` read once at the start
of `fit` and the batch index Keras passes to `on_train_batch_end`, so between
firings a callback costs nothing (no tensor is read back from the device).
The summary writer is created in `on_train_begin` and closed in
`on_train_end`, never in `__init__`: Keras Tuner deep-copies callbacks for
every execution, and a writer (or a model) cannot be deep-copied.
"""

import copy
import math
import numbers
import os

import keras
import numpy as np

WRITER_SUBDIR = "train"  # next to keras.callbacks.TensorBoard's own train run


def check_every_n_steps(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            "Argument `every_n_steps` must be an integer >= 1. "
            f"Received: every_n_steps={value!r}"
        )
    return int(value)


def check_log_dir(value):
    if value is not None and (not isinstance(value, str | os.PathLike) or not value):
        raise ValueError(
            "Argument `log_dir` must be a folder path, or None to keep the numbers "
            f"only in `history`. Received: log_dir={value!r}"
        )
    return None if value is None else os.fspath(value)


def number_of_examples(inputs, argument):
    """The batch size of model inputs (an array, or a list or dict of arrays)."""
    leaves = keras.tree.flatten(inputs)
    shapes = [np.shape(leaf) for leaf in leaves]
    if not shapes or any(len(s) == 0 for s in shapes) or shapes[0][0] < 1:
        raise ValueError(
            f"Argument `{argument}` must hold at least one example (arrays with a "
            f"batch axis). Received shapes: {shapes}"
        )
    return shapes[0][0]


class StepCallback(keras.callbacks.Callback):
    """Measures something every `every_n_steps` optimizer steps.

    Subclasses implement `measure(step)`, returning `(scalars, histograms)`:
    two dicts from TensorBoard tag to a number or an array. Scalars are also
    appended to `history` (tag -> list, aligned with `history["step"]`).

    It fires at the start of training when the optimizer's step is a multiple
    of `every_n_steps` (so step 0 of a fresh model is measured), whenever the
    step count crosses a multiple of it, and once more at the end of training
    if the last step was not measured, so every curve ends at the final
    weights.

    Args:
        every_n_steps: Interval in optimizer steps (>= 1).
        log_dir: TensorBoard folder; events go to `log_dir/train`. None keeps
            the numbers only in `history`.
    """

    def __init__(self, every_n_steps, log_dir):
        super().__init__()
        self.every_n_steps = check_every_n_steps(every_n_steps)
        self.log_dir = check_log_dir(log_dir)
        self.history = {"step": []}
        self._reset_runtime_state()

    def _reset_runtime_state(self):
        """State that belongs to one `fit` call and is never deep-copied."""
        self._model = None
        self._writer = None
        self._step = 0
        self._epoch_start_step = 0

    def __deepcopy__(self, memo):
        # Fresh runtime state first (subclasses' included), so the model,
        # writer and anything built for one fit are never deep-copied.
        clone = copy.copy(self)
        memo[id(self)] = clone
        clone._reset_runtime_state()
        clone.__dict__.update(
            {name: copy.deepcopy(value, memo) for name, value in vars(clone).items()}
        )
        return clone

    def measure(self, step):
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        self._step = self._initial_step()
        self._epoch_start_step = self._step
        if self.log_dir is not None:
            import tensorflow as tf  # TensorBoard's writer, whatever the backend

            self._writer = tf.summary.create_file_writer(
                os.path.join(self.log_dir, WRITER_SUBDIR)
            )
        if self._step % self.every_n_steps == 0:
            self._fire(self._step)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start_step = self._step

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution > 1, `batch` is the last step of the run,
        # and Keras reports a short last run of an epoch as a full one.
        done = batch + 1
        steps = (self.params or {}).get("steps")
        if steps:
            done = min(done, steps)
        previous, self._step = self._step, self._epoch_start_step + done
        if self._step // self.every_n_steps > previous // self.every_n_steps:
            self._fire(self._step)

    def on_train_end(self, logs=None):
        self._fire(self._step)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _initial_step(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return 0
        return int(keras.ops.convert_to_numpy(optimizer.iterations))

    def _fire(self, step):
        if self.history["step"] and self.history["step"][-1] == step:
            return  # a second fit starting where the last one ended
        # On JAX, reading `self.model` syncs the trainer's state into the
        # variables, which are empty in the middle of an epoch otherwise.
        if self.model is None:
            raise ValueError(f"{type(self).__name__} has no model; use it in fit()")
        scalars, histograms = self.measure(step)
        self.history["step"].append(step)
        for tag, value in scalars.items():
            self.history.setdefault(tag, []).append(float(value))
        if self._writer is None:
            return
        import tensorflow as tf

        with self._writer.as_default(step=step):
            for tag, value in scalars.items():
                if math.isfinite(value):
                    tf.summary.scalar(tag, value)
            for tag, values in histograms.items():
                values = np.asarray(values)
                tf.summary.histogram(tag, values[np.isfinite(values)])
        self._writer.flush()
