"""The `effective_step` instrument: kernel norms, effective step and angular update.

A kernel W followed by a normalization is scale invariant: the layer's
output, and so the loss, do not change when W is multiplied by a constant.
Its gradient is then orthogonal to W and scales as 1/||W||, so a step of
rate lr turns W by about lr ||g|| / ||W||, and the *effective* learning
rate is lr / ||W||^2 (van Laarhoven 2017). Weight decay shrinks ||W||
while the gradient steps grow it, until the two balance; there the angle W
turns per step settles near sqrt(2 lr wd) (Li & Arora 2020; Wan et al.
2021, "spherical motion dynamics"), whatever the learning rate's scale.

Every `every_n_steps` optimizer steps, for every hidden kernel (each layer
with a kernel but the last, the output layer, which no normalization
follows; in the built-in models exactly the kernels a normalization
follows, and without one the same kernels, as a baseline), this reads:

- `weight_norm`: ||W||, the Frobenius norm of the whole kernel;
- `effective_lr`: lr / ||W||^2, with the optimizer's rate at that step;
- `angular_update`: the angle in radians between W just before and just
  after the step that ends at the reading (one optimizer step, measured;
  NaN at step 0 and at a final reading that is not on the interval);
- `angle_per_step`: the angle between W at this reading and at the previous
  one, divided by the steps between them. Angles add along a path but not
  across it, so this is at most the mean one-step angle (with noisy,
  unaligned steps about 1/sqrt(steps) of it): a lower bound, kept because
  it covers every step, not one in `every_n_steps`.

Scalars are tagged `effective_step/<layer>/<name>`.
"""

import math

import keras
import numpy as np

from kbn.callbacks import StepCallback

NAMES = ("weight_norm", "effective_lr", "angular_update", "angle_per_step")


def hidden_kernel_layers(model):
    """The layers of `model` with a kernel but the last (the output layer),
    input side first, in the model's layer order (nested models' layers in
    place)."""

    def layers(m):
        found = []
        for layer in m.layers:
            found += layers(layer) if isinstance(layer, keras.Model) else [layer]
        return found

    with_kernel = [
        layer for layer in layers(model) if getattr(layer, "kernel", None) is not None
    ]
    return with_kernel[:-1]


def angle(a, b):
    """The angle in radians between arrays `a` and `b` (NaN if either is 0)."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if not norms > 0:
        return math.nan
    # clipped: rounding can put the cosine of two equal kernels above 1
    return float(np.arccos(np.clip(np.dot(a, b) / norms, -1.0, 1.0)))


def readings(kernels, lr, before=None, previous=None, steps=None):
    """The instrument's numbers for one reading (the formulas, on arrays).

    Args:
        kernels: `{layer name: kernel array}` now.
        lr: The learning rate of the step just taken.
        before: `{layer name: kernel}` just before that step, or None.
        previous: `{layer name: kernel}` at the previous reading, or None.
        steps: Optimizer steps since the previous reading.

    Returns:
        `{"<layer>/<name>": number}` for every layer and `NAMES`.
    """
    numbers = {}
    for name, kernel in kernels.items():
        norm = float(np.linalg.norm(np.asarray(kernel, np.float64)))
        numbers[f"{name}/weight_norm"] = norm
        numbers[f"{name}/effective_lr"] = lr / norm**2 if norm > 0 else math.nan
        numbers[f"{name}/angular_update"] = (
            angle(before[name], kernel) if before else math.nan
        )
        numbers[f"{name}/angle_per_step"] = (
            angle(previous[name], kernel) / steps if previous and steps else math.nan
        )
    return numbers


class EffectiveStep(StepCallback):
    """Kernel norms, effective learning rate and angular update per step.

    Args:
        every_n_steps: Interval in optimizer steps (>= 1).
        log_dir: TensorBoard folder (events go to `log_dir/train`), or None.
    """

    def __init__(self, every_n_steps, log_dir):
        super().__init__(every_n_steps, log_dir)
        self.layer_names = []

    def _reset_runtime_state(self):
        super()._reset_runtime_state()
        self._before = None  # kernels before the step that ends at a reading
        self._previous = None  # `(step, kernels)` of the previous reading

    def _kernels(self):
        return {
            layer.name: keras.ops.convert_to_numpy(layer.kernel)
            for layer in hidden_kernel_layers(self.model)
        }

    def on_train_batch_begin(self, batch, logs=None):
        # only before a step that ends on the interval: reading the kernels
        # costs a copy from the device, which other steps do not pay
        if (self._step + 1) % self.every_n_steps == 0:
            self._before = self._kernels()

    def measure(self, step):
        kernels = self._kernels()
        self.layer_names = list(kernels)
        rate = self.model.optimizer.learning_rate
        lr = float(keras.ops.convert_to_numpy(rate))
        last, previous = self._previous or (None, None)
        steps = None if last is None else step - last
        numbers = readings(kernels, lr, self._before, previous, steps)
        self._before, self._previous = None, (step, kernels)
        return {f"effective_step/{k}": v for k, v in numbers.items()}, {}


def curves(callback):
    """The record's `effective_step` curves: `step`, `layers` (their names),
    each of `NAMES` as the mean over the layers, and `per_layer` (`{layer:
    {name: values}}`)."""
    history = callback.history
    per_layer = {
        layer: {
            name: history.get(f"effective_step/{layer}/{name}", []) for name in NAMES
        }
        for layer in callback.layer_names
    }
    means = {}
    for name in NAMES:
        series = [np.asarray(per_layer[layer][name], float) for layer in per_layer]
        # a reading's mean is NaN where any layer's is (step 0's angles),
        # and every reading's without a hidden kernel (a one-layer model)
        empty = [math.nan] * len(history["step"])
        means[name] = np.vstack(series).mean(axis=0).tolist() if series else empty
    return {
        "step": history["step"],
        "layers": list(callback.layer_names),
        **means,
        "per_layer": per_layer,
    }
