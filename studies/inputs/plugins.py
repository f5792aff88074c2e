"""`MODULE:FUNCTION` references: a user's model builder or data function.

The current directory is importable, as with `python -m`, so a file
`my_models.py` next to where the study is started is `my_models:build`.
Every failure is a `PluginError` with a one-line message.
"""

import importlib
import os
import sys


class PluginError(ValueError):
    """A `MODULE:FUNCTION` that cannot be used, with a message for the user."""


def is_reference(text):
    """Whether `text` looks like `MODULE:FUNCTION` (not a path or a name)."""
    if not isinstance(text, str) or text.count(":") != 1:
        return False
    module, function = text.split(":")
    return bool(module) and bool(function) and not text.endswith(".npz")


def load(reference, option):
    """The callable `reference` (`MODULE:FUNCTION`) names.

    Args:
        reference: `package.module:function` (`function` may be dotted:
            `module:Class.method`).
        option: The option it came from, for the message (`--model`).

    Raises:
        PluginError: not of that form, a module that cannot be imported (or
            raises on import), a missing attribute or one that is not callable.
    """
    if not is_reference(reference):
        raise PluginError(f"{option} {reference!r} is not MODULE:FUNCTION")
    module_name, attribute = reference.split(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise PluginError(
            f"{option} {reference}: cannot import module {error.name!r} "
            "(run from the folder that holds it, or install it)"
        ) from None
    except Exception as error:
        raise PluginError(
            f"{option} {reference}: importing {module_name} raised "
            f"{type(error).__name__}: {first_line(error)}"
        ) from None
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise PluginError(f"{option} {reference}: {module_name} has no {attribute}")
        target = getattr(target, part)
    if not callable(target):
        raise PluginError(f"{option} {reference}: {attribute} is not callable")
    return target


def name_of(function):
    """`module:qualname` of a callable, the name a study folder records."""
    module = getattr(function, "__module__", None) or "?"
    qualname = getattr(function, "__qualname__", None) or type(function).__name__
    return f"{module}:{qualname}"


def first_line(error):
    """The first line of an exception's message (for one-line reports)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"
