"""Runs a study end to end: checks, data, Keras Tuner search, report.

`run` goes in steps. `prepare` checks all it can before any file is
written (the folder, the data, the model, a chief's port), `start` writes
the folder's `study.json`, `dataset.json`, this run's record and the
TensorBoard config, `search` runs the cells, and a plain run or a chief
then rebuilds the report. What the folder holds: `studies.folder`.
"""

import contextlib
import dataclasses
import json
import os
import sys

from studies import folder, quiet
from studies.engine import leases, provenance
from studies.inputs import data as datasets
from studies.inputs import plugins, resolved
from studies.outputs import reporting, tensorboard_config
from studies.science.spec import StudySpec, scales
from studies.science.spec import difference as spec_difference
from studies.surfaces import console, options


class StudyError(ValueError):
    """A problem with the user's input, reported in one line (exit code 2)."""


@contextlib.contextmanager
def _folder_errors():
    """The folder's refusals, as the user's errors they are."""
    try:
        yield
    except folder.FolderError as error:
        raise StudyError(str(error)) from None


def check_folder(spec, study_dir, force=False, style="api", overwrite=False):
    """Checks, without writing anything, that `study_dir` can hold this study
    (its data aside: `check_data`, once the data is loaded).

    A new or empty folder can. A folder of the same study can resume it; if
    the grid or settings differ, it is refused with what differs, unless
    `force`. With `overwrite`, any study's folder can (`run` clears it).

    Returns:
        The differences `force` let through (a list of strings).

    Raises:
        StudyError: the folder holds a different study (without `force`), is
            a file, is a non-empty folder without a study, or cannot be
            written.
    """
    with _folder_errors():
        if folder.holds_study(study_dir) and overwrite:
            folder.check_overwrite(study_dir, options.flag("overwrite", style))
            return []
        if folder.holds_study(study_dir):
            return _check_resume(spec, study_dir, force, style)
        folder.check_new(study_dir, options.flag("out", style))
    return []


def _check_resume(spec, study_dir, force, style):
    """`check_folder` for a folder that holds a study already."""
    try:
        existing = reporting.load_spec(study_dir)
    except (ValueError, KeyError, OSError) as error:
        spec_path = folder.spec_path(study_dir)
        raise StudyError(f"{spec_path} is unreadable ({error})") from None
    if spec.fixed.get("task") is None:  # decided by the data, checked with it
        task = existing.fixed.get("task")
        spec = dataclasses.replace(spec, fixed={**spec.fixed, "task": task})
    differences = []
    if not existing.same_study(spec):
        differences.append(spec_difference(existing, spec))
    if differences and not force:
        raise StudyError(_refusal(study_dir, differences, existing.command, style))
    folder.check_writable(study_dir)
    return differences


def write_folder(spec, study_dir, dataset, forced, style="api"):
    """Creates the study folder's `study.json` and `dataset.json`, or
    replaces them with these when `--force` let a difference through."""
    with _folder_errors():
        folder.make(study_dir)
    spec_path = folder.spec_path(study_dir)
    dataset_path = folder.dataset_path(study_dir)
    if forced:
        folder.write(spec_path, spec.to_json())
        folder.write(dataset_path, json.dumps(dataset.record()))
        return
    if not folder.write_new(spec_path, spec.to_json()):
        # another run made the folder since it was checked: its study must be this
        existing = reporting.load_spec(study_dir)
        if not existing.same_study(spec):
            differences = [spec_difference(existing, spec)]
            raise StudyError(_refusal(study_dir, differences, existing.command, style))
    if not folder.write_new(dataset_path, json.dumps(dataset.record())):
        check_data(study_dir, dataset, style=style)


def check_data(study_dir, dataset, force=False, style="api"):
    """Refuses to resume a study on data other than its own (same name, new
    values: a changed file, or other arrays given to `studies.run`), unless
    `force`.

    Returns:
        The difference `force` let through, in a list (or an empty list).
    """
    dataset_path = folder.dataset_path(study_dir)
    if not os.path.exists(dataset_path):
        return []
    try:
        with open(dataset_path) as f:
            recorded = json.load(f).get("fingerprint")
    except (OSError, ValueError) as error:
        raise StudyError(f"{dataset_path} is unreadable ({error})") from None
    current = dataset.fingerprint()
    if recorded is None or recorded == current:
        return []
    difference = (
        f"data {dataset.name} has changed: fingerprint {recorded} there, {current} now"
    )
    if not force:
        spec = reporting.load_spec(study_dir)
        raise StudyError(_refusal(study_dir, [difference], spec.command, style))
    return [difference]


