"""What a study is (`StudyDefinition`) and the grids its presets draw on.

The registry itself is `studies.science.definitions`; the studies' entries
live in `sensitivity_studies` and `training_studies`.
"""

import dataclasses

# The kbn.noise variants (the variant names' registry is `studies.inputs.variants`).
NOISE_VARIANTS = ("bn-batch-statistics", "bn-covariate-shift", "bn-adjustment")

# Half-decade grids (x ~3.16): fine enough to locate where training fails.
HALF_DECADES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
HALF_DECADE_SCALES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)

# The tuning grid (plain SGD; scaled for other optimizers): the lr study's
# best rates are 0.1-0.3 without BN and 1-3 with it; on 300 examples (the
# noise study) the net without BN wanted 0.03, the edge of a grid from 0.03,
# so the grid starts at 0.01.
TUNE_LRS = HALF_DECADES[2:9]


@dataclasses.dataclass(frozen=True)
class StudyDefinition:
    """One kind of study.

    Attributes:
        name: The command-line name.
        description: One line for `--help` and the README.
        axes: Axis names in loop order; `seed` last, so a point's seeds
            finish together.
        presets: `quick` and `full`: axis values (`variant`, `lr`, ...,
            `seeds` as a count) and fixed settings over `COMMON`.
        instruments: The `kbn.callbacks` every cell needs.
        metrics: Extra metric groups (`extras.EXTRA_METRICS`).
        plots: Extra plots (`plots.EXTRA_PLOTS`).
        findings: `(summary key, label)` pairs compared as no BN / BN.
        times_steps: Whether, after its cells, the study times each
            variant's training step in one process, the variants
            interleaved (`studies.engine.step_timing`).
    """

    name: str
    description: str
    axes: tuple
    presets: dict
    instruments: tuple = ()
    metrics: tuple = ()
    plots: tuple = ()
    findings: tuple = ()
    times_steps: bool = False
