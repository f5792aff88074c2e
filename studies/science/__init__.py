"""What a study is and what its results mean: plain data and numbers.

`definitions` is the registry of studies (axes, presets, instruments,
findings); `spec` turns one into a grid of cells (`study.json`); `tasks`
holds what differs between classification and regression; `outcomes`
decides what a cell's record means (ok, diverged, errored, missing);
`analysis` assembles the sensitivity numbers with intervals (from `grid`,
`ranges`, `headline`, `extras`, `curves` and `stats`) and `findings` words
them.

Imports: the standard library, NumPy and `studies.quiet` only; no Keras, no
Keras Tuner, nothing else from `studies`, so every rule here is testable on
hand-made rows.
"""
