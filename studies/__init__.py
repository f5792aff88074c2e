"""Keras Tuner studies of batch normalization's effect on sensitivity.

Run `python -m studies --help` (or `kbn-study --help`), or from Python
`studies.run(study, out=..., model=..., data=..., **options)` and
`studies.report(out)`. `studies.variants.register(name, make)` adds a
normalization variant.

The package follows Keras Tuner's seams (a study spec, a grid oracle, a
hypermodel that builds and fits one cell, then numbers, then files), in
subpackages by concern. Lowest first; a module imports only from its own
layer or the ones before it (`tests/studies/test_layout.py` checks):

- `studies.quiet`: imports Keras and its backend without start-up noise;
  `studies.folder`: the study folder's layout (every file and folder name),
  the atomic write every file of a study goes through, the folder checks.
- `studies.science`: what a study is and what its results mean: the
  registry of studies (`definitions`), the grid (`spec`), tasks, outcomes,
  analysis and findings. Plain data and numbers, no Keras.
- `studies.inputs`: what a study reads: datasets, model builders, the
  built-in models, normalization variants, `MODULE:FUNCTION` plugins.
- `studies.engine`: running cells: Keras Tuner's oracle and tuner, the
  hypermodel, cell records, leases, provenance, progress.
- `studies.outputs`: files built from the records: results table, summary,
  plots, `report.md`, TensorBoard's HParams config.
- `studies.surfaces`: how people reach it: the command line, the Python
  API, the options and their checks, the runner that ties a study together.

`studies` uses `kbn`; `kbn` never imports `studies`.
"""

from studies.inputs import variants  # `studies.variants.register(...)`: public
from studies.surfaces.api import report, run

__all__ = ["report", "run", "variants"]
