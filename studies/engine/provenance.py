"""Who ran a study, with what: one small JSON file per run in `DIR/runs/`.

Every process that works on a study folder (a plain run, a chief, a worker)
writes `runs/<run id>.json` when it starts: the command, its role, host and
pid, the versions of kbn, Keras, the backend and Keras Tuner, and anything
`--force` let through (a changed grid or changed data). Cell records name
their run, and the report lists the runs and every forced difference, so a
study resumed across upgrades or forced past a change says so. One file per
run means concurrent processes never write the same file.
"""

import datetime
import importlib.metadata
import json
import os
import platform
import socket
import uuid

from studies import folder
from studies.engine import leases

PACKAGES = ("kbn", "keras", "tensorflow", "jax", "keras-tuner", "numpy")


def versions():
    """Installed versions of the packages a result depends on (no imports)."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    found["keras_backend"] = os.environ.get("KERAS_BACKEND", "tensorflow")
    return found


def new_run_id():
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


def write(study_dir, run_id, role, command, forced=(), **settings):
    """Records this run in `runs/<run_id>.json`; returns the record."""
    record = {
        "run": run_id,
        "role": role,
        "command": command,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "host": leases.HOST,
        "pid": os.getpid(),
        "versions": versions(),
        "forced": list(forced),
        **settings,
    }
    path = folder.json_path(folder.runs_dir(study_dir), run_id)
    folder.write(path, json.dumps(record, indent=1))
    return record


def note(study_dir, run_id, **fields):
    """Adds `fields` to this run's record (what the run decided as it went)."""
    path = folder.json_path(folder.runs_dir(study_dir), run_id)
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return
    folder.write(path, json.dumps({**record, **fields}, indent=1))


def read(study_dir):
    """Every run's record, oldest first (a folder from before runs: [])."""
    runs = []
    for run_id in folder.json_keys(folder.runs_dir(study_dir)):
        try:
            with open(folder.json_path(folder.runs_dir(study_dir), run_id)) as f:
                runs.append(json.load(f))
        except (OSError, ValueError):
            continue
    return sorted(runs, key=lambda r: r.get("started", ""))


def markdown(runs):
    """The report's Runs section: forced differences first, then each run."""
    if not runs:
        return []
    lines = ["## Runs", ""]
    for run in runs:
        for difference in run.get("forced", ()):
            lines.append(f"**Forced** by run {run['run']}: {difference}.")
    if lines[-1] != "":
        lines.append("")
    version_sets = {json.dumps(r.get("versions", {}), sort_keys=True) for r in runs}
    if len(version_sets) > 1:
        lines += [
            f"**The runs used {len(version_sets)} different sets of versions** "
            "(below); `results.csv`'s `run` column says which run recorded each "
            "cell.",
            "",
        ]
    lines += ["| run | role | started | versions | command |", "|---|---|---|---|---|"]
    for run in runs:
        shown = ", ".join(f"{k} {v}" for k, v in run.get("versions", {}).items())
        command = str(run.get("command", "")).replace("|", "\\|")
        lines.append(
            f"| {run['run']} | {run.get('role', '')} | {run.get('started', '')} "
            f"| {shown} | `{command}` |"
        )
    return lines + [""]
