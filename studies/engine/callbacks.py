"""The Keras callbacks every cell trains with: divergence and the step budget."""

import math

import keras


class DivergenceMonitor(keras.callbacks.Callback):
    """Stops training when one batch's loss is NaN, inf or above `threshold`.

    Divergence is a result of a learning-rate study, not a failure, so this
    only stops the fit and remembers that it happened (unlike
    `keras.callbacks.TerminateOnNaN`, it also catches a loss that explodes
    without overflowing).

    Keras reports the running mean of the loss over the epoch so far, which
    dilutes a spike (one batch at 20x the threshold late in an epoch can leave
    the mean below it). The batch's own loss is recovered from consecutive
    means, weighted by the examples seen, as Keras weights them:
    `loss_k = (W_k * mean_k - W_(k-1) * mean_(k-1)) / (W_k - W_(k-1))`.

    Args:
        threshold: Largest loss still considered training (Bjorck et al. 2018
            flag divergence at 1e3).
        batch_size: Examples per batch (None: all batches weigh the same).
        num_samples: Examples per epoch, for the size of the last batch.
        relative: The threshold multiplies the first batch's loss (for a
            regression loss, whose scale is the targets').
    """

    def __init__(
        self, threshold=1e3, batch_size=None, num_samples=None, relative=False
    ):
        super().__init__()
        self.threshold = threshold
        self.batch_size = batch_size
        self.num_samples = num_samples
        self.relative = relative
        self.initial_loss = None
        self.diverged = False
        self.last_batch_loss = math.nan
        self._seen = self._total = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._seen = self._total = 0.0

    def _examples_through(self, batch):
        if self.batch_size is None:
            return float(batch + 1)
        seen = (batch + 1) * self.batch_size
        return float(min(seen, self.num_samples) if self.num_samples else seen)

    def on_train_batch_end(self, batch, logs=None):
        mean = float((logs or {}).get("loss", 0.0))
        seen = self._examples_through(batch)
        total = mean * seen
        weight = seen - self._seen
        loss = (total - self._total) / weight if weight > 0 else mean
        self._seen, self._total = seen, total
        self.last_batch_loss = loss
        if self.initial_loss is None and math.isfinite(loss):
            self.initial_loss = abs(loss)
        scale = (self.initial_loss or 1.0) if self.relative else 1.0
        limit = self.threshold * scale
        if not math.isfinite(loss) or loss > limit:
            self.diverged = True
            self.model.stop_training = True


class StepBudget(keras.callbacks.Callback):
    """Counts optimizer steps and, given a budget, stops training at it.

    Keras still runs the validation of the epoch it stops in, so the last
    epoch's numbers are those after exactly `steps` steps.

    Args:
        steps: The budget in optimizer steps, or None to count only.
    """

    def __init__(self, steps=None):
        super().__init__()
        self.steps = steps
        self.steps_run = 0
        self._epoch_start = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.steps_run

    def on_train_batch_end(self, batch, logs=None):
        self.steps_run = self._epoch_start + batch + 1
        if self.steps is not None and self.steps_run >= self.steps:
            self.model.stop_training = True
