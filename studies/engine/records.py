"""The study's record of finished cells: one small JSON file per cell.

`DIR/cells/<cell key>.json` is written atomically (`studies.folder.write`:
temporary file, fsync, rename) when a cell ends, whatever its outcome. It
is the one source of truth for progress: the oracle skips the cells that
have a record, and the results table is built from the records. A kill at
any moment leaves either a complete record or none, so a resumed study
runs exactly the cells that have none.
"""

import json
import math

from studies import folder
from studies.science.spec import cell_key


def _path(study_dir, key):
    return folder.json_path(folder.cells_dir(study_dir), key)


def write(study_dir, cell, outcome):
    """Atomically records `outcome` (a dict of numbers and strings) for `cell`."""
    record = {"cell": cell, **{k: _jsonable(v) for k, v in outcome.items()}}
    folder.write(_path(study_dir, cell_key(cell)), json.dumps(record, indent=1))


def read_all(study_dir):
    """Every complete record in the study folder, keyed by cell key."""
    records = {}
    for key in folder.json_keys(folder.cells_dir(study_dir)):
        with open(_path(study_dir, key)) as f:
            record = json.load(f)
        records[cell_key(record["cell"])] = _restore(record)
    return records


def read(study_dir, key):
    """The record of the cell with key `key`, or None."""
    try:
        with open(_path(study_dir, key)) as f:
            return _restore(json.load(f))
    except FileNotFoundError:
        return None


def finished_keys(study_dir):
    """Keys of the cells that have a record."""
    return set(folder.json_keys(folder.cells_dir(study_dir)))


def _jsonable(value):
    # JSON has no NaN or inf; store them as strings that float() reads back,
    # inside nested values (an instrument's curves) too.
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _restore(value):
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return float(value) if value in ("nan", "inf", "-inf") else value
