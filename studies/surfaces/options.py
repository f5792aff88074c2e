"""The options of a study, checked once for the command line and the Python API.

`check(study, options, style)` takes Python values (lists, ints, floats,
strings; None means "the preset's") and raises `OptionError` naming the
option as the caller spells it: `--lrs` on the command line, `lrs` in
`studies.run(...)`. No Keras or TensorFlow here, so the command line answers
bad input before importing them.
"""

import math
import numbers

from studies.inputs import plugins
from studies.science import definitions

# Python name -> what it takes. Lists are grid axes (or one fixed value).
POSITIVE_INTS = (
    "seeds",
    "epochs",
    "steps",
    "batch_size",
    "train_size",
    "probe_every",
    "virtual_batch_size",
)
NUMBER_LISTS = ("lrs", "init_scales")
INT_LISTS = ("batch_sizes",)
CHOICES = {
    "preset": definitions.PRESETS,
    "optimizer": definitions.OPTIMIZERS,
    "schedule": definitions.SCHEDULES,
    "task": definitions.TASKS,
    "feature_scaling": definitions.FEATURE_SCALINGS,
    "target_scaling": definitions.FEATURE_SCALINGS,
}
NAME_LISTS = {"inits": definitions.INITS, "instruments": definitions.INSTRUMENTS}
OTHERS = (
    "variants",
    "lr",
    "divergence_threshold",
    "momentum",
    "weight_decay",
    "warmup_fraction",
    "model",
    "dataset",
)
# The options that take one value (the command line passes them as parsed).
SCALARS = (
    *POSITIVE_INTS,
    "divergence_threshold",
    "optimizer",
    "momentum",
    "weight_decay",
    "schedule",
    "warmup_fraction",
    "task",
    "feature_scaling",
    "target_scaling",
)
KNOWN = (*POSITIVE_INTS, *NUMBER_LISTS, *INT_LISTS, *CHOICES, *NAME_LISTS, *OTHERS)
# axis -> (its list option, what it is, in words)
AXES = {
    "lr": ("lrs", "learning rate"),
    "init": ("inits", "init family"),
    "init_scale": ("init_scales", "init scale"),
    "batch_size": ("batch_sizes", "batch size"),
}


_RANGES = {
    "lr": "positive",
    "divergence_threshold": "positive",
    "weight_decay": ">= 0",
    "momentum": "in [0, 1)",
    "warmup_fraction": "in [0, 1)",
}
_INSIDE = {
    "positive": lambda v: v > 0,
    ">= 0": lambda v: v >= 0,
    "in [0, 1)": lambda v: 0 <= v < 1,
}


class OptionError(ValueError):
    """An option with a bad value; the message names the option."""


def flag(name, style):
    """How the caller spells option `name`: `--batch-size` or `batch_size`."""
    return "--" + name.replace("_", "-") if style == "cli" else name


def check(study, options, style="api", variants=None):
    """Checks every option of `study`; returns them without the None ones.

    Args:
        study: The study name.
        options: Option name -> value (Python types).
        style: `cli` or `api`, for the option names in messages.
        variants: The variant names that exist (default: the built-in ones).

    Raises:
        OptionError: an unknown option or study, or a bad value.
    """
    if study not in definitions.DEFINITIONS:
        raise OptionError(
            f"unknown study {study!r}: choose one of {', '.join(definitions.STUDIES)}"
        )
    unknown = sorted(set(options) - set(KNOWN))
    if unknown:
        raise OptionError(
            f"unknown option(s) {', '.join(unknown)}: the options are "
            f"{', '.join(sorted(KNOWN))}"
        )
    given = {k: v for k, v in options.items() if v is not None}

    def name(option):
        return flag(option, style)

    for option in POSITIVE_INTS:
        if option in given:
            _positive_int(given[option], name(option))
    for option in NUMBER_LISTS:
        if option in given:
            given[option] = _number_list(given[option], name(option), float)
    for option in INT_LISTS:
        if option in given:
            given[option] = _number_list(given[option], name(option), int)
    for option, allowed in CHOICES.items():
        if option in given and given[option] not in allowed:
            raise OptionError(
                f"{name(option)} must be one of {', '.join(allowed)}, "
                f"got {given[option]!r}"
            )
    for option, allowed in NAME_LISTS.items():
        if option in given:
            given[option] = _name_list(given[option], name(option), allowed)
    if "variants" in given:
        given["variants"] = check_variants(given["variants"], style, variants)
    _check_numbers(given, name)
    _check_axes(study, given, name)
    for option in ("model", "dataset"):
        value = given.get(option)
        if isinstance(value, str) and ":" in value and not value.endswith(".npz"):
            if not plugins.is_reference(value):
                raise OptionError(f"{name(option)} {value!r} is not MODULE:FUNCTION")
    return given


