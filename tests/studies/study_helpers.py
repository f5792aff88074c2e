"""Helpers for the studies tests: tiny studies that run in seconds.

(Not a conftest.py: tests/conftest.py is imported as `conftest` already.)
"""

import io
import os
import subprocess
import sys

from studies.science import definitions, spec
from studies.surfaces import runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The command-line twin of tiny_spec; later options override these.
TINY_ARGS = [
    "--dataset",
    "digits",
    "--train-size",
    "120",
    "--epochs",
    "1",
    "--seeds",
    "1",
    "--batch-size",
    "40",
]


def study_command(study, out, *options):
    """`python -m studies STUDY` at tiny size, writing to `out`."""
    return [
        sys.executable,
        "-m",
        "studies",
        study,
        *TINY_ARGS,
        *options,
        "--out",
        str(out),
    ]


def start(command, **env):
    """Starts `command` in the repository root, quiet TensorFlow, text pipes;
    `env` adds to (or, with None, removes from) the environment."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")
    }
    environment.update(TF_CPP_MIN_LOG_LEVEL="3")
    environment.update({k: str(v) for k, v in env.items() if v is not None})
    for name in [k for k, v in env.items() if v is None]:
        environment.pop(name, None)
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def tiny_spec(study="lr", **overrides):
    """A study small enough for a unit test: 120 digits, one epoch, one seed."""
    options = dict(
        dataset="digits",
        train_size=120,
        epochs=1,
        seeds=1,
        variants=["none", "bn"],
        batch_size=40,
    )
    if study in ("lr", "lr-init"):
        options["lrs"] = [0.1, 1.0]
    if study in ("init", "lr-init"):
        options.update(inits=["glorot_uniform"], init_scales=[0.1, 1.0])
    if definitions.tunes_lr(study) and not {"lr", "lrs"} & set(overrides):
        options["lrs"] = [0.1]  # one rate: no tuning phase
    options.update(overrides)
    return spec.make_spec(study, "quick", command=f"test {study}", **options)


def build_model(name, variant, input_shape, outputs, seed=0, **settings):
    """A built-in model for one variant, through the builder seam."""
    from studies.inputs import builders, models

    settings = {
        "variant": variant,
        "seed": seed,
        "init": models.STANDARD_INIT[name],
        "init_scale": 1.0,
        "virtual_batch_size": 16,
        **settings,
    }
    model, _, _ = builders.build(models.BUILDERS[name], settings, input_shape, outputs)
    return model


def run(study_spec, out, fuse=None):
    """Runs a study in-process; returns (summary, progress text)."""
    stream = io.StringIO()
    summary = runner.run(study_spec, str(out), stream=stream, fuse=fuse)
    return summary, stream.getvalue()


def progress_cells(text):
    """The cell keys named by progress lines, in order."""
    cells = []
    for line in text.splitlines():
        if line.startswith("[") and "/" in line.split("]")[0]:
            values = line.split("]", 1)[1].split("  ")[0].strip()
            cells.append(values.replace(" ", ","))
    return cells