def _check_address():
    """A chief's port must be free (else gRPC fails after the folder is made)."""
    import socket

    host = os.environ["KERASTUNER_ORACLE_IP"]
    port = int(os.environ["KERASTUNER_ORACLE_PORT"])
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            # a dead chief's connections may linger (TIME_WAIT); a live one's
            # listening socket still refuses this bind
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as error:
        raise StudyError(
            f"the chief cannot listen on {host}:{port} ({error.strerror}); "
            "choose another --oracle-address"
        ) from None


def _refusal(study_dir, differences, command, style):
    out, force = options.flag("out", style), options.flag("resume_changed", style)
    fresh = options.flag("overwrite", style)
    if style != "cli":
        force, fresh = force + "=True", fresh + "=True"
    return (
        f"{study_dir} holds a different study ({'; '.join(differences)}); "
        f"choose another {out}, repeat its command "
        f"({command or 'not recorded'}), give {force} to go on with "
        f"these settings (the report will say so), or {fresh} to start afresh"
    )


def load_data(spec, data, style="api"):
    """Loads the study's dataset (`data`: its `resolved.DataInput`).

    Returns:
        `(dataset, spec)`, the spec with the task the data decided.
    """
    try:
        dataset = datasets.load(
            data.source,
            train_size=spec.fixed["train_size"],
            task=spec.fixed.get("task"),
            feature_scaling=spec.fixed.get("feature_scaling", "auto"),
            target_scaling=spec.fixed.get("target_scaling", "auto"),
            name=spec.fixed["dataset"],
            spell=options.speller(style),
            call=data.reference is not None,
        )
    except datasets.DatasetError as error:
        raise StudyError(str(error)) from None
    # the one check of target_scaling: only the data says what the task is
    if dataset.task == "classification" and spec.fixed.get("target_scaling") not in (
        None,
        "auto",
    ):
        raise StudyError(
            f"{options.flag('target_scaling', style)} applies to regression "
            f"targets, and {dataset.name} is a classification dataset"
        )
    _check_target(spec, dataset, style)
    fixed = {**spec.fixed, "task": dataset.task}
    return dataset, dataclasses.replace(spec, fixed=fixed)


def _check_target(spec, dataset, style):
    """`--target` above chance (R²: above 0), which only the data knows
    (`options.check` has checked it is at most 1)."""
    target = spec.fixed.get("target")
    if target is not None and target <= dataset.chance:
        raise StudyError(
            f"{options.flag('target', style)} must be above chance "
            f"({dataset.chance:.3g} on {dataset.name}), got {target:g}"
        )


def check_model(spec, model, dataset):
    """Builds the model of each variant once, on a few examples, before any
    file is written: a builder that cannot run the study fails here, in one
    line, not in every cell."""
    import keras

    from studies.inputs import builders

    uses_init = (
        "init" in spec.axes
        or "init_scale" in spec.axes
        or spec.fixed.get("init_scale", 1.0) != 1.0
        or spec.fixed.get("init") != model.standard_init
    )
    x = dataset.x_train[:4]
    try:
        for variant in spec.axes.get("variant", (spec.fixed.get("variant"),)):
            cell = {**spec.cells()[0], "variant": variant}
            builders.check(
                model.builder,
                spec.settings(cell),
                x,
                dataset.outputs,
                uses_init,
                spec.fixed["model"],
                scales=scales(spec),
            )
    except builders.BuilderError as error:
        raise StudyError(str(error)) from None
    finally:
        keras.backend.clear_session()


