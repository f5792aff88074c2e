"""A cell's training budget in epochs and optimizer steps.

A study gives either `epochs` or `steps` (then `epochs` is what `fit` must be
asked for to reach them; `callbacks.StepBudget` stops at the step).
"""

import math


def steps_per_epoch(settings, num_samples):
    """Optimizer steps in one epoch over `num_samples` examples."""
    return math.ceil(num_samples / settings["batch_size"])


def epochs_for(settings, num_samples):
    """The epochs to ask `fit` for: the setting, or enough to hold the step budget."""
    if settings.get("steps") is None:
        return settings["epochs"]
    return math.ceil(settings["steps"] / steps_per_epoch(settings, num_samples))


def total_steps(settings, num_samples):
    """Optimizer steps a cell takes if it runs its whole budget."""
    if settings.get("steps") is not None:
        return settings["steps"]
    return settings["epochs"] * steps_per_epoch(settings, num_samples)
