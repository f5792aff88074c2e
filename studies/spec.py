"""What a study is: its named axes, their grid values, and its fixed settings.

A `StudySpec` is plain data. It knows nothing of Keras or Keras Tuner: the
oracle walks `spec.cells()`, the hypermodel builds one cell from its values,
and the analysis reads the results back by the same axis names. The spec is
saved as `study.json` in the study folder, so a resumed run can check that
it continues the same study, and `report DIR` can rebuild everything from it.

Hyperparameter roles (the tuning playbook's vocabulary): the normalization
`variant` is *scientific*; `lr` and `init_scale` are the axes whose
sensitivity is measured; `seed` is *nuisance*, averaged away; everything in
`fixed` (model, data, epochs, batch size, optimizer) is held constant.
"""

import dataclasses
import itertools
import json
import math

STUDIES = ("lr", "init", "lr-init", "noise", "covariate-shift", "landscape")

MODELS = ("mlp-sigmoid", "mlp-relu", "cnn")
OPTIMIZERS = ("sgd", "momentum", "adam")
INITS = ("glorot_uniform", "he_normal", "lecun_normal", "random_normal")
BASE_VARIANTS = ("none", "keras", "bn")
NOISE_VARIANTS = ("bn-batch-statistics", "bn-covariate-shift", "bn-adjustment")
# Santurkar et al.'s name for BN followed by their covariate-shift noise.
VARIANTS = BASE_VARIANTS + NOISE_VARIANTS + ("noisy-bn",)

# Callbacks a cell can run (kbn.callbacks), and those a study needs.
INSTRUMENTS = ("percentiles", "landscape")
REQUIRED_INSTRUMENTS = {
    "covariate-shift": ("percentiles",),
    "landscape": ("landscape",),
}

# Axis order per study: the CSV columns and the grid loops follow it, with the
# seed innermost so that a cell's seeds finish together.
AXES = {
    "lr": ("variant", "lr", "seed"),
    "init": ("variant", "init", "init_scale", "seed"),
    "lr-init": ("variant", "lr", "init_scale", "seed"),
    "noise": ("variant", "seed"),
    "covariate-shift": ("variant", "seed"),
    "landscape": ("variant", "seed"),
}

_COMMON = {
    "model": "mlp-sigmoid",
    "dataset": "digits",
    "batch_size": 60,  # the original paper's MNIST batch
    "optimizer": "sgd",
    "divergence_threshold": 1e3,  # Bjorck et al. 2018
    "train_size": None,
    "init": "glorot_uniform",
    "init_scale": 1.0,
    "lr": 1.0,
    "instruments": [],
    "probe_every": 10,  # optimizer steps between instrument readings
}

