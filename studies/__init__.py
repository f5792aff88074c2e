"""Keras Tuner studies of batch normalization's effect on sensitivity.

Run `python -m studies --help` (or `kbn-study --help`), or from Python
`studies.run(study, out=..., model=..., data=..., **options)` and
`studies.report(out)` (see `studies.api`). The package is laid out along
Keras Tuner's seams: `spec` (the named axes and their values), `oracle` (the
resumable grid), `hypermodel` (build and fit one cell, through a model
builder: `builders`, `models`, `variants`), `tuner` (run and record a cell),
then `analysis` (numbers from results), `plots` and `report` (files from
numbers). `studies` uses `kbn`; `kbn` never imports it.
"""

from studies.api import report, run

__all__ = ["report", "run"]
