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

from studies import quiet
from studies.inputs import data as datasets
from studies.inputs import plugins
from studies.science import definitions
from studies.science.spec import make_spec
from studies.surfaces import options


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
    force=False,
    **kwargs,
):
    """Runs (or resumes) a study; returns its summary (`summary.json`'s content).

    Args:
        study: One of `definitions.STUDIES` (`lr`, `init`, `lr-init`, `noise`,
            `covariate-shift`, `landscape`, `batch-size`).
        out: The study folder (default `runs/STUDY-DATASET-PRESET`); running
            again with the same folder resumes.
        model: A built-in model name, `"MODULE:FUNCTION"`, or a builder
            `build(normalization, kernel_initializer, input_shape, outputs)
            -> keras.Model` (see `studies.inputs.builders`). Default: the preset's.
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
        force: Go on although `out` holds this study with another grid,
            other settings or changed data (the report says so).
        **kwargs: The command line's options as Python values: `variants`,
            `lrs`, `inits`, `init_scales`, `batch_sizes` (lists), `seeds`,
            `epochs`, `steps`, `batch_size`, `train_size`, `probe_every`,
            `virtual_batch_size` (ints), `lr`, `divergence_threshold`,
            `momentum`, `weight_decay`, `warmup_fraction` (floats),
            `optimizer`, `schedule`, `task`, `feature_scaling`,
            `target_scaling` (names),
            `instruments` (a list of names).

    Returns:
        The summary dict.

    Raises:
        ValueError: an unknown study or option, a bad value, data or builder
            that cannot run the study, or an `out` folder holding another
            study (left untouched).
    """
    from studies.engine import leases
    from studies.surfaces import runner

    if lease_timeout is None:
        lease_timeout = leases.DEFAULT_TIMEOUT
    options.check_run(lease_timeout)
    spec, builder, source = prepare(
        study,
        preset,
        model,
        data,
        kwargs,
        "api",
        _command(study, out, model, data, preset, kwargs),
    )
    return runner.run(
        spec,
        out or default_out(spec, preset),
        stream=stream,
        builder=builder,
        source=source,
        lease_timeout=lease_timeout,
        retry_errors=retry_errors,
        force=force,
    )


def report(out):
    """Rebuilds `results.csv`, `summary.json`, the plots and `report.md` of the
    study folder `out`; returns the summary.

    Raises:
        ValueError: `out` is not a study folder.
    """
    from studies import folder
    from studies.outputs import reporting as reports

    if not os.path.isfile(os.path.join(out, folder.SPEC)):
        raise ValueError(f"{out} is not a study folder (no {folder.SPEC})")
    return reports.write(out)


def prepare(study, preset, model, data, given, style, command):
    """Checks everything and builds the spec; returns `(spec, builder, source)`.

    `builder` is None for a built-in model (the runner resolves it) and
    `source` is None unless the data came as Python objects. A user's module
    (`MODULE:FUNCTION`) is imported here, before the variants are checked, so
    it can register variants of its own.

    Raises:
        options.OptionError: a bad study, option or value.
    """
    if preset not in definitions.PRESETS:
        raise options.OptionError(
            f"{options.flag('preset', style)} must be one of "
            f"{', '.join(definitions.PRESETS)}, got {preset!r}"
        )
    for option, argument in (("dataset", "data"), ("model", "model")):
        if option in given:  # else it would be dropped for the argument's value
            raise options.OptionError(
                f"give the {option} as {argument}=..., not {option}=..."
            )
    model_name = _model_name(model, style)
    source, dataset_name = _data(data, style)
    # every option first: no user code and no TensorFlow before a typo is
    # answered; the variants after the user's modules, which may add some
    checked = options.check(
        study,
        {**given, "variants": None, "model": model_name, "dataset": dataset_name},
        style,
    )
    builder = model if callable(model) else None
    if any(isinstance(x, str) and plugins.is_reference(x) for x in (model, data)):
        quiet.import_backend()  # a user's module imports Keras: no start-up noise
    if isinstance(model, str) and plugins.is_reference(model):
        builder = _load(model, "model", style)
    if isinstance(data, str) and plugins.is_reference(data):
        _load(data, "dataset", style)
    known = None
    if "studies.inputs.variants" in sys.modules:
        known = sys.modules["studies.inputs.variants"].names()
    if given.get("variants") is not None:
        checked["variants"] = options.check_variants(given["variants"], style, known)
    standard = None
    if builder is not None:
        from studies.inputs import builders

        standard = builders.standard_init(builder)
        if standard not in definitions.INITS:
            raise options.OptionError(
                f"{model_name}.standard_init is {standard!r}: choose one of "
                f"{', '.join(definitions.INITS)}"
            )
    spec = make_spec(study, preset, command=command, standard_init=standard, **checked)
    options.check_applies(spec, checked, style)
    return spec, builder, source


def _model_name(model, style):
    """The name a study records for `model` (user code is not loaded here)."""
    if model is None or (isinstance(model, str) and model in definitions.MODELS):
        return model
    if callable(model):
        return plugins.name_of(model)
    if plugins.is_reference(model):
        return model
    raise options.OptionError(
        f"unknown model {model!r}: choose one of {', '.join(definitions.MODELS)}, "
        "or give a builder as MODULE:FUNCTION"
        + (" or a callable" if style == "api" else "")
    )


def _load(reference, option, style):
    try:
        return plugins.load(reference, options.flag(option, style))
    except plugins.PluginError as error:
        raise options.OptionError(str(error)) from None


def _data(data, style):
    """`(source or None, dataset name)`."""
    if data is None:
        return None, None
    if isinstance(data, str):
        if not datasets.is_dataset_name(data):
            raise options.OptionError(
                f"unknown dataset {data!r}: choose one of {', '.join(datasets.NAMES)}, "
                "a .npz file, or MODULE:FUNCTION"
            )
        return None, data
    if isinstance(data, list | tuple) and len(data) == 2:
        return data, "tf.data"
    return data, "arrays"


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
