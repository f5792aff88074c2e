"""What there is to run, read from the registries: the studies with their
presets, the variants (registered ones included), the models, the datasets.

`python -m studies list` prints it (`listing`, `text`), each study's
`--help` shows its own preset values and only the options it takes
(`offered`, `preset_values`), and the documentation's study pages are
generated from it (`study_markdown`). No Keras here: the command line reads
this before any backend loads.
"""

from studies.inputs import data as datasets
from studies.inputs import variants
from studies.science import definitions, tuning
from studies.science.spec import AXES, make_spec
from studies.surfaces import option_table

MODELS = {
    "mlp-relu": "6x100 ReLU MLP, He init (the default; takes --depths)",
    "mlp-sigmoid": "3x100 sigmoid MLP, the BN paper's MNIST net, 4x Glorot init "
    "(takes --depths)",
    "cnn": "small VGG-style CNN (Conv2D on images, Conv1D on sequences), He init",
}
DATASETS = {
    "digits": "scikit-learn's 8x8 digits, 1797 images (offline; the default)",
    "mnist1d": "MNIST-1D, 5000 sequences of 40 points, generated locally (offline)",
    "synthetic": "10-class make_classification, 32 features (offline)",
    "mnist": "MNIST through keras.datasets (downloaded on first use)",
    "fashion_mnist": "Fashion-MNIST through keras.datasets (downloaded on first use)",
    "cifar10": "CIFAR-10 through keras.datasets (downloaded on first use)",
}


def offered(option, study):
    """Whether `study` takes `option` (a table entry): its `--help` lists it.

    A one-value option named as an axis the study sweeps (`--lr` in `lr`,
    `--batch-size` in `batch-size`) is always refused there, so its help
    does not list it; options that apply under a condition (`--warmup-fraction`
    with `--schedule warmup-cosine`) are listed with that condition.
    """
    return not (option.name in AXES and option.name in definitions.get(study).axes)


def _value(spec, name):
    """What `spec` holds for option `name` (None: nothing to show)."""
    if name == "seeds":
        return len(spec.axes["seed"])
    if name == "lrs" and spec.fixed.get("tune_lrs"):
        return spec.fixed["tune_lrs"]  # the tuning grid
    if name == "lr" and spec.fixed.get("tune_lrs"):
        return None  # tuned per variant: no one rate
    for axis, (list_option, _) in AXES.items():
        if name == list_option:
            return spec.axes.get(axis, spec.fixed.get(axis))
    if name in AXES:
        return None if name in spec.axes else spec.fixed.get(name)
    return spec.fixed.get(name)


def shown(value):
    """A preset value as the command line spells it (`0.01,0.03`, `15`)."""
    if isinstance(value, list | tuple):
        return ",".join(shown(v) for v in value) if value else "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def preset_values(option, study):
    """`{preset: value}` for an option whose value `study`'s presets set
    (differs from the option's default, or the preset decides it); else {}."""
    if not option.study or option.name in ("dataset", "task"):
        return {}
    default = option.default
    for axis, (list_option, _) in AXES.items():  # one value where not swept
        if option.name == list_option and axis not in definitions.get(study).axes:
            default = definitions.COMMON.get(axis)
    found = {}
    for preset in definitions.PRESETS:
        value = _value(make_spec(study, preset), option.name)
        if value is not None and value != [] and value != default:
            found[preset] = value
    return found


def preset_text(option, study):
    """` [quick: 15; full: 30]` for `--help`, or ""."""
    found = preset_values(option, study)
    if not found:
        return ""
    values = list(found.values())
    if len(found) == len(definitions.PRESETS) and values.count(values[0]) == len(
        values
    ):
        return f" [{' and '.join(found)}: {shown(values[0])}]"
    return " [" + "; ".join(f"{p}: {shown(v)}" for p, v in found.items()) + "]"


def listing():
    """Everything there is to run, as plain data (`list --format json`)."""
    return {
        "studies": {
            d.name: {
                "description": d.description,
                "axes": list(d.axes),
                "presets": {
                    p: tuning.cells_total(make_spec(d.name, p))
                    for p in definitions.PRESETS
                },
            }
            for d in definitions.DEFINITIONS.values()
        },
        "variants": {name: variants.get(name).description for name in variants.names()},
        "models": dict(MODELS),
        "datasets": {name: DATASETS.get(name, "") for name in datasets.NAMES},
    }


def text(found):
    """`listing()` as `python -m studies list` prints it."""
    lines = []
    for title, entries in found.items():
        lines.append(f"{title}:")
        width = max(len(name) for name in entries)
        for name, about in entries.items():
            if title == "studies":
                cells = ", ".join(f"{p} {n} cells" for p, n in about["presets"].items())
                about = f"{about['description']} ({cells})"
            lines.append(f"  {name.ljust(width)}  {about}")
    lines += [
        "",
        "models and datasets also take MODULE:FUNCTION; a .npz file is a dataset;",
        "studies.variants.register(name, make) adds a variant (in a --model module,",
        "give that --model to `list` to see it).",
    ]
    return "\n".join(lines)


def study_markdown(study):
    """The generated part of a study's documentation page: what it sweeps,
    its presets and the options that set it, as Markdown."""
    definition = definitions.get(study)
    lines = [
        f"`python -m studies {study}`: {definition.description}.",
        "",
        "| setting | option | " + " | ".join(definitions.PRESETS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in definitions.PRESETS) + " |",
    ]
    specs = {p: make_spec(study, p) for p in definitions.PRESETS}
    lines.append(
        "| cells | | "
        + " | ".join(str(tuning.cells_total(s)) for s in specs.values())
        + " |"
    )
    for option in option_table.OPTIONS:
        if not offered(option, study):
            continue
        found = preset_values(option, study)
        if not found:
            continue
        cells = [f"`{shown(found[p])}`" if p in found else "" for p in specs]
        lines.append(f"| {option.name} | `{option.flag}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Axes, in loop order: " + ", ".join(f"`{a}`" for a in definition.axes) + ".",
    ]
    if definition.instruments:
        lines.append(
            "Instruments it runs: "
            + ", ".join(f"`{i}`" for i in definition.instruments)
            + "."
        )
    refused = [o.flag for o in option_table.OPTIONS if o.flag and not offered(o, study)]
    if refused:
        lines.append("Refused here (the study sweeps it): " + ", ".join(refused) + ".")
    return "\n".join(lines) + "\n"