# Preset values; command-line options override them. "quick" runs in under
# three minutes on two cores for digits; "full" is the publishable grid.
PRESETS = {
    ("lr", "quick"): {
        "variant": ("none", "keras", "bn"),
        "lr": (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
        "seeds": 2,
        "epochs": 10,
    },
    ("lr", "full"): {
        "variant": ("none", "keras", "bn"),
        "lr": (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0),
        "seeds": 3,
        "epochs": 30,
    },
    ("init", "quick"): {
        "variant": ("none", "bn"),
        "init": ("glorot_uniform", "random_normal"),
        "init_scale": (0.01, 0.1, 1.0, 10.0),
        "seeds": 2,
        "epochs": 10,
    },
    ("init", "full"): {
        "variant": ("none", "keras", "bn"),
        "init": INITS,
        "init_scale": (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
        "seeds": 3,
        "epochs": 30,
    },
    ("lr-init", "quick"): {
        "variant": ("none", "bn"),
        "lr": (0.01, 0.1, 1.0, 10.0),
        "init_scale": (0.1, 1.0, 10.0),
        "seeds": 2,
        "epochs": 10,
    },
    ("lr-init", "full"): {
        "variant": ("none", "bn"),
        "lr": (0.001, 0.01, 0.1, 1.0, 10.0, 100.0),
        "init_scale": (0.01, 0.1, 1.0, 10.0),
        "seeds": 3,
        "epochs": 30,
    },
    ("noise", "quick"): {
        "variant": ("none", "bn") + NOISE_VARIANTS,
        "seeds": 2,
        "epochs": 40,
        "train_size": 300,
        "lr": 0.3,
    },
    ("noise", "full"): {
        "variant": ("none", "keras", "bn") + NOISE_VARIANTS,
        "seeds": 5,
        "epochs": 100,
        "train_size": 300,
        "lr": 0.3,
    },
    # Ioffe & Szegedy's Figure 1: the 3x100 sigmoid MLP, batch 60, plain SGD.
    ("covariate-shift", "quick"): {
        "variant": ("none", "bn"),
        "seeds": 2,
        "epochs": 40,
        "lr": 0.5,
        "probe_every": 10,
    },
    ("covariate-shift", "full"): {
        "variant": ("none", "bn"),
        "seeds": 5,
        "epochs": 150,
        "lr": 0.5,
        "probe_every": 20,
    },
    # Santurkar et al.'s Figures 2 and 4: no BN, BN and noisy BN at one rate,
    # on the 6x100 ReLU MLP (deep enough for its landscape to matter).
    ("landscape", "quick"): {
        "variant": ("none", "bn", "noisy-bn"),
        "model": "mlp-relu",
        "seeds": 2,
        "epochs": 15,
        "lr": 0.5,
        "probe_every": 10,
    },
    ("landscape", "full"): {
        "variant": ("none", "bn", "noisy-bn"),
        "model": "mlp-relu",
        "seeds": 5,
        "epochs": 60,
        "lr": 0.5,
        "probe_every": 10,
    },
}


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """One study: named axes with their grid values, and fixed settings.

    Attributes:
        study: The study name, one of `STUDIES`.
        axes: Axis name -> tuple of grid values, in loop order (seed last).
        fixed: Settings held constant: `model`, `dataset`, `epochs`,
            `batch_size`, `optimizer`, `divergence_threshold`, `train_size`,
            `instruments` (the `kbn.callbacks` each cell runs), `probe_every`
            (their interval in optimizer steps), and the value of `lr`,
            `init` or `init_scale` when they are not axes.
        command: The command line that created the study (for the report).
    """

    study: str
    axes: dict
    fixed: dict
    command: str = ""

    @property
    def axis_names(self):
        return tuple(self.axes)

    @property
    def size(self):
        return math.prod(len(values) for values in self.axes.values())

    def cells(self):
        """Every cell of the grid, in order, as a dict axis -> value."""
        names = self.axis_names
        return [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*self.axes.values())
        ]

    def settings(self, cell):
        """Everything needed to run `cell`: its axis values over the fixed ones."""
        return {**self.fixed, **cell}

    def same_study(self, other):
        """Whether `other` describes the same grid and settings (command aside)."""
        return (self.study, self.axes, self.fixed) == (
            other.study,
            other.axes,
            other.fixed,
        )

    def to_json(self):
        return json.dumps(
            {
                "study": self.study,
                "axes": {k: list(v) for k, v in self.axes.items()},
                "fixed": self.fixed,
                "command": self.command,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        return cls(
            study=data["study"],
            axes={k: tuple(v) for k, v in data["axes"].items()},
            fixed=data["fixed"],
            command=data.get("command", ""),
        )


def cell_key(cell):
    """A stable, readable identifier of a cell, e.g. `variant=bn,lr=0.1,seed=0`."""
    return ",".join(f"{name}={value}" for name, value in cell.items())


def make_spec(study, preset="quick", command="", **overrides):
    """Builds a study from a preset and overrides (None means "keep the preset").

    Overrides: `variants`, `lrs`, `inits`, `init_scales`, `seeds` (a count),
    `epochs`, `batch_size`, `optimizer`, `model`, `dataset`, `train_size`,
    `divergence_threshold`, `lr` (the fixed rate of the studies without an
    `lr` axis), `instruments` (added to those the study needs) and
    `probe_every`.
    Values are validated by the command line; this only assembles them.
    """
    base = PRESETS[(study, preset)]
    given = {k: v for k, v in overrides.items() if v is not None}
    fixed = dict(_COMMON, epochs=base["epochs"])
    for name in ("train_size", "lr", "model", "probe_every"):
        if name in base and name not in AXES[study]:
            fixed[name] = base[name]
    for name in (
        "model",
        "dataset",
        "epochs",
        "batch_size",
        "optimizer",
        "train_size",
        "divergence_threshold",
        "lr",
        "probe_every",
    ):
        if name in given:
            fixed[name] = given[name]
    wanted = {*given.get("instruments", ()), *REQUIRED_INSTRUMENTS.get(study, ())}
    fixed["instruments"] = [name for name in INSTRUMENTS if name in wanted]
    if "lrs" in given and "lr" not in AXES[study]:
        # A single rate given with --lrs is the fixed rate of this study.
        fixed["lr"] = given["lrs"][0]
    options = {
        "variant": "variants",
        "lr": "lrs",
        "init": "inits",
        "init_scale": "init_scales",
    }
    axes = {}
    for name in AXES[study]:
        if name == "seed":
            axes[name] = tuple(range(given.get("seeds", base["seeds"])))
        else:
            axes[name] = tuple(given.get(options[name], base[name]))
    for name in axes:
        fixed.pop(name, None)
    return StudySpec(study=study, axes=axes, fixed=fixed, command=command)
