"""The study's record of finished cells: one small JSON file per cell.

`DIR/cells/<cell key>.json` is written atomically (temporary file, then
rename) when a cell ends, whatever its outcome. It is the one source of
truth for progress: the oracle skips the cells that have a record, and the
results table is built from the records. A kill at any moment leaves either
a complete record or none, so a resumed study runs exactly the cells that
have none.
"""

import json
import math
import os
import tempfile

from studies.science.spec import cell_key

RECORDS = "cells"


def records_dir(study_dir):
    return os.path.join(study_dir, RECORDS)


def _path(study_dir, cell):
    return os.path.join(records_dir(study_dir), cell_key(cell) + ".json")


def write(study_dir, cell, outcome):
    """Atomically records `outcome` (a dict of numbers and strings) for `cell`."""
    folder = records_dir(study_dir)
    os.makedirs(folder, exist_ok=True)
    record = {"cell": cell, **{k: _jsonable(v) for k, v in outcome.items()}}
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, _path(study_dir, cell))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _record_names(study_dir):
    """File names of the complete records (temporary files start with a dot)."""
    folder = records_dir(study_dir)
    if not os.path.isdir(folder):
        return []
    return sorted(
        name
        for name in os.listdir(folder)
        if name.endswith(".json") and not name.startswith(".")
    )


def read_all(study_dir):
    """Every complete record in the study folder, keyed by cell key."""
    records = {}
    for name in _record_names(study_dir):
        with open(os.path.join(records_dir(study_dir), name)) as f:
            record = json.load(f)
        records[cell_key(record["cell"])] = _restore(record)
    return records


def read(study_dir, key):
    """The record of the cell with key `key`, or None."""
    try:
        with open(os.path.join(records_dir(study_dir), key + ".json")) as f:
            return _restore(json.load(f))
    except FileNotFoundError:
        return None


def finished_keys(study_dir):
    """Keys of the cells that have a record."""
    return {name[: -len(".json")] for name in _record_names(study_dir)}


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
