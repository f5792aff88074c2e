"""How people reach the studies: command line, Python API, options, runner.

`option_table` describes every option once (type, default, studies, help);
`cli` is `python -m studies`, its parser built from the table; `api` is
`studies.run` and `studies.report`, and resolves the model and data once;
`options` checks the options for both (naming them as the caller spells
them); `runner` ties a study together: folder, data, search, report;
`console` is what a run prints; `catalog` reads the registries for
`list`, each study's `--help` and the documentation's study pages; `plan`
is `--dry-run` (the grid, the cell count, a rough ETA).

Imports: any layer of `studies`; nothing imports the surfaces except
`studies/__init__.py` and `studies/__main__.py`.
"""
