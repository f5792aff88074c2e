"""What a study reads: datasets, model builders and normalization variants.

`data` loads and checks the four arrays (built-in, `.npz`, `MODULE:FUNCTION`,
arrays or `tf.data`); `models` are the built-in builders; `builders` is the
seam a cell hands a builder and what it checks after; `variants` is the
registry of normalization variants (Keras-free) and `normalizers` their
layers; `plugins` imports a user's `MODULE:FUNCTION`; `resolved` turns what
the caller gave as model and data into the objects the rest takes, once.

Imports: `kbn`, Keras, `studies.quiet` and `studies.science`.
"""
