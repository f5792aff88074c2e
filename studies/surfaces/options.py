"""The options of a study, checked once for the command line and the Python API.

`check(study, options, style)` takes Python values (lists, ints, floats,
strings; None means "the preset's") and raises `OptionError` naming the
option as the caller spells it: `--lrs` on the command line, `lrs` in
`studies.run(...)`. What each option takes comes from the table
(`option_table.OPTIONS`). No Keras or TensorFlow here, so the command line
answers bad input before importing them.
"""

import math
import numbers

from studies.inputs import variants as variant_registry
from studies.science import definitions
from studies.science.spec import AXES
from studies.surfaces import option_table
from studies.surfaces.option_table import BY_NAME, OPTIONS, STUDY_OPTIONS

_INSIDE = {
    "positive": lambda v: v > 0,
    ">= 0": lambda v: v >= 0,
    "in [0, 1)": lambda v: 0 <= v < 1,
    "in (0, 1]": lambda v: 0 < v <= 1,
}


class OptionError(ValueError):
    """An option with a bad value; the message names the option."""


def flag(name, style):
    """How the caller spells option `name`: `--batch-size` on the command
    line, the keyword (`batch_size`; `data` for the dataset) in Python."""
    if style == "cli":
        return "--" + name.replace("_", "-")
    option = BY_NAME.get(name)
    return option.api if option is not None and option.api else name


def speller(style):
    """`flag` for one style: option name -> how that caller spells it."""
    return lambda name: flag(name, style)


def _of_kind(*kinds):
    return [o for o in OPTIONS if o.kind in kinds and o.name in STUDY_OPTIONS]


def check(study, options, style="api", variants=None):
    """Checks every option of `study`; returns them without the None ones.

    Args:
        study: The study name.
        options: Option name -> value (Python types).
        style: `cli` or `api`, for the option names in messages.
        variants: The variant names that exist (default: the registry's).

    Raises:
        OptionError: an unknown option or study, or a bad value.
    """
    if study not in definitions.DEFINITIONS:
        raise OptionError(
            f"unknown study {study!r}: choose one of {', '.join(definitions.STUDIES)}"
        )
    unknown = sorted(set(options) - set(STUDY_OPTIONS))
    if unknown:
        known = sorted(flag(name, style) for name in STUDY_OPTIONS)
        raise OptionError(
            f"unknown option(s) {', '.join(unknown)}: the options are "
            f"{', '.join(known)}"
        )
    given = {k: v for k, v in options.items() if v is not None}

    def name(option):
        return flag(option, style)

    for option in _of_kind("int"):
        if option.name in given:
            _positive_int(given[option.name], name(option.name))
    for option in _of_kind("switch"):
        if option.name in given and not isinstance(given[option.name], bool):
            raise OptionError(
                f"{name(option.name)} takes True or False, got {given[option.name]!r}"
            )
    for option in _of_kind("numbers", "ints"):
        if option.name in given:
            kind = int if option.kind == "ints" else float
            given[option.name] = _number_list(
                given[option.name], name(option.name), kind, option.range
            )
    for option in _of_kind("choice"):
        allowed = option.names()
        if option.name in given and given[option.name] not in allowed:
            raise OptionError(
                f"{name(option.name)} must be one of {', '.join(allowed)}, "
                f"got {given[option.name]!r}"
            )
    for option in _of_kind("names"):
        if option.name in given and option.name != "variants":
            given[option.name] = _name_list(
                given[option.name], name(option.name), option.names()
            )
    if "variants" in given:
        given["variants"] = check_variants(given["variants"], style, variants)
    _check_numbers(given, name)
    _check_axes(study, given, name)
    return given


def check_variants(values, style="api", known=None):
    """The variant names, checked against `known` (default: the registry's)."""
    return _name_list(
        values, flag("variants", style), tuple(known or variant_registry.names())
    )


def _check_numbers(given, name):
    if "epochs" in given and "steps" in given:
        raise OptionError(
            f"{name('epochs')} and {name('steps')} are two budgets: give one"
        )
    for option in _of_kind("number"):
        if option.name not in given or not option.range:
            continue
        value, what = given[option.name], option.range
        if not _is_number(value) or not math.isfinite(value):
            raise OptionError(f"{name(option.name)} must be a number, got {value!r}")
        if not _INSIDE[what](value):
            raise OptionError(f"{name(option.name)} must be {what}, got {value!r}")
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
        tuning = axis == "lr" and definitions.tunes_lr(study)  # a tuning grid
        if axis != "variant" and values and len(values) > 1 and axis not in axes:
            if tuning:
                continue
            sweeps = " or ".join(option_table.studies_with(axis))
            raise OptionError(
                f"study {study} trains at one fixed {what}: give {name(option)} "
                f"one value (use {sweeps} to sweep it)"
            )
    # a one-value option named as its axis (`lr`, `batch_size`)
    for single in (o.name for o in OPTIONS if o.name in AXES):
        option, what = AXES[single]
        if single in given and single in axes:
            raise OptionError(
                f"study {study} sweeps the {what}: give {name(option)}, "
                f"not {name(single)}"
            )
        if single in given and option in given:
            raise OptionError(f"give {name(single)} or {name(option)}, not both")


def check_applies(spec, given, style="api"):
    """Refuses an option the study would silently ignore (the table's
    `applies`; `target_scaling` on a task the data decides waits for the
    data: `runner.load_data`).

    Args:
        spec: The study built from the options (presets filled in).
        given: The options the caller gave (None: not given).
        style: `cli` or `api`, for the option names in messages.

    Raises:
        OptionError: naming the option and what it needs.
    """
    for option in OPTIONS:
        value = given.get(option.name)
        if option.applies is None or value is None:
            continue
        if option.kind == "switch" and not value:  # off: asks for nothing
            continue
        if not option.applies(spec):
            spelled = {o.name: flag(o.name, style) for o in OPTIONS}
            raise OptionError(
                f"{flag(option.name, style)} {option.refusal.format(**spelled)}"
            )


def check_run(lease_timeout, style="api", fuse=None):
    """Checks the options of how a study runs (not what it is)."""
    value = lease_timeout
    if not _is_number(value) or not math.isfinite(value) or value < 1:
        raise OptionError(
            f"{flag('lease_timeout', style)} must be a number of seconds >= 1 "
            f"(heartbeats come every quarter of it), got {value!r}"
        )
    if fuse is not None:
        _positive_int(fuse, f"{flag('fuse', style)} (cells trained together)")
        if fuse < 1:
            raise OptionError(
                f"{flag('fuse', style)} must be an integer >= 1 (cells trained "
                f"together; 1: one at a time), got {fuse!r}"
            )


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _positive_int(value, option):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise OptionError(f"{option} must be an integer, got {value!r}")
    if value < 1:
        raise OptionError(f"{option} must be >= 1, got {value}")


def _number_list(values, option, kind, inside=""):
    """The list of numbers `values`, each finite and `inside` (a range of
    `_INSIDE`; default: positive), no value repeated."""
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        values = [values]
    values = list(values)
    if not values:
        raise OptionError(f"{option} is empty")
    for value in values:
        if not _is_number(value) or (kind is int and int(value) != value):
            what = "integers" if kind is int else "numbers"
            raise OptionError(f"{option} takes {what}, got {value!r}")
        if not math.isfinite(value) or not _INSIDE[inside or "positive"](value):
            raise OptionError(
                f"{option} values must be {inside or 'positive'}, got {value!r}"
            )
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
