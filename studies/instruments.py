"""The `kbn.callbacks` a study cell runs, and the curves its record keeps.

With instruments on (`--instruments`, or a study that needs them), every
`probe_every` optimizer steps a cell measures:

- always: the accuracy on the training set and on the validation split (the
  series and tag keep the name `test` from before the three-way split; the
  held-out test split is scored only once, at the end),
  in inference mode (`StepAccuracy`; tags `steps/train_accuracy`,
  `steps/test_accuracy`);
- `percentiles`: `kbn.callbacks.ActivationPercentiles` on unit 0 of every
  nonlinearity's input, on a fixed probe batch of training examples;
- `landscape`: `kbn.callbacks.LandscapeProbe` on a batch of the training
  batch size drawn from the training set.

All write TensorBoard scalars into the cell's own folder, next to Keras's
TensorBoard callback, and the numbers go into the cell's record as `curves`,
so the report is rebuilt from the study folder alone.
"""

import keras
import numpy as np

from kbn.callbacks import ActivationPercentiles, LandscapeProbe, StepCallback

PROBE_EXAMPLES = 512  # the percentiles' fixed probe batch
ACCURACY_EXAMPLES = 2048  # cap on the examples scored per set and step
UNIT = 0  # the one unit whose input percentiles are followed, as in the paper


class StepAccuracy(StepCallback):
    """Accuracy on fixed training and validation sets every N steps.

    Args:
        train: `(x, y)` training examples (at most `ACCURACY_EXAMPLES` used).
        test: `(x, y)` validation examples.
        every_n_steps: Interval in optimizer steps.
        log_dir: TensorBoard folder, or None.
    """

    def __init__(self, train, test, every_n_steps, log_dir):
        super().__init__(every_n_steps, log_dir)
        self.sets = {
            "train": tuple(a[:ACCURACY_EXAMPLES] for a in train),
            "test": tuple(a[:ACCURACY_EXAMPLES] for a in test),
        }

    def measure(self, step):
        scalars = {}
        for name, (x, y) in self.sets.items():
            logits = keras.ops.convert_to_numpy(self.model(x, training=False))
            scalars[f"steps/{name}_accuracy"] = float(
                np.mean(np.argmax(logits, axis=-1) == y)
            )
        return scalars, {}


def callbacks(settings, x, y, validation_data, log_dir):
    """The instruments of one cell (an empty list when none are on)."""
    names = settings["instruments"]
    if not names:
        return []
    every = settings["probe_every"]
    result = [StepAccuracy((x, y), validation_data, every, log_dir)]
    if "percentiles" in names:
        result.append(
            ActivationPercentiles(
                every_n_steps=every,
                log_dir=log_dir,
                data=x[:PROBE_EXAMPLES],
                unit=UNIT,
                training=True,  # what the sigmoid sees while training
            )
        )
    if "landscape" in names:
        result.append(
            LandscapeProbe(
                every_n_steps=every,
                log_dir=log_dir,
                data=(x, y),
                batch_size=settings["batch_size"],
                seed=settings["seed"],
            )
        )
    return result


def curves(instruments, steps_per_epoch):
    """The instruments' histories as the record's `curves`.

    Returns:
        `{}` without instruments; otherwise `steps_per_epoch` and, per
        instrument, its steps and series: `accuracy` (`train`, `test`),
        `percentiles` (`layer`, `p15`, `p50`, `p85`, ... of the last
        nonlinearity followed) and `landscape` (`loss`, `grad_norm`,
        `loss_range`, `max_grad_change`, `beta_smoothness`).
    """
    result = {}
    for callback in instruments:
        history = callback.history
        if isinstance(callback, StepAccuracy):
            result["accuracy"] = {
                "step": history["step"],
                "train": history.get("steps/train_accuracy", []),
                "test": history.get("steps/test_accuracy", []),
            }
        elif isinstance(callback, ActivationPercentiles):
            # The last nonlinearity followed: the last hidden layer's input.
            prefixes = [t.rsplit("/", 1)[0] for t in history if t != "step"]
            if prefixes:
                last = prefixes[-1]
                result["percentiles"] = {
                    "layer": last.split("/")[1],
                    "step": history["step"],
                    **{
                        tag.rsplit("/", 1)[1]: values
                        for tag, values in history.items()
                        if tag.startswith(last + "/")
                    },
                }
        elif isinstance(callback, LandscapeProbe):
            result["landscape"] = {
                "step": history["step"],
                **{
                    tag.split("/", 1)[1]: values
                    for tag, values in history.items()
                    if tag != "step"
                },
            }
    if result:
        result["steps_per_epoch"] = steps_per_epoch
    return result
