"""`MODULE:FUNCTION` references: a user's model builder or data function.

The current directory is importable, as with `python -m`, so a file
`my_models.py` next to where the study is started is `my_models:build`.
Every failure is a `PluginError` with a one-line message.
"""

import dataclasses
import importlib
import os
import sys


class PluginError(ValueError):
    """A `MODULE:FUNCTION` that cannot be used, with a message for the user."""


@dataclasses.dataclass(frozen=True)
class Reference:
    """A parsed `MODULE:FUNCTION` (`function` may be dotted: `module:Class.method`)."""

    module: str
    attribute: str

    def __str__(self):
        return f"{self.module}:{self.attribute}"


def parse(text):
    """The `Reference` `text` names, or None if it is not `MODULE:FUNCTION`
    (a name, or a path such as `data.npz`)."""
    if not isinstance(text, str) or text.count(":") != 1 or text.endswith(".npz"):
        return None
    module, attribute = text.split(":")
    return Reference(module, attribute) if module and attribute else None


def load(reference, option):
    """The callable `reference` names.

    Args:
        reference: A `Reference` (from `parse`).
        option: The option it came from, as the caller spells it, for the
            message (`--model`, `model`).

    Raises:
        PluginError: a module that cannot be imported (or raises on import),
            a missing attribute or one that is not callable.
    """
    module_name, attribute = reference.module, reference.attribute
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
