"""The version of the `kbn` distribution (the layer and the studies), written
once: `pyproject.toml` reads it (`[tool.setuptools.dynamic]`), `kbn.__version__`
re-exports it, and `python -m studies --version` reads this file without
importing Keras."""

__version__ = "0.2.0"
