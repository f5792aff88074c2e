"""The study folder: its file and folder names, atomic writes, and checks.

A study folder (`--out`) holds:

- `study.json`: the spec; a resumed run must match it (or
  `--resume-changed`; `--overwrite` starts afresh: `clear_study`).
- `dataset.json`: the dataset's description, chance accuracy and fingerprint;
  a resumed run's data must match it (or `--resume-changed`).
- `cells/<cell key>.json`: one record per finished cell, whatever its
  outcome (`studies.engine.records`): the study's progress.
- `leases/<cell key>.json`: one lease per cell running now, `leases/.lock`
  (the `flock` every lease change happens under) and `leases/.finished`
  (a chief has served every cell) (`studies.engine.leases`).
- `runs/<run id>.json`: one record per process that worked on the study:
  command, versions, forced differences (`studies.engine.provenance`).
- `tuner/`: Keras Tuner's own project folder (Keras Tuner writes it).
- `tensorboard/`: the root `hparams_config` events file, one folder per
  finished cell, and `tensorboard/.running/<cell key>.<token>`: the logs of
  cells running now (`studies.engine.tuner`).
- `timing.json`: seconds per training step of each variant, measured
  after the cells in one process (a study that times its steps:
  `studies.engine.step_timing`).
- `results.csv`, `summary.json`, the PNG plots, `report.md` and
  `report.html` (the same report in one self-contained file): rebuilt from
  `study.json`, `dataset.json`, `cells/` and `runs/` by every report
  (`studies.outputs.reporting`), one report at a time (`.report.lock`).

Every file the studies code writes goes through `write` (or `write_new`):
a temporary file in the same folder (named `.tmp-...`, which every reader
skips), written, flushed and fsynced, then renamed over the file. A kill at
any moment leaves the old file or the new one, never half a file.

This is the base layer: it imports nothing else from `studies`.
"""

import contextlib
import os
import shutil
import tempfile
import uuid

SPEC = "study.json"
DATASET = "dataset.json"
RESULTS = "results.csv"
SUMMARY = "summary.json"
TIMING = "timing.json"
REPORT = "report.md"
REPORT_HTML = "report.html"
REPORT_LOCK = ".report.lock"
CELLS = "cells"
LEASES = "leases"
LEASE_LOCK = ".lock"  # in leases/
FINISHED = ".finished"  # in leases/: the chief has served every cell
RUNS = "runs"
TUNER = "tuner"
TENSORBOARD = "tensorboard"
RUNNING_LOGS = ".running"  # in tensorboard/: logs of the cells running now
TMP_PREFIX = ".tmp-"

# The plots with fixed names (`studies.outputs.plots`); the curves along each
# swept axis are named by `curve_plot`.
HEATMAP_PLOT = "lr_init_heatmap.png"
TRAIN_VS_VAL_PLOT = "noise_generalization.png"
COVARIATE_SHIFT_PLOT = "covariate_shift.png"
LANDSCAPE_ACCURACY_PLOT = "training_accuracy.png"
LANDSCAPE_PLOT = "landscape.png"
BATCH_NOISE_PLOT = "batch_noise.png"
CONVERGENCE_PLOT = "convergence.png"
INIT_GRAD_NORMS_PLOT = "init_grad_norms.png"

# What a finished study's top level holds, besides its plots.
FILES = (SPEC, DATASET, RESULTS, SUMMARY, TIMING, REPORT, REPORT_HTML, REPORT_LOCK)
FOLDERS = (CELLS, LEASES, RUNS, TUNER, TENSORBOARD)
_JSON = ".json"


class FolderError(ValueError):
    """`--out` cannot hold a new study (the message says why, in one line)."""


def curve_plot(metric, along):
    """The plot of `metric` (accuracy or r2) against the swept axis `along`."""
    return f"{metric}_vs_{along}.png"


def spec_path(study_dir):
    return os.path.join(study_dir, SPEC)


def dataset_path(study_dir):
    return os.path.join(study_dir, DATASET)


def results_path(study_dir):
    return os.path.join(study_dir, RESULTS)


def summary_path(study_dir):
    return os.path.join(study_dir, SUMMARY)


def timing_path(study_dir):
    return os.path.join(study_dir, TIMING)


def report_path(study_dir):
    return os.path.join(study_dir, REPORT)


def report_html_path(study_dir):
    return os.path.join(study_dir, REPORT_HTML)


def report_lock_path(study_dir):
    return os.path.join(study_dir, REPORT_LOCK)


def cells_dir(study_dir):
    return os.path.join(study_dir, CELLS)


def leases_dir(study_dir):
    return os.path.join(study_dir, LEASES)


def runs_dir(study_dir):
    return os.path.join(study_dir, RUNS)


def tuner_dir(study_dir):
    return os.path.join(study_dir, TUNER)


def tensorboard_dir(study_dir):
    return os.path.join(study_dir, TENSORBOARD)


def json_path(folder, key):
    """`folder/<key>.json`: a cell's record or lease, or a run's record."""
    return os.path.join(folder, key + _JSON)


def json_keys(folder):
    """The keys of the complete JSON files in `folder` (a cell's record or
    lease, a run's record), in file name order; temporary files and other
    dot files are skipped. A missing folder has none."""
    if not os.path.isdir(folder):
        return []
    return [
        name[: -len(_JSON)]
        for name in sorted(os.listdir(folder))
        if name.endswith(_JSON) and not name.startswith(".")
    ]