def run(
    spec: StudySpec,
    study_dir,
    role="single",
    stream=None,
    model=None,
    data=None,
    lease_timeout=leases.DEFAULT_TIMEOUT,
    retry_errors=False,
    force=False,
    fuse=None,
    style="api",
    overwrite=False,
):
    """Runs (or resumes) the study in `study_dir`.

    Several processes may run the same study folder at once: they share the
    cells through per-cell leases (`studies.engine.leases`), each cell runs once,
    and each process finishes when every cell has a record.

    Args:
        spec: The study.
        study_dir: Its folder.
        role: `single`, or `chief` / `worker` of a distributed study (the
            Keras Tuner environment variables must be set).
        stream: Where progress goes (stdout by default).
        model: The `resolved.ModelInput` (the surfaces resolve it; default:
            the spec's `model`, a built-in name or `MODULE:FUNCTION`).
        data: The `resolved.DataInput` (default: the spec's `dataset`).
        lease_timeout: Seconds without a heartbeat after which a running
            cell (of a killed process) is handed out again.
        retry_errors: Run again the cells whose record is an error.
        force: Go on although the folder's grid, settings or data differ
            from these (recorded in the report; `--resume-changed`).
        fuse: Cells trained together at most (None: chosen by the engine).
        style: `cli` or `api`: how messages name the options.
        overwrite: Delete the study in `study_dir` once every check has
            passed, and start afresh.

    Returns:
        The summary dict, or None for a worker (the chief writes the report).

    Raises:
        StudyError: bad data, a builder that cannot run the study, or a
            folder that holds another study (nothing in it is changed).
    """
    stream = stream or sys.stdout
    spec, dataset, model, forced = prepare(
        spec, study_dir, role, model, data, force, style, overwrite
    )
    if overwrite and folder.holds_study(study_dir):
        folder.clear_study(study_dir)
    engine = {"lease_timeout": lease_timeout, "retry_errors": retry_errors}
    engine["fuse"] = fuse
    run_id = start(spec, study_dir, role, dataset, forced, style, **engine)
    console.print_start(spec, study_dir, role, dataset, forced, stream)
    search(spec, study_dir, dataset, model.builder, stream, run_id, **engine)
    if role == "worker":
        console.print_worker_finished(stream)
        return None
    time_steps(spec, study_dir, dataset, model.builder, stream)
    # two plain runs on one folder finish together: one report at a time
    with leases.locked(folder.report_lock_path(study_dir)):
        summary = reporting.write(study_dir)
    console.print_summary(summary, study_dir, stream)
    return summary


def prepare(
    spec,
    study_dir,
    role,
    model=None,
    data=None,
    force=False,
    style="api",
    overwrite=False,
):
    """Checks all that can be checked before a file is written: the folder,
    the data (loaded here), the model builder and, for a chief, its port.

    Returns:
        `(spec, dataset, model, forced)`: the spec with the task the data
        decided, the dataset, the resolved `ModelInput`, and the differences
        `force` let through.

    Raises:
        StudyError: see `run`.
    """
    forced = check_folder(spec, study_dir, force, style, overwrite)
    model, data = _inputs(spec, model, data, style)  # user code: after the folder
    dataset, spec = load_data(spec, data, style)
    if not overwrite:
        forced += check_data(study_dir, dataset, force, style)
    quiet.import_backend()  # after every check that needs no backend
    check_model(spec, model, dataset)
    if role == "chief":
        _check_address()
    return spec, dataset, model, forced


def _inputs(spec, model, data, style):
    """The model and data the surfaces resolved, or the spec's names'."""
    spell = options.speller(style)
    try:
        model = model or resolved.named("model", spec.fixed["model"], spell)
        data = data or resolved.named("dataset", spec.fixed["dataset"], spell)
    except plugins.PluginError as error:
        raise StudyError(str(error)) from None
    return model, data


def start(spec, study_dir, role, dataset, forced, style="api", **engine):
    """Writes the folder's spec and dataset (`write_folder`), this run's
    record (`runs/`, with the `engine` settings: `lease_timeout`,
    `retry_errors`, `fuse`) and the TensorBoard HParams config.

    Returns:
        This run's id.
    """
    write_folder(spec, study_dir, dataset, forced, style)
    run_id = provenance.new_run_id()
    provenance.write(
        study_dir,
        run_id,
        role,
        spec.command,
        forced,
        **engine,
    )
    tensorboard_config.write(folder.tensorboard_dir(study_dir), spec)
    return run_id


def time_steps(spec, study_dir, dataset, builder, stream):
    """A study that times its steps does it after its cells
    (`phased_search.time_steps`)."""
    from studies.engine import phased_search

    phased_search.time_steps(spec, study_dir, dataset, builder, stream)


def search(spec, study_dir, dataset, builder, stream, run_id, **engine):
    """Runs this process's share of the cells, phase by phase
    (`phased_search.search_study`); an error that stops the run (a record
    that cannot be written, a worker's chief gone, a tuning phase left
    unfinished) is a `StudyError` with its message."""
    from studies.engine import keras_tuner_adapter, phased_search

    try:
        phased_search.search_study(
            spec, study_dir, dataset, builder, stream, run_id, **engine
        )
    except (keras_tuner_adapter.FatalError, phased_search.TuningIncomplete) as error:
        raise StudyError(str(error)) from None
