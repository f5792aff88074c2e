"""Files built from a study's records: results, summary, plots, report.

`reporting.write(DIR)` rebuilds `results.csv`, `summary.json`, the plots
(`plots`), `report.md` and `report.html` (`html_report`: the same report in
one self-contained file) from the folder alone (`study.json`,
`dataset.json`, `cells/`, `runs/`);
`tensorboard_config` writes the HParams dashboard's experiment config.

Imports: matplotlib and everything below: `studies.science`,
`studies.inputs`, `studies.engine` (records, results and provenance: what
the folder holds, never a running search), `studies.folder`.
"""
