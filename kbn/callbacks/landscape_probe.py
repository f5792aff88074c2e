"""Loss-landscape probes along the gradient (Santurkar et al. 2018, Figure 4).

At a probe step, with weights theta, batch loss L and learning rate eta:
g = grad L(theta); for each multiplier lambda, theta' = theta - lambda*eta*g,
the loss L(theta') and the gradient change ||grad L(theta') - g||. Logged:

- `landscape/loss`: L(theta); `landscape/grad_norm`: ||g||;
- `landscape/loss_range`: max - min of L(theta') over the multipliers;
- `landscape/max_grad_change`: max of ||grad L(theta') - g|| (gradient
  predictiveness: small means the gradient here predicts the gradient there);
- `landscape/beta_smoothness`: max of ||grad L(theta') - g|| / ||theta' - theta||,
  the effective beta-smoothness along the gradient.

Norms are over all trainable weights together.
"""

import math
import numbers

import keras
import numpy as np

from kbn.callbacks.gradients import current_values, loss_and_gradients_function
from kbn.callbacks.step_callback import StepCallback, number_of_examples


class LandscapeProbe(StepCallback):
    """Logs the loss range and gradient predictiveness along the gradient.

    Every `every_n_steps` optimizer steps (and at step 0) the probe takes a
    batch and computes the quantities above on it without writing any
    variable: the moved weights are passed as values inside a
    `keras.StatelessScope`, which also drops the forward pass's updates of
    moving statistics and seed generators, and the optimizer is never called.
    So training with and without the probe gives identical weights. The
    learning rate is read from the optimizer at the current step, schedules
    included; the probe direction is the plain gradient whatever the
    optimizer (SGD, momentum, Adam, ...). The loss is what `fit` minimizes:
    the compiled loss plus the model's own losses, with a training-mode
    forward pass, and the same noise draw (seed state) at every point of the
    probe.

    Args:
        every_n_steps: Interval in optimizer steps (>= 1).
        step_multipliers: The multipliers lambda of the learning-rate step
            (each > 0; Santurkar et al. use 0.5 to 4).
        log_dir: TensorBoard folder (events go to `log_dir/train`); None keeps
            the numbers only in `history`.
        data: `(x, y)` or `(x, y, sample_weight)`. Required: Keras callbacks
            never see the training batches, so pass the training data and the
            probe draws its batch from it.
        batch_size: Size of the batch drawn (seeded, without replacement) at
            each probe; None uses all of `data` as the batch.
        seed: Seed of the batch draws.

    Attributes:
        history: Tag -> list of logged values, aligned with `history["step"]`.

    Example:

    ```python
    probe = kbn.callbacks.LandscapeProbe(
        every_n_steps=50, data=(x_train, y_train), batch_size=64)
    model.fit(x_train, y_train, batch_size=64, callbacks=[probe])
    ```
    """

    def __init__(
        self,
        every_n_steps=100,
        step_multipliers=(0.5, 1, 2, 4),
        log_dir="logs",
        data=None,
        batch_size=None,
        seed=0,
    ):
        super().__init__(every_n_steps, log_dir)
        self.step_multipliers = _check_multipliers(step_multipliers)
        if not isinstance(data, tuple | list) or len(data) not in (2, 3):
            raise ValueError(
                "Argument `data` is required: a tuple (x, y) or (x, y, sample_weight) "
                "to draw the probe batches from (Keras callbacks never see the "
                f"training batches). Received: data of type {type(data).__name__}"
            )
        data = keras.tree.map_structure(np.asarray, tuple(data))
        self._examples = number_of_examples(data, "data")
        self.data = data
        if batch_size is not None and (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, numbers.Integral)
            or batch_size < 1
        ):
            raise ValueError(
                "Argument `batch_size` must be None or an integer >= 1. "
                f"Received: batch_size={batch_size!r}"
            )
        self.batch_size = batch_size
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def _reset_runtime_state(self):
        super()._reset_runtime_state()
        self._gradients = None  # compiled for the model of the current fit

    def on_train_begin(self, logs=None):
        self._gradients = loss_and_gradients_function(self.model)
        super().on_train_begin(logs)

    def _batch(self):
        if self.batch_size is None or self.batch_size >= self._examples:
            return self.data
        index = np.sort(self._rng.choice(self._examples, self.batch_size, False))
        return keras.tree.map_structure(lambda a: a[index], self.data)

    def learning_rate(self):
        """The optimizer's learning rate at its current step."""
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def measure(self, step):
        model = self.model
        x, y, *weights = self._batch()
        sample_weight = weights[0] if weights else None
        eta = self.learning_rate()
        theta = [np.asarray(v) for v in current_values(model.trainable_variables)]
        state = current_values(model.non_trainable_variables)
        loss, grads = self._gradients(theta, state, x, y, sample_weight)
        losses, changes = [], []
        for lam in self.step_multipliers:
            moved = [
                t - (lam * eta * g).astype(t.dtype)
                for t, g in zip(theta, grads, strict=True)
            ]
            loss_there, grads_there = self._gradients(moved, state, x, y, sample_weight)
            losses.append(loss_there)
            changes.append(
                _norm([a - b for a, b in zip(grads_there, grads, strict=True)])
            )
        grad_norm = _norm(grads)
        distances = [lam * eta * grad_norm for lam in self.step_multipliers]
        smoothness = [
            c / d if d > 0 else (0.0 if c == 0 else math.inf)
            for c, d in zip(changes, distances, strict=True)
        ]
        return {
            "landscape/loss": loss,
            "landscape/grad_norm": grad_norm,
            "landscape/loss_range": max(losses) - min(losses),
            "landscape/max_grad_change": max(changes),
            "landscape/beta_smoothness": max(smoothness),
        }, {}


def _norm(arrays):
    return math.sqrt(sum(float(np.sum(np.square(a))) for a in arrays))


def _check_multipliers(multipliers):
    try:
        values = [float(m) for m in multipliers]
    except (TypeError, ValueError):
        values = None
    if not values or not all(math.isfinite(m) and m > 0 for m in values):
        raise ValueError(
            "Argument `step_multipliers` must be a non-empty list of positive "
            f"numbers. Received: step_multipliers={multipliers!r}"
        )
    return tuple(values)
