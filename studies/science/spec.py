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
import typing

from studies.science import definitions
from studies.science.definitions import (  # noqa: F401  (the studies' vocabulary)
    INITS,
    INSTRUMENTS,
    MODELS,
    OPTIMIZERS,
    STANDARD_INIT,
    STUDIES,
)


class Axis(typing.NamedTuple):
    """A grid axis: the option that overrides its values, and what it is in words."""

    option: str
    words: str


# Every axis but `seed` (a count: the `seeds` option), by name.
AXES = {
    "variant": Axis("variants", "normalization variant"),
    "lr": Axis("lrs", "learning rate"),
    "init": Axis("inits", "init family"),
    "init_scale": Axis("init_scales", "init scale"),
    "batch_size": Axis("batch_sizes", "batch size"),
    "depth": Axis("depths", "depth (hidden layers)"),
    "weight_decay": Axis("weight_decays", "weight decay"),
}


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """One study: named axes with their grid values, and fixed settings.

    Attributes:
        study: The study name, one of `STUDIES` (`definitions`).
        axes: Axis name -> tuple of grid values, in loop order (seed last).
        fixed: Settings held constant: `model`, `dataset`, `epochs` or
            `steps` (the budget), `batch_size`, `optimizer`,
            `divergence_threshold`, `train_size`, `scale_output` (whether
            the init scale multiplies the output layer too),
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
        """Everything needed to run `cell`: its axis values over the fixed ones,
        and its variant's tuned rate in a study's main phase
        (`studies.science.tuning`: per variant, or per variant and batch size)."""
        settings = {**self.fixed, **cell}
        tuned = self.fixed.get("tuned_lr")
        if tuned and "lr" not in cell:
            rate = tuned[cell["variant"]]
            if isinstance(rate, dict):
                rate = rate[str(cell["batch_size"])]
            settings["lr"] = rate
        return settings

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
        # A folder written before a setting existed ran with its default
        # (and before regression, every study was classification).
        defaults = {**definitions.COMMON, "task": "classification"}
        fixed = {
            **{k: v for k, v in defaults.items() if k not in data["axes"]},
            **data["fixed"],
        }
        if "scale_output" not in data["fixed"]:
            # before the setting, the init scale multiplied every kernel
            fixed["scale_output"] = _scales(data["axes"], fixed)
        return cls(
            study=data["study"],
            axes={k: tuple(v) for k, v in data["axes"].items()},
            fixed=fixed,
            command=data.get("command", ""),
        )


def _scales(axes, fixed):
    """Whether a study's init scale can be other than 1 (an axis, or a fixed
    scale that is not 1)."""
    return "init_scale" in axes or fixed.get("init_scale", 1.0) != 1.0


def scales(study_spec):
    """Whether `study_spec` initializes with a scale other than 1 (where
    `scale_output` means something)."""
    return _scales(study_spec.axes, study_spec.fixed)


def cell_key(cell):
    """A stable, readable identifier of a cell, e.g. `variant=bn,lr=0.1,seed=0`."""
    return ",".join(f"{name}={value}" for name, value in cell.items())


def make_spec(study, preset="quick", command="", standard_init=None, **overrides):
    """Builds a study from its preset and overrides (None means "keep the preset").

    Overrides: `variants`, `lrs`, `inits`, `init_scales`, `batch_sizes`,
    `depths`, `weight_decays` (the axes; one value for a study without that
    axis fixes the setting instead), `seeds` (a count), `epochs` or `steps`
    (the budget; the one given replaces the preset's), `batch_size`,
    `optimizer`, `momentum`, `weight_decay`, `schedule`, `warmup_fraction`,
    `model`, `dataset`, `task`, `feature_scaling`, `virtual_batch_size`,
    `train_size`, `scale_output`, `divergence_threshold`, `lr`,
    `instruments` (added to those the study needs), `probe_every`,
    `tune_seeds` and `lr_scaling`. A study that tunes the rate per variant
    (its preset has `tune_lrs`) takes several `lrs` as its tuning grid, and
    one rate (`lr`, or `lrs` with one value) as the rate of every variant,
    without tuning. Values are validated by `studies.surfaces.options`; this
    only assembles them.

    Learning rates the user does not give (the preset's grid without `lrs`,
    its fixed rate without `lr` or `lrs`) are sized for plain SGD and scaled
    by `lr_scale` to suit the optimizer: by 1 - m for SGD with momentum m
    (`momentum`, or `sgd` given a `momentum`), by 0.01 for `adam`. Rates
    the user gives are used as given.

    Args:
        standard_init: The model's standard init family (a user builder's);
            None: `STANDARD_INIT` of a built-in model, else glorot_uniform.
    """
    definition = definitions.get(study)
    base = definition.presets[preset]
    given = {k: v for k, v in overrides.items() if v is not None}
    fixed = dict(definitions.COMMON)
    fixed.update({k: v for k, v in base.items() if k in fixed})
    fixed.update({k: v for k, v in given.items() if k in fixed})
    if "steps" in given or ("steps" in base and "epochs" not in given):
        fixed["epochs"] = None
    if "epochs" in given:
        fixed["steps"] = None
    scale = lr_scale(fixed["optimizer"], fixed["momentum"])
    for axis, (option, _) in AXES.items():
        # A single value of an axis this study does not sweep fixes it.
        if axis not in definition.axes and option in given:
            fixed[axis] = given[option][0]
    if "lr" not in definition.axes and "lr" not in given and "lrs" not in given:
        fixed["lr"] = _scaled(fixed["lr"], scale)
    _tuning(fixed, given, scale)
    standard = standard_init or STANDARD_INIT.get(fixed["model"], "glorot_uniform")
    if fixed["init"] is None:
        fixed["init"] = standard
    wanted = {*given.get("instruments", ()), *definition.instruments}
    fixed["instruments"] = [name for name in INSTRUMENTS if name in wanted]
    axes = {}
    for name in definition.axes:
        if name == "seed":
            axes[name] = tuple(range(given.get("seeds", base["seeds"])))
        elif name == "lr" and "lrs" not in given:
            axes[name] = tuple(_scaled(v, scale) for v in base[name])
        else:
            axes[name] = tuple(given.get(AXES[name].option, base[name]))
    if "init" in axes:  # None in a preset: the model's standard init
        axes["init"] = tuple(
            dict.fromkeys(standard if v is None else v for v in axes["init"])
        )
    for name in axes:
        fixed.pop(name, None)
    return StudySpec(study=study, axes=axes, fixed=fixed, command=command)


def _tuning(fixed, given, scale):
    """The tuning phase's rates (`studies.science.tuning`): the preset's,
    scaled for the optimizer; several `lrs` given are the tuning grid, as
    given; one rate given (`lr`, or one `lrs`) means no tuning."""
    if not fixed.get("tune_lrs"):
        fixed["tune_lrs"] = None
        return
    lrs = given.get("lrs")
    if "lr" in given or (lrs and len(lrs) == 1):
        fixed["tune_lrs"] = None
    elif lrs:
        fixed["tune_lrs"] = sorted(float(v) for v in lrs)
    else:
        fixed["tune_lrs"] = [_scaled(v, scale) for v in fixed["tune_lrs"]]


def difference(old, new):
    """What differs between the studies `old` and `new`, in words (at most
    three differences), for a refusal to resume."""
    changed = [
        f"{name}: {old.axes.get(name)} there, {new.axes.get(name)} now"
        for name in sorted(set(old.axes) | set(new.axes))
        if old.axes.get(name) != new.axes.get(name)
    ]
    changed += [
        f"{name}: {old.fixed.get(name)} there, {new.fixed.get(name)} now"
        for name in sorted(set(old.fixed) | set(new.fixed))
        if old.fixed.get(name) != new.fixed.get(name)
    ]
    if old.study != new.study:
        changed.insert(0, f"study {old.study} there, {new.study} now")
    return "; ".join(changed[:3]) + ("; ..." if len(changed) > 3 else "")


def sgd_momentum(optimizer, momentum=None):
    """The momentum SGD runs with: the setting, else 0.9 for `momentum` and 0
    for `sgd`."""
    if momentum is not None:
        return momentum
    return 0.9 if optimizer == "momentum" else 0.0


def lr_scale(optimizer, momentum=None):
    """Factor from plain SGD's learning rates to `optimizer`'s usual ones.

    SGD with momentum m takes steps about 1 / (1 - m) times larger, so its
    grid is scaled by (1 - m); Adam's steps are about the learning rate
    itself (normalized by the gradient's scale), and its usual rates are
    about 100 times smaller than SGD's (3e-4 to 3e-3 against 0.03 to 0.3).
    """
    if optimizer in ("sgd", "momentum"):
        return 1.0 - sgd_momentum(optimizer, momentum)
    if optimizer == "adam":
        return 0.01
    return 1.0


def _scaled(rate, scale):
    """`rate * scale` to three significant digits (a readable grid)."""
    return rate if scale == 1.0 else float(f"{rate * scale:.3g}")
