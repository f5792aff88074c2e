"""A study's model and data, resolved once, where the caller gives them.

The surfaces (`studies.surfaces.api.prepare`) turn what the caller gave (a
built-in name, `MODULE:FUNCTION`, a callable, arrays) into a `ModelInput` and
a `DataInput`; the runner, the model checks and the data loader take these
and never look at the reference again. Resolving takes two steps, so that
every option is checked before a user's module is imported: `model(value)`
and `data(value)` say what the value is (None for a value they do not know),
then `load(given, option)` imports a `MODULE:FUNCTION`.

No Keras here: the built-in builders load it when they build a model.
"""

import dataclasses

from studies.inputs import data as datasets
from studies.inputs import models, plugins


@dataclasses.dataclass(frozen=True)
class ModelInput:
    """A study's model builder.

    Attributes:
        name: What the study records: a built-in name, `MODULE:FUNCTION`, or
            a callable's `module:qualname`.
        builder: The builder (`studies.inputs.builders`); None until a
            reference is loaded.
        reference: The `plugins.Reference` to import, or None.
    """

    name: str
    builder: object = None
    reference: plugins.Reference | None = None

    @property
    def standard_init(self):
        """The init family the builder starts from: its `standard_init`
        attribute, else Keras's default (`glorot_uniform`), which its layers
        would get anyway."""
        return getattr(self.builder, "standard_init", "glorot_uniform")


@dataclasses.dataclass(frozen=True)
class DataInput:
    """A study's data.

    Attributes:
        name: What the study records: a dataset name, a `.npz` path,
            `MODULE:FUNCTION`, `arrays` or `tf.data`.
        source: What `datasets.load` reads: the name or path, the function a
            reference names (None until it is loaded), or the Python objects.
        reference: The `plugins.Reference` to import, or None.
    """

    name: str
    source: object = None
    reference: plugins.Reference | None = None


def model(value):
    """The `ModelInput` of `value` (a built-in name, `MODULE:FUNCTION` or a
    callable), or None for a value that is none of them."""
    if callable(value):
        return ModelInput(plugins.name_of(value), value)
    if isinstance(value, str) and value in models.BUILDERS:
        return ModelInput(value, models.BUILDERS[value])
    reference = plugins.parse(value)
    return None if reference is None else ModelInput(value, reference=reference)


def data(value):
    """The `DataInput` of `value` (a dataset name, a `.npz` path,
    `MODULE:FUNCTION`, the arrays or a `(train, test)` pair of
    `tf.data.Dataset`s), or None for a string that is none of them."""
    if not isinstance(value, str):
        pair = isinstance(value, list | tuple) and len(value) == 2
        return DataInput("tf.data" if pair else "arrays", value)
    reference = plugins.parse(value)
    if reference is not None:
        return DataInput(value, reference=reference)
    if value in datasets.NAMES or value.endswith(".npz"):
        return DataInput(value, value)
    return None


def load(given, option):
    """`given` with the function its reference names (unchanged without one).

    Args:
        given: A `ModelInput` or `DataInput`.
        option: The option it came from, as the caller spells it (`--model`).

    Raises:
        plugins.PluginError: the module or function cannot be loaded.
    """
    if given.reference is None:
        return given
    function = plugins.load(given.reference, option)
    field = "builder" if isinstance(given, ModelInput) else "source"
    return dataclasses.replace(given, **{field: function})


def named(what, name, spell=str):
    """The loaded `ModelInput` (`what="model"`) or `DataInput`
    (`what="dataset"`) of a spec's recorded name: what the runner uses when
    its caller (a test, a benchmark) resolved nothing. `spell(option)` names
    the option in messages.

    Raises:
        plugins.PluginError: a name that is no model or dataset, or a
            reference that cannot be loaded.
    """
    given = model(name) if what == "model" else data(name)
    if given is None:
        raise plugins.PluginError(f"unknown {what} {name!r}")
    return load(given, spell(what))
