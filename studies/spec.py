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

from studies import definitions
from studies.definitions import (  # noqa: F401  (the studies' vocabulary)
    INITS,
    INSTRUMENTS,
    MODELS,
    OPTIMIZERS,
    STANDARD_INIT,
    STUDIES,
    VARIANTS,
)

# The command-line override of each axis.
AXIS_OPTIONS = {
    "variant": "variants",
    "lr": "lrs",
    "init": "inits",
    "init_scale": "init_scales",
}


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """One study: named axes with their grid values, and fixed settings.

    Attributes:
        study: The study name, one of `STUDIES` (`definitions`).
        axes: Axis name -> tuple of grid values, in loop order (seed last).
        fixed: Settings held constant: `model`, `dataset`, `epochs` or
            `steps` (the budget), `batch_size`, `optimizer`,
            `divergence_threshold`, `train_size`,
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
    """Builds a study from its preset and overrides (None means "keep the preset").

    Overrides: `variants`, `lrs`, `inits`, `init_scales` (the axes; one value
    for a study without that axis fixes the setting instead), `seeds` (a
    count), `epochs` or `steps` (the budget; `steps` replaces `epochs`),
    `batch_size`, `optimizer`, `model`, `dataset`, `train_size`,
    `divergence_threshold`, `lr`, `instruments` (added to those the study
    needs) and `probe_every`. Values are validated by the command line; this
    only assembles them.
    """
    definition = definitions.get(study)
    base = definition.presets[preset]
    given = {k: v for k, v in overrides.items() if v is not None}
    fixed = dict(definitions.COMMON)
    fixed.update({k: v for k, v in base.items() if k in fixed})
    fixed.update({k: v for k, v in given.items() if k in fixed})
    if "steps" in given:
        fixed["epochs"] = None
    for axis, option in AXIS_OPTIONS.items():
        # A single value of an axis this study does not sweep fixes it.
        if axis not in definition.axes and option in given:
            fixed[axis] = given[option][0]
    if fixed["init"] is None:
        fixed["init"] = STANDARD_INIT[fixed["model"]]
    wanted = {*given.get("instruments", ()), *definition.instruments}
    fixed["instruments"] = [name for name in INSTRUMENTS if name in wanted]
    axes = {}
    for name in definition.axes:
        if name == "seed":
            axes[name] = tuple(range(given.get("seeds", base["seeds"])))
        else:
            axes[name] = tuple(given.get(AXIS_OPTIONS[name], base[name]))
    if "init" in axes:  # None in a preset: the model's standard init
        standard = STANDARD_INIT[fixed["model"]]
        axes["init"] = tuple(
            dict.fromkeys(standard if v is None else v for v in axes["init"])
        )
    for name in axes:
        fixed.pop(name, None)
    return StudySpec(study=study, axes=axes, fixed=fixed, command=command)
