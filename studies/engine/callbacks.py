"""The Keras callbacks every cell trains with: divergence and the step budget."""

import math

import keras


class DivergenceMonitor(keras.callbacks.Callback):
    """Stops training when one batch's loss is NaN, inf or above its limit.

    The limit is `threshold`, or with `relative` `threshold` times the first
    finite batch loss, and never below `floor` when one is given: a study's
    classification cell diverges above `max(1e3, 1e3 * first loss)`, so a
    net whose huge initial logits start it above 1e3 is judged by whether
    its loss grows, not by where it starts (`divergence_limit`).

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
        relative: The threshold multiplies the first batch's loss.
        floor: The smallest limit (None: none; a regression loss has the
            targets' scale, so it has none).
    """

    def __init__(
        self,
        threshold=1e3,
        batch_size=None,
        num_samples=None,
        relative=False,
        floor=None,
    ):
        super().__init__()
        self.threshold = threshold
        self.batch_size = batch_size
        self.num_samples = num_samples
        self.relative = relative
        self.floor = floor
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
        limit = divergence_limit(
            self.threshold, self.initial_loss, self.relative, self.floor
        )
        if not math.isfinite(loss) or loss > limit:
            self.diverged = True
            self.model.stop_training = True


def divergence_limit(threshold, initial_loss, relative=False, floor=None):
    """The largest batch loss that is still training.

    `threshold`, times `initial_loss` (the first finite batch loss; 1 while
    there is none, or when it is 0) if `relative`, and at least `floor` if
    given. `fused_model.GroupModel` computes the same in its step.
    """
    scale = (initial_loss or 1.0) if relative else 1.0
    limit = threshold * scale
    return limit if floor is None else max(limit, floor)


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
