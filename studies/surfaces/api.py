"""The Python API: `studies.run(...)` and `studies.report(...)`.

The same studies as `python -m studies`, with Python values: a builder
function instead of `--model MODULE:FUNCTION`, arrays or `tf.data.Dataset`s
instead of `--dataset`, lists instead of comma-separated options.

    import studies

    summary = studies.run(
        "lr", out="runs/my-lr", model=build, data=(x_train, y_train, x_test, y_test),
        variants=["none", "bn"], lrs=[0.01, 0.1, 1.0], seeds=3, epochs=10,
    )
    studies.report("runs/my-lr")  # rebuilds results, plots and report.md

Every bad input raises a `ValueError` (`options.OptionError`,
`runner.StudyError`) whose message names the problem, before anything is
written.
"""

import os
import sys
import warnings

from studies import quiet
from studies.inputs import data as datasets
from studies.inputs import models, plugins, resolved
from studies.science import definitions
from studies.science.spec import make_spec
from studies.surfaces import option_table, options


def run(
    study,
    out=None,
    *,
    model=None,
    data=None,
    preset="quick",
    stream=None,
    lease_timeout=None,
    retry_errors=False,
    resume_changed=False,
    overwrite=False,
    dry_run=False,
    force=None,
    fuse=None,
    **kwargs,
):
    """Runs (or resumes) a study; returns its summary (`summary.json`'s content).

    Args:
        study: One of `definitions.STUDIES` (`lr`, `init`, `lr-init`, `noise`,
            `covariate-shift`, `landscape`, `batch-size`, `convergence`,
            `depth`, `weight-decay`).
        out: The study folder (default `runs/STUDY-DATASET-PRESET`); running
            again with the same folder resumes.
        model: A built-in model name, `"MODULE:FUNCTION"`, or a builder
            `build(normalization, kernel_initializer, input_shape, outputs)
            -> keras.Model`, with a `depth` parameter where the study sets
            the depth (see `studies.inputs.builders`). Default: the preset's.
        data: A dataset name or `.npz` path, `"MODULE:FUNCTION"`, the arrays
            `(x_train, y_train, x_test, y_test)` or a dict with those keys,
            or a pair `(train, test)` of `tf.data.Dataset`s. Default: the
            preset's (`digits`).
        preset: `quick` or `full`.
        stream: Where progress lines go (default stdout).
        lease_timeout: Seconds without a heartbeat from a running cell's
            process (killed, machine gone) before another process runs the
            cell (default `studies.engine.leases.DEFAULT_TIMEOUT`, 180).
        retry_errors: Run again the cells whose record is an error.
        resume_changed: Go on although `out` holds this study with another
            grid, other settings or changed data (the report says so).
        overwrite: Start afresh: delete the study in `out` (its results,
            logs and report) once every check has passed.
        dry_run: Check the options and the folder, print the grid, the cell
            count and a rough ETA to `stream`, and return that plan (a dict)
            without writing or loading anything.
        force: The old name of `resume_changed` (deprecated).
        fuse: Cells trained together in one compiled step at most (an int
            >= 1; 1: one at a time); default: chosen from the model's size
            and the memory available.
        **kwargs: The study's options as Python values (every one in
            `docs/options.md`, the table `option_table.OPTIONS`): lists for
            the comma-separated ones (`variants`, `lrs`, `inits`,
            `init_scales`, `batch_sizes`, `depths`, `instruments`), ints (`seeds`,
            `epochs`, `steps`, `batch_size`, ...), floats (`lr`, `momentum`,
            ...) and names (`optimizer`, `schedule`, `task`, ...).

    Returns:
        The summary dict (with `dry_run`, the plan).

    Raises:
        ValueError: an unknown study or option, a bad value, data or builder
            that cannot run the study, or an `out` folder holding another
            study (left untouched).
    """
    from studies.engine import leases
    from studies.surfaces import runner

    if lease_timeout is None:
        lease_timeout = leases.DEFAULT_TIMEOUT
    resume_changed = _resume_changed(resume_changed, force, overwrite)
    options.check_run(lease_timeout, fuse=fuse)
    spec, model, data = prepare(
        study,
        preset,
        model,
        data,
        kwargs,
        "api",
        _command(study, out, model, data, preset, kwargs),
    )
    out = out or default_out(spec, preset)
    if dry_run:
        from studies.surfaces import plan

        runner.check_folder(spec, out, resume_changed, "api", overwrite)
        found = plan.make(spec, out, data)
        plan.show(found, stream or sys.stdout)
        return found
    return runner.run(
        spec,
        out,
        stream=stream,
        model=model,
        data=data,
        lease_timeout=lease_timeout,
        retry_errors=retry_errors,
        force=resume_changed,
        style="api",
        overwrite=overwrite,
        fuse=fuse,
    )


def _resume_changed(resume_changed, force, overwrite):
    """`resume_changed`, or the deprecated `force` that names it."""
    if force is not None:
        warnings.warn(
            "studies.run(force=...) is deprecated; use resume_changed=...",
            DeprecationWarning,
            stacklevel=3,
        )
        resume_changed = force
    if resume_changed and overwrite:
        raise options.OptionError("give resume_changed or overwrite, not both")
    return resume_changed