def check_variants(values, style="api", known=None):
    """The variant names, checked against `known` (default: the built-in ones)."""
    return _name_list(
        values, flag("variants", style), tuple(known or definitions.VARIANTS)
    )


def _check_numbers(given, name):
    if "epochs" in given and "steps" in given:
        raise OptionError(
            f"{name('epochs')} and {name('steps')} are two budgets: give one"
        )
    for option, what in _RANGES.items():
        if option not in given:
            continue
        value = given[option]
        if not _is_number(value) or not math.isfinite(value):
            raise OptionError(f"{name(option)} must be a number, got {value!r}")
        if not _INSIDE[what](value):
            raise OptionError(f"{name(option)} must be {what}, got {value!r}")
    if "momentum" in given and given.get("optimizer") == "adam":
        raise OptionError(
            f"{name('momentum')} applies to sgd and momentum, not adam "
            "(Adam's beta_1 plays that part)"
        )


def _check_axes(study, given, name):
    """One value for an axis the study does not sweep; the sweep's own option
    for an axis it does."""
    axes = definitions.get(study).axes
    for axis, (option, what) in AXES.items():
        values = given.get(option)
        if values and len(values) > 1 and axis not in axes:
            sweeps = " or ".join(
                d.name for d in definitions.DEFINITIONS.values() if axis in d.axes
            )
            raise OptionError(
                f"study {study} trains at one fixed {what}: give {name(option)} "
                f"one value (use {sweeps} to sweep it)"
            )
    for single, axis in (("batch_size", "batch_size"), ("lr", "lr")):
        option, what = AXES[axis]
        if single in given and axis in axes:
            raise OptionError(
                f"study {study} sweeps the {what}: give {name(option)}, "
                f"not {name(single)}"
            )
        if single in given and option in given:
            raise OptionError(f"give {name(single)} or {name(option)}, not both")


def check_applies(spec, given, style="api"):
    """Refuses an option the study would silently ignore.

    Args:
        spec: The study built from the options (presets filled in).
        given: The options the caller gave (None: not given).
        style: `cli` or `api`, for the option names in messages.

    Raises:
        OptionError: naming the option and what it needs.
    """
    variants = spec.axes.get("variant", (spec.fixed.get("variant"),))
    needs = {
        "virtual_batch_size": (
            "ghost-bn" in variants,
            "sets the ghost batch of the ghost-bn variant, which this study "
            "does not run (add ghost-bn to the variants)",
        ),
        "warmup_fraction": (
            spec.fixed.get("schedule") == "warmup-cosine",
            f"applies to the warmup-cosine schedule (give "
            f"{flag('schedule', style)} warmup-cosine)",
        ),
        "probe_every": (
            bool(spec.fixed.get("instruments")),
            f"sets how often instruments read, and this study runs none (give "
            f"{flag('instruments', style)})",
        ),
        "target_scaling": (
            spec.fixed.get("task") != "classification",
            "applies to regression targets, and the task is classification",
        ),
    }
    for option, (applies, why) in needs.items():
        if given.get(option) is not None and not applies:
            raise OptionError(f"{flag(option, style)} {why}")


def check_run(lease_timeout, style="api"):
    """Checks the options of how a study runs (not what it is)."""
    value = lease_timeout
    if not _is_number(value) or not math.isfinite(value) or value < 1:
        raise OptionError(
            f"{flag('lease_timeout', style)} must be a number of seconds >= 1 "
            f"(heartbeats come every quarter of it), got {value!r}"
        )


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _positive_int(value, option):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise OptionError(f"{option} must be an integer, got {value!r}")
    if value < 1:
        raise OptionError(f"{option} must be >= 1, got {value}")


def _number_list(values, option, kind):
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        values = [values]
    values = list(values)
    if not values:
        raise OptionError(f"{option} is empty")
    for value in values:
        if not _is_number(value) or (kind is int and int(value) != value):
            what = "integers" if kind is int else "numbers"
            raise OptionError(f"{option} takes {what}, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise OptionError(f"{option} values must be positive, got {value!r}")
    values = [kind(v) for v in values]
    if len(set(values)) != len(values):
        raise OptionError(f"{option} has repeated values: {values}")
    return values


def _name_list(values, option, allowed):
    if isinstance(values, str):
        values = [values]
    values = list(values)
    if not values:
        raise OptionError(f"{option} is empty")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        what = option.lstrip("-").rstrip("s")
        raise OptionError(
            f"unknown {what} {', '.join(map(str, unknown))}: "
            f"choose from {', '.join(allowed)}"
        )
    if len(set(values)) != len(values):
        raise OptionError(f"{option} has repeated values: {values}")
    return values
