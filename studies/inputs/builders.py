"""The model-builder seam: what a cell hands a builder, and what it checks after.

A builder is any callable

    build(normalization, kernel_initializer, input_shape, outputs) -> keras.Model

- `normalization()` returns a fresh normalization layer of the cell's variant
  each time it is called, or None for the `none` variant (the builder then
  keeps its biases). `normalization.after_activation` says where the layer
  goes (True for `bn-after`); `normalization.residual` whether the model is
  to be built of residual blocks (True for `bn-residual`);
  `normalization.variant` is the variant's name.
- `depth` (a keyword, only when the cell sets one: the depth study, or
  `--depths` with one value) is the number of hidden layers. A builder
  that takes it declares a `depth` parameter (or `**kwargs`); one that does
  not is refused where a cell sets a depth (`takes_depth`).
- `kernel_initializer` is a `keras.initializers.Initializer` for the cell's
  init family and scale, for the hidden layers (those a variant normalizes).
  Pass the same object to every layer: each call draws new, seeded values (a
  plain seeded Keras initializer would give every layer of one shape the
  same weights). `kernel_initializer.output` is the output layer's: the
  same family at scale 1, or at the cell's scale with `scale_output`
  (`--scale-output`). No normalization follows the output layer, so with
  BN it is the one layer whose init scale changes what the network computes.
- `outputs` is the number of classes (logits) or regression targets.

A study would silently compare identical models if a builder ignored what a
cell varies, so `check` refuses a builder that never calls `normalization()`
in a normalizing variant, never reads `after_activation` in an
after-activation variant, never reads `residual` in a residual variant, or
never uses `kernel_initializer` in a study that sweeps the init; where the
init scale is not 1, one whose output layer (its last layer with a kernel)
does not follow `scale_output`: it takes `kernel_initializer` itself
without `scale_output` (the scale would multiply it), or neither that nor
`kernel_initializer.output` with it (the setting would change nothing); and
one that raises, returns something that is not a `keras.Model`, or whose
output does not fit the data. Every refusal is a
`BuilderError` with a one-line message.
"""

import inspect

import keras

from studies.inputs import models, plugins, variants


class BuilderError(ValueError):
    """A model builder that cannot run the study, with a message for the user."""


class Normalization:
    """The `normalization` argument of a builder: fresh layers of one variant.

    Args:
        variant: A `variants.Variant`.
        seed: The cell's seed; layer `i` gets `seed * 1000 + i`.
        settings: The cell's settings (passed to the variant's `make`).
    """

    def __init__(self, variant, seed, settings):
        self._variant = variant
        self._seed = seed
        self._settings = settings
        self.layers = []
        self.calls = 0
        self.placement_read = False
        self.residual_read = False

    @property
    def variant(self):
        return self._variant.name

    @property
    def after_activation(self):
        """Whether the layer goes after the nonlinearity (`bn-after`)."""
        self.placement_read = True
        return self._variant.after_activation

    @property
    def residual(self):
        """Whether the model is built of residual blocks (`bn-residual`)."""
        self.residual_read = True
        return self._variant.residual

    def __call__(self):
        self.calls += 1
        if not self._variant.normalizes:
            return None
        layer = self._variant.make(self._seed * 1000 + len(self.layers), self._settings)
        self.layers.append(layer)
        return layer


@keras.saving.register_keras_serializable(package="studies")
class CellInitializer(keras.initializers.Initializer):
    """A kernel initializer that draws new seeded values at every call.

    Args:
        family: An init family (`models.initializer`).
        scale: Multiplier of the initial weights' standard deviation.
        seed: The cell's seed; call `i` uses `seed * 1000 + i`.
        output_scale: The scale of `output`, the output layer's initializer
            (1, or `scale` with the cell's `scale_output`).
    """

    def __init__(self, family, scale=1.0, seed=0, output_scale=1.0):
        self.family = family
        self.scale = scale
        self.seed = seed
        self.output_scale = output_scale
        self.calls = 0
        self.output_read = False
        self._owner = self  # whose call count seeds the draws

    @property
    def output(self):
        """The output layer's initializer: this family at `output_scale`,
        drawing from the same seeded sequence (the output layer built last
        gets the values it got when every kernel took the cell's scale)."""
        self.output_read = True
        view = CellInitializer(self.family, self.output_scale, self.seed)
        view._owner = self
        return view

    def __call__(self, shape, dtype=None):
        owner = self._owner
        initializer = models.initializer(
            self.family, self.scale, self.seed * 1000 + owner.calls
        )
        owner.calls += 1
        return initializer(shape, dtype=dtype)

    def get_config(self):
        return {
            "family": self.family,
            "scale": self.scale,
            "seed": self.seed,
            "output_scale": self.output_scale,
        }


def takes_depth(builder):
    """Whether `builder` accepts a `depth` keyword (a parameter of that name,
    or `**kwargs`); a callable whose signature cannot be read is asked."""
    try:
        parameters = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.name == "depth" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
    )


