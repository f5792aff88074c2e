"""How people reach the studies: command line, Python API, options, runner.

`cli` is `python -m studies`; `api` is `studies.run` and `studies.report`;
`options` checks the options once for both (naming them as the caller spells
them); `runner` ties a study together: folder, data, search, report;
`console` is what a run prints.

Imports: any layer of `studies`; nothing imports the surfaces except
`studies/__init__.py` and `studies/__main__.py`.
"""