def write(path, data, sync_folder=True):
    """Replaces the file `path` with `data` atomically and durably.

    The data goes to a temporary file in the same folder, which is flushed
    and fsynced, then renamed over `path`; a failure at any point leaves
    `path` as it was and no temporary file. The parent folder is made if
    missing.

    Args:
        path: The file.
        data: `str` (written as UTF-8, newlines as given) or `bytes`.
        sync_folder: Also fsync the folder, so that the rename survives a
            machine crash (not needed for files that only matter while
            their writer lives, such as leases).
    """
    folder = os.path.dirname(path) or "."
    temporary = _temporary_copy(folder, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    if sync_folder:
        _sync(folder)


def write_new(path, data):
    """Writes `path` as `write` does, unless it exists: of processes writing
    it at once, exactly one does (the first to link its copy in place).

    Returns:
        Whether this call wrote the file.
    """
    folder = os.path.dirname(path) or "."
    temporary = _temporary_copy(folder, data)
    try:
        os.link(temporary, path)  # fails if the file exists: the first writer wins
    except FileExistsError:
        return False
    finally:
        _remove(temporary)
    _sync(folder)
    return True


@contextlib.contextmanager
def temporary_folder(parent):
    """A new folder `parent/.tmp-...` for files that a library writes in
    place (TensorFlow's events files), to be copied out with `write`;
    removed on exit, whatever happened."""
    os.makedirs(parent, exist_ok=True)
    path = tempfile.mkdtemp(dir=parent, prefix=TMP_PREFIX)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _temporary_copy(folder, data):
    """A new, fsynced file in `folder` holding `data`; returns its path."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    os.makedirs(folder, exist_ok=True)
    while True:
        path = os.path.join(folder, TMP_PREFIX + uuid.uuid4().hex[:12])
        try:  # 0o666 under the umask, as open() would make it
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _remove(path)
        raise
    return path


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _sync(folder):
    """fsyncs a folder, where the platform can (not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder
        pass
    finally:
        os.close(fd)


def holds_study(study_dir):
    """Whether `study_dir` has a `study.json` (a study started there)."""
    return os.path.exists(spec_path(study_dir))


def check_new(study_dir, out="--out"):
    """Checks, without writing anything, that a new study can be made in
    `study_dir`, a folder without `study.json` (`out`: how the caller
    spells the option that named it, for messages).

    Raises:
        FolderError: `study_dir` is a file, a non-empty folder, or cannot
            be created.
    """
    if os.path.exists(study_dir) and not os.path.isdir(study_dir):
        raise FolderError(f"{out} {study_dir} is a file, not a folder")
    # another process of a distributed study may be writing study.json now
    if os.path.isdir(study_dir) and any(
        not name.startswith(TMP_PREFIX) for name in os.listdir(study_dir)
    ):
        raise FolderError(
            f"{study_dir} is not empty and holds no study; choose a new or "
            f"empty folder for {out}"
        )
    parent = os.path.abspath(study_dir)
    while not os.path.exists(parent):  # the folder will be made in the nearest one
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise FolderError(
            f"cannot create output folder {study_dir}: {parent} is a file"
        )
    try:  # a probe, as access() says yes to root even where nothing can be made
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=TMP_PREFIX))
    except OSError as error:
        raise FolderError(
            f"cannot create output folder {study_dir} in {parent}: {error.strerror}"
        ) from None


def check_writable(study_dir):
    """Raises `FolderError` if the existing folder `study_dir` is not writable."""
    if not os.access(study_dir, os.W_OK | os.X_OK):
        raise FolderError(f"output folder {study_dir} is not writable")


def make(study_dir):
    """Makes the study folder (and its parents) if missing.

    Raises:
        FolderError: it cannot be made.
    """
    try:
        os.makedirs(study_dir, exist_ok=True)
    except OSError as error:
        raise FolderError(
            f"cannot create output folder {study_dir}: {error.strerror}"
        ) from None


def clear_study(study_dir):
    """Removes the study in `study_dir` (`--overwrite`): every file and
    folder named in `FILES` and `FOLDERS`, and the PNG plots. Anything
    else in the folder stays."""
    for name in sorted(os.listdir(study_dir)):
        path = os.path.join(study_dir, name)
        if name in FOLDERS and os.path.isdir(path):
            shutil.rmtree(path)
        elif name in FILES or (name.endswith(".png") and os.path.isfile(path)):
            os.remove(path)


def check_overwrite(study_dir, flag="--overwrite", running=180):
    """Checks that the study in `study_dir` may be deleted (`clear_study`):
    the folder is writable and no cell lease changed in the last `running`
    seconds (a running cell's process touches its lease every few seconds).

    Raises:
        FolderError: naming what stops it.
    """
    import time

    check_writable(study_dir)
    folder = leases_dir(study_dir)
    times = []
    for key in json_keys(folder):
        with contextlib.suppress(FileNotFoundError):
            times.append(os.path.getmtime(json_path(folder, key)))
    age = time.time() - max(times) if times else None
    if age is not None and age < running:
        raise FolderError(
            f"{study_dir} has cells running now (a lease changed {age:.0f} s "
            f"ago): stop those processes before {flag} (a killed one's "
            f"leases count as running for {running:g} s)"
        )


def staged_logs(root, key):
    """A new staging folder for one run of cell `key`'s TensorBoard logs
    under `root` (None without logs): another run of the cell never shares
    it (`studies.engine.tuner`)."""
    if root is None:
        return None
    return os.path.join(root, RUNNING_LOGS, f"{key}.{uuid.uuid4().hex[:8]}")
