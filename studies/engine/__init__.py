"""Running cells: Keras Tuner's oracle and tuner, the hypermodel, records.

`oracle` walks the grid and hands out cells through `leases`; `tuner` runs
one cell and writes its record (`records`); `hypermodel` builds and fits one
cell's model (with `optimizers`, `instruments`, the `callbacks` that stop a
fit, the step `budget` and `scoring`); `results` is the table built from
the records; `provenance` records who ran what; `progress` prints a line per
cell with an ETA; `cell_memory` frees what a cell leaves behind.
`keras_tuner_adapter` holds every use of Keras Tuner beyond its public API.

Imports: Keras Tuner, `kbn`, `studies.quiet`, `studies.folder`,
`studies.science` and `studies.inputs`.
"""
