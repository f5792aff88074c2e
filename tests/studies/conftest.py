"""Helpers for the studies tests: tiny specs that run in seconds."""

import io

import pytest

from studies import runner, spec


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
    options.update(overrides)
    return spec.make_spec(study, "quick", command=f"test {study}", **options)


def run(study_spec, out):
    """Runs a study in-process; returns (summary, progress text)."""
    stream = io.StringIO()
    summary = runner.run(study_spec, str(out), stream=stream)
    return summary, stream.getvalue()


def progress_cells(text):
    """The cell keys named by progress lines, in order."""
    cells = []
    for line in text.splitlines():
        if line.startswith("[") and "/" in line.split("]")[0]:
            values = line.split("]", 1)[1].split("  ")[0].strip()
            cells.append(values.replace(" ", ","))
    return cells


@pytest.fixture
def tiny():
    return tiny_spec
