"""Keras Tuner studies of batch normalization's effect on sensitivity.

Run `python -m studies --help` (or `kbn-study --help`). The package is laid
out along Keras Tuner's seams: `spec` (the named axes and their values),
`oracle` (the resumable grid), `hypermodel` (build and fit one cell), `tuner`
(run and record a cell), then `analysis` (numbers from results), `plots` and
`report` (files from numbers). `studies` uses `kbn`; `kbn` never imports it.
"""