def check_depth(builder, settings, name="model"):
    """Refuses a builder without a `depth` parameter for a cell that sets a
    depth (`BuilderError`, one line naming the builder and `depth`)."""
    if settings.get("depth") is not None and not takes_depth(builder):
        fix = (
            "it has a fixed structure: use one that does ("
            + ", ".join(n for n in models.NAMES if takes_depth(models.BUILDERS[n]))
            + ")"
            if name in models.NAMES
            else "add a `depth=None` parameter (the number of hidden layers) to it"
        )
        raise BuilderError(
            f"model builder {name} takes no depth argument, and this study sets "
            f"each cell's depth ({settings['depth']} hidden layers here): {fix}"
        )


def build(builder, settings, input_shape, outputs, name="model"):
    """Builds the cell's model; returns `(model, normalization, initializer)`.

    Raises:
        BuilderError: the builder raised or did not return a `keras.Model`,
            or takes no `depth` for a cell that sets one.
    """
    check_depth(builder, settings, name)
    extra = {} if settings.get("depth") is None else {"depth": settings["depth"]}
    normalization = Normalization(
        variants.get(settings["variant"]), settings["seed"], settings
    )
    scale = settings["init_scale"]
    initializer = CellInitializer(
        settings["init"],
        scale,
        settings["seed"],
        output_scale=scale if settings.get("scale_output") else 1.0,
    )
    try:
        shape = tuple(input_shape)
        model = builder(normalization, initializer, shape, outputs, **extra)
    except BuilderError:
        raise
    except Exception as error:
        raise BuilderError(
            f"model builder {name} raised {type(error).__name__}: "
            f"{plugins.first_line(error)}"
        ) from None
    if not isinstance(model, keras.Model):
        raise BuilderError(
            f"model builder {name} returned {type(model).__name__}, not a keras.Model"
        )
    return model, normalization, initializer


def check(builder, settings, x, outputs, uses_init, name="model", scales=False):
    """Builds one model of the cell and checks it honours the cell (see above).

    Args:
        x: A few examples of the data, run through the model.
        uses_init: Whether the study sets the init (sweeps it, or fixes a
            family or scale other than the builder's standard one).
        scales: Whether the study's init scale can be other than 1 (then
            the output layer must follow `scale_output`).
    """
    model, normalization, initializer = build(
        builder, settings, x.shape[1:], outputs, name
    )
    variant = variants.get(settings["variant"])
    if variant.normalizes and not normalization.layers:
        raise BuilderError(
            f"model builder {name} never calls normalization(): variant "
            f"{variant.name} would train the same model as none"
        )
    if variant.after_activation and not normalization.placement_read:
        raise BuilderError(
            f"model builder {name} never reads normalization.after_activation: "
            f"variant {variant.name} needs the layer placed after the nonlinearity"
        )
    if variant.residual and not normalization.residual_read:
        raise BuilderError(
            f"model builder {name} never reads normalization.residual: variant "
            f"{variant.name} needs residual blocks (it would train a plain net)"
        )
    try:
        out = keras.ops.convert_to_numpy(model(x, training=False))
    except Exception as error:
        raise BuilderError(
            f"model of builder {name} fails on examples of shape "
            f"{tuple(x.shape[1:])}: {type(error).__name__}: {plugins.first_line(error)}"
        ) from None
    if out.ndim != 2 or out.shape[-1] != outputs:
        raise BuilderError(
            f"model of builder {name} outputs shape {tuple(out.shape)} per batch; "
            f"the data needs (batch, {outputs})"
        )
    # after the forward pass: a model without an Input builds its weights then
    if uses_init and not initializer.calls:
        raise BuilderError(
            f"model builder {name} never uses kernel_initializer: the study's "
            "init setting would change nothing"
        )
    if scales:
        _check_output(model, initializer, settings.get("scale_output"), name)


def _check_output(model, initializer, scale_output, name):
    """Refuses a model whose output layer does not follow `scale_output`: the
    output layer is its last layer with a kernel initializer (a layer of
    another kind counts as following if the builder read `.output`)."""
    found = _output_layer_initializer(model)
    scaled = found is initializer  # the hidden layers' initializer
    if found is None:
        follows = initializer.output_read
    else:
        follows = getattr(found, "_owner", None) is initializer and not scaled
    if scale_output and not (scaled or follows):
        raise BuilderError(
            f"model builder {name} never uses kernel_initializer.output for its "
            "output layer: scale_output would change nothing (initialize the "
            "output layer with kernel_initializer.output)"
        )
    if not scale_output and scaled:
        raise BuilderError(
            f"model builder {name} initializes its output layer with "
            "kernel_initializer, which the init scale multiplies: use "
            "kernel_initializer.output there (scale 1; the cell's scale with "
            "--scale-output, scale_output=True)"
        )


def _output_layer_initializer(model):
    """The kernel initializer of the model's last layer with one, or None."""
    for layer in reversed(_layers(model)):
        found = getattr(layer, "kernel_initializer", None)
        if found is not None:
            return found
    return None


def _layers(model):
    """The model's layers in order, nested models' layers in place."""
    found = []
    for layer in model.layers:
        found += _layers(layer) if isinstance(layer, keras.Model) else [layer]
    return found