def report(out, format="both"):
    """Rebuilds `results.csv`, `summary.json`, the plots, `report.md` and
    `report.html` of the study folder `out`; returns the summary.

    Args:
        out: The study folder.
        format: `md`, `html` (one self-contained file, the plots inline) or
            `both`: which report to write.

    Raises:
        ValueError: `out` is not a study folder, or an unknown `format`.
    """
    from studies import folder
    from studies.outputs import reporting as reports

    if format not in reports.FORMATS:
        raise ValueError(
            f"format must be one of {', '.join(reports.FORMATS)}, got {format!r}"
        )
    if not os.path.isfile(os.path.join(out, folder.SPEC)):
        raise ValueError(f"{out} is not a study folder (no {folder.SPEC})")
    return reports.write(out, reports.FORMATS[format])


def prepare(study, preset, model, data, given, style, command):
    """Checks everything, resolves the model and the data once, builds the spec.

    A user's module (`MODULE:FUNCTION`) is imported here, after every other
    option is checked (no user code and no TensorFlow before a typo is
    answered) and before the variants are, so it can register variants of
    its own.

    Returns:
        `(spec, model, data)`: the `StudySpec`, and the
        `resolved.ModelInput` and `resolved.DataInput` the runner takes.

    Raises:
        options.OptionError: a bad study, option or value.
    """
    spell = options.speller(style)
    presets = option_table.BY_NAME["preset"].names()
    if preset not in presets:
        raise options.OptionError(
            f"{spell('preset')} must be one of {', '.join(presets)}, got {preset!r}"
        )
    for option in ("dataset", "model"):
        if option in given:  # else it would be dropped for the argument's value
            raise options.OptionError(
                f"give the {option} as {spell(option)}=..., not {option}=..."
            )
    model_input = _model(model, style)
    data_input = _data(data)
    checked = options.check(
        study,
        {
            **given,
            "variants": None,
            "model": model_input and model_input.name,
            "dataset": data_input and data_input.name,
        },
        style,
    )
    if any(x is not None and x.reference for x in (model_input, data_input)):
        quiet.import_backend()  # a user's module imports Keras: no start-up noise
    model_input = _load(model_input, spell("model"))
    data_input = _load(data_input, spell("dataset"))
    if given.get("variants") is not None:  # the registry as the modules left it
        checked["variants"] = options.check_variants(given["variants"], style)
    standard = None if model_input is None else model_input.standard_init
    if standard is not None and standard not in definitions.INITS:
        raise options.OptionError(
            f"{model_input.name}.standard_init is {standard!r}: choose one of "
            f"{', '.join(definitions.INITS)}"
        )
    spec = make_spec(study, preset, command=command, standard_init=standard, **checked)
    options.check_applies(spec, checked, style)
    # not given: the preset's built-in model and dataset, by name
    return (
        spec,
        model_input or resolved.model(spec.fixed["model"]),
        data_input or resolved.data(spec.fixed["dataset"]),
    )


def _model(model, style):
    """The `ModelInput` of `model` (None: the preset's); user code is not
    loaded here."""
    if model is None:
        return None
    given = resolved.model(model)
    if given is None:
        raise options.OptionError(
            f"unknown model {model!r}: choose one of {', '.join(models.NAMES)}, "
            "or give a builder as MODULE:FUNCTION"
            + (" or a callable" if style == "api" else "")
        )
    return given


def _data(data):
    """The `DataInput` of `data` (None: the preset's)."""
    if data is None:
        return None
    given = resolved.data(data)
    if given is None:
        raise options.OptionError(
            f"unknown dataset {data!r}: choose one of {', '.join(datasets.NAMES)}, "
            "a .npz file, or MODULE:FUNCTION"
        )
    return given


def _load(given, option):
    if given is None:
        return None
    try:
        return resolved.load(given, option)
    except plugins.PluginError as error:
        raise options.OptionError(str(error)) from None


def default_out(spec, preset):
    """`runs/STUDY-DATASET-PRESET`, the dataset named by its file or reference."""
    dataset = str(spec.fixed["dataset"])
    if dataset.endswith(".npz"):
        dataset = os.path.splitext(os.path.basename(dataset))[0]
    dataset = "".join(c if c.isalnum() or c in "-_" else "-" for c in dataset)
    return os.path.join("runs", f"{spec.study}-{dataset}-{preset}")


def _command(study, out, model, data, preset, kwargs):
    """A readable record of the call, for the report's Reproduce section."""
    parts = [repr(study)]
    if out is not None:
        parts.append(f"out={out!r}")
    if model is not None:
        parts.append(
            f"model={model if isinstance(model, str) else plugins.name_of(model)!r}"
        )
    if data is not None:
        parts.append(f"data={data!r}" if isinstance(data, str) else "data=<arrays>")
    if preset != "quick":
        parts.append(f"preset={preset!r}")
    parts += [f"{k}={v!r}" for k, v in kwargs.items() if v is not None]
    return f"studies.run({', '.join(parts)})"
