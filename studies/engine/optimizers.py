"""The optimizer of a cell: kind, momentum, weight decay and learning-rate schedule.

- `sgd` (plain), `momentum` (SGD with `momentum`, default 0.9; Nesterov off)
  or `adam` (Keras defaults otherwise).
- `weight_decay`: decoupled (Loshchilov & Hutter), applied to kernels only:
  normalization scales and offsets and biases are excluded, as is usual
  (decay on a BN layer's gamma would fight its scale invariance).
- `schedule`: `constant`, or `warmup-cosine`: linear warmup from 0 over
  `warmup_fraction` of the step budget, then cosine decay to 0 at its end.

The learning rate each cell gets is the grid's value: it is the schedule's
peak. `spec.lr_scale` says how a study's SGD-sized learning rates translate
for another optimizer when the user gives none.
"""

import keras

from studies.science.spec import sgd_momentum

# Parameters no weight decay touches (matched by variable name).
NO_DECAY = ("gamma", "beta", "bias")


def make(settings, total_steps):
    """The Keras optimizer of a cell.

    Args:
        settings: The cell's settings (`optimizer`, `lr`, `momentum`,
            `weight_decay`, `schedule`, `warmup_fraction`).
        total_steps: Optimizer steps the cell will take (for the schedule).
    """
    rate = learning_rate(settings, total_steps)
    decay = settings.get("weight_decay") or None
    name = settings["optimizer"]
    if name == "adam":
        optimizer = keras.optimizers.Adam(rate, weight_decay=decay)
    elif name in ("sgd", "momentum"):
        momentum = sgd_momentum(name, settings.get("momentum"))
        optimizer = keras.optimizers.SGD(rate, momentum=momentum, weight_decay=decay)
    else:
        raise ValueError(f"unknown optimizer {name!r}")
    if decay:
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
    return optimizer


def learning_rate(settings, total_steps):
    """The peak rate, or a warmup + cosine schedule reaching it."""
    peak = settings["lr"]
    if settings.get("schedule", "constant") == "constant":
        return peak
    warmup = int(round(settings.get("warmup_fraction", 0.05) * total_steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak,
        decay_steps=max(total_steps - warmup, 1),
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )
