"""A study on the user's own model and data: MODULE:FUNCTION on the command line,
callables, arrays and tf.data from Python, and every bad input answered in one
line (exit 2) or a ValueError, with an existing study folder untouched."""

import csv
import json
import os
import re
import subprocess
import sys
import uuid

import numpy as np
import pytest
import tensorflow as tf
from study_helpers import ROOT
from test_study_cli import fails, snapshot

import studies
from studies.inputs import builders

# A user's module: a functional builder that honours every part of the seam,
# a classification data function, and builders that break the seam.
USER_MODULE = """
import keras
import numpy as np


def build(normalization, kernel_initializer, input_shape, outputs):
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs)
    for width in (24, 24):
        norm = normalization()
        after = normalization.after_activation
        x = keras.layers.Dense(
            width, use_bias=norm is None or after, kernel_initializer=kernel_initializer
        )(x)
        if norm is not None and not after:
            x = norm(x)
        x = keras.layers.Activation("relu")(x)
        if norm is not None and after:
            x = norm(x)
    outputs = keras.layers.Dense(outputs, kernel_initializer=kernel_initializer)(x)
    return keras.Model(inputs, outputs)


build.standard_init = "he_normal"


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64") + (x[:, 2] > 1)
    return dict(x_train=x[:240], y_train=y[:240], x_test=x[240:], y_test=y[240:])


def raises(normalization, kernel_initializer, input_shape, outputs):
    raise RuntimeError("my builder is broken")


def not_a_model(normalization, kernel_initializer, input_shape, outputs):
    return "a model"


def ignores_normalization(normalization, kernel_initializer, input_shape, outputs):
    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(outputs)])


def wrong_outputs(normalization, kernel_initializer, input_shape, outputs):
    normalization()
    return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(outputs + 1)])


def mismatched():
    x = np.zeros((50, 6), "float32")
    return x, np.zeros(49, "int64"), x[:10], np.zeros(10, "int64")


def shapes():
    return (np.zeros((50, 6), "float32"), np.zeros(50, "int64"),
            np.zeros((10, 7), "float32"), np.zeros(10, "int64"))


def with_nan():
    x = np.zeros((50, 6), "float32")
    x[3, 2] = np.nan
    return x, np.arange(50) % 2, x[:10] * 0, np.arange(10) % 2


def floats():
    x = np.random.default_rng(0).normal(size=(60, 6)).astype("float32")
    return x[:50], x[:50, 0] * 1.5, x[50:], x[50:, 0] * 1.5


def three():
    return 1, 2, 3
"""

TINY = ["--epochs", "1", "--seeds", "1", "--batch-size", "40"]


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A uniquely named module in a fresh current directory; returns its name."""
    name = f"user_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_cli_runs_a_users_builder_and_data_function(tmp_path):
    """As a user would: a file in the current directory, `python -m studies`."""
    (tmp_path / "my_models.py").write_text(USER_MODULE)
    command = [
        sys.executable,
        "-m",
        "studies",
        "lr",
        "--model",
        "my_models:build",
        "--dataset",
        "my_models:data",
        "--lrs",
        "0.1",
        "--variants",
        "none,bn-after",
        *TINY,
        "--out",
        str(tmp_path / "out"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env.update(PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    spec = json.loads((tmp_path / "out" / "study.json").read_text())
    assert spec["fixed"]["model"] == "my_models:build"
    assert spec["fixed"]["dataset"] == "my_models:data"
    assert spec["fixed"]["task"] == "classification"
    assert spec["fixed"]["init"] == "he_normal"  # the builder's standard_init
    dataset = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert "features as given (no scaling)" in dataset["description"]
    with open(tmp_path / "out" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["status"] != "error" for r in rows)


def test_api_takes_a_callable_and_arrays_and_tf_data(user_module, tmp_path):
    module = __import__(user_module)
    arrays = module.data()
    grid = dict(variants=["none", "bn"], lrs=[0.3], seeds=1, epochs=2, batch_size=40)
    quiet = open(os.devnull, "w")
    summary = studies.run(
        "lr",
        out=str(tmp_path / "arrays"),
        model=module.build,
        data=arrays,
        stream=quiet,
        **grid,
    )
    assert summary["task"] == "classification"
    assert summary["cells_finished"] == 2
    assert summary["variants"]["bn"]["best_val_accuracy"] > summary["chance"]
    spec = json.loads((tmp_path / "arrays" / "study.json").read_text())
    assert spec["fixed"]["model"] == f"{user_module}:build"
    assert spec["fixed"]["dataset"] == "arrays"
    assert spec["command"].startswith("studies.run('lr'")

    # the same data as batched tf.data gives the same examples, so the
    # same results as the arrays, cell by cell
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(7)
    test = tf.data.Dataset.from_tensor_slices((arrays["x_test"], arrays["y_test"]))
    test = test.batch(32, drop_remainder=False)
    again = studies.run(
        "lr",
        out=str(tmp_path / "tfdata"),
        model=f"{user_module}:build",
        data=(train, test),
        stream=quiet,
        **grid,
    )
    for variant in ("none", "bn"):
        assert again["variants"][variant]["best_val_accuracy"] == pytest.approx(
            summary["variants"][variant]["best_val_accuracy"], abs=1e-6
        )
        assert again["variants"][variant]["test_accuracy"] == pytest.approx(
            summary["variants"][variant]["test_accuracy"], abs=1e-6
        )
    # and the report rebuilds from the folder alone
    assert studies.report(str(tmp_path / "tfdata"))["cells_finished"] == 2


def test_tf_data_that_cannot_be_read_as_batches_is_refused(tmp_path, capsys):
    x = np.zeros((20, 3), "float32")
    y = np.arange(20) % 2
    pairs = tf.data.Dataset.from_tensor_slices((x, y))
    weighted = tf.data.Dataset.from_tensor_slices((x, y, np.ones(20))).batch(4)
    for train, match in (
        (pairs.batch(4).repeat(), "infinite"),
        (pairs, "does not yield batches"),  # unbatched: refused, not guessed at
        (weighted, "must yield (x, y) pairs, got 3-tuples"),
    ):
        with pytest.raises(ValueError, match=re.escape(match)):
            studies.run(
                "lr", out=str(tmp_path / "o"), data=(train, pairs.batch(4)), lrs=[0.1]
            )
    assert not (tmp_path / "o").exists()


BAD = [
    (["--model", "no_such_module_xyz:build"], "cannot import module"),
    (["--model", "{m}:missing"], "has no missing"),
    (
        ["--model", "{m}:raises", "--dataset", "{m}:data"],
        "raised RuntimeError: my builder is broken",
    ),
    (
        ["--model", "{m}:not_a_model", "--dataset", "{m}:data"],
        "returned str, not a keras.Model",
    ),
    (
        ["--model", "{m}:ignores_normalization", "--dataset", "{m}:data"],
        "never calls normalization()",
    ),
    (["--model", "{m}:wrong_outputs", "--dataset", "{m}:data"], "outputs shape (4, 4)"),
    (["--model", "{m}:build", "--dataset", "{m}:mismatched"], "same length"),
    (["--model", "{m}:build", "--dataset", "{m}:shapes"], "x_test examples (7,)"),
    (["--model", "{m}:build", "--dataset", "{m}:with_nan"], "1 NaN or inf"),
    (["--model", "{m}:build", "--dataset", "{m}:three"], "must be (x_train"),
    (
        ["--model", "{m}:build", "--dataset", "{m}:floats", "--task", "classification"],
        "non-integer or negative values: classification needs labels 0, 1",
    ),
    (["--model", "{m}:build", "--dataset", "no_such_module_xyz:data"], "cannot import"),
    (["--model", "not-a-reference:"], "unknown model"),
]


@pytest.mark.parametrize("options, match", BAD)
def test_bad_user_code_or_data_is_one_line_and_leaves_the_folder(
    options, match, user_module, tmp_path, capsys
):
    out = tmp_path / "study"
    options = [o.format(m=user_module) for o in options]
    # the CLI: one line, exit 2, nothing created
    fails(
        ["lr", "--lrs", "0.1", "--variants", "none,bn", *options, "--out", str(out)],
        capsys,
        match,
    )
    assert not out.exists()
    # the API: a ValueError with the same message
    api = {"model": None, "data": None, "task": None}
    for flag, value in zip(options[::2], options[1::2], strict=True):
        api[flag.lstrip("-")] = value
    model, data = api.pop("model"), api.pop("dataset", None)
    with pytest.raises(ValueError, match=re.escape(match)):
        studies.run(
            "lr",
            out=str(out),
            model=model,
            data=data,
            lrs=[0.1],
            variants=["none", "bn"],
            **{k: v for k, v in api.items() if v},
        )
    assert not out.exists()


def test_an_existing_study_is_untouched_by_bad_user_code(user_module, tmp_path, capsys):
    out = tmp_path / "study"
    common = ["lr", "--lrs", "0.1", "--variants", "none", *TINY, "--out", str(out)]
    assert (
        studies_cli(
            common
            + ["--model", f"{user_module}:build", "--dataset", f"{user_module}:data"]
        )
        == 0
    )
    before = snapshot(out)
    fails(
        common
        + ["--model", f"{user_module}:raises", "--dataset", f"{user_module}:data"],
        capsys,
        "holds a different study (",
    )
    fails(  # even --resume-changed writes nothing before the builder has run
        common
        + ["--model", f"{user_module}:raises", "--dataset", f"{user_module}:data"]
        + ["--resume-changed"],
        capsys,
        "raised RuntimeError",
    )
    fails(
        common
        + ["--model", f"{user_module}:build", "--dataset", f"{user_module}:with_nan"]
        + ["--resume-changed"],
        capsys,
        "NaN",
    )
    assert snapshot(out) == before


def studies_cli(argv):
    from studies.surfaces import cli

    return cli.main(argv)


def test_builder_checks_catch_ignored_placement_and_init(user_module):
    import keras

    def plain(normalization, kernel_initializer, input_shape, outputs):
        normalization()  # calls it, but never asks where the layer goes
        return keras.Sequential([keras.Input(input_shape), keras.layers.Dense(outputs)])

    settings = {
        "variant": "bn-after",
        "seed": 0,
        "init": "he_normal",
        "init_scale": 1.0,
        "virtual_batch_size": 4,
    }
    x = np.zeros((4, 6), "float32")
    with pytest.raises(builders.BuilderError, match="after_activation"):
        builders.check(plain, settings, x, 3, uses_init=False)
    with pytest.raises(builders.BuilderError, match="never uses kernel_initializer"):
        builders.check(plain, {**settings, "variant": "bn"}, x, 3, uses_init=True)


def test_cell_initializer_draws_new_seeded_values_per_layer():
    init = builders.CellInitializer("he_normal", 1.0, seed=3)
    first, second = init((50, 40)), init((50, 40))
    assert not np.allclose(first, second)  # two layers, two draws
    again = builders.CellInitializer("he_normal", 1.0, seed=3)
    assert np.allclose(again((50, 40)), first)  # same cell, same weights
    assert np.std(first) == pytest.approx(np.sqrt(2 / 50), rel=0.1)  # He: 2/fan_in


def test_resuming_on_other_data_is_refused(user_module, tmp_path):
    module = __import__(user_module)
    arrays = module.data()
    out = str(tmp_path / "study")
    common = dict(
        variants=["none"],
        lrs=[0.1],
        seeds=1,
        epochs=1,
        batch_size=40,
        stream=open(os.devnull, "w"),
    )
    studies.run("lr", out=out, data=arrays, **common)
    before = snapshot(out)
    changed = dict(arrays, x_train=arrays["x_train"] + 1.0)
    with pytest.raises(ValueError, match="data arrays has changed: fingerprint"):
        studies.run("lr", out=out, data=changed, **common)
    assert snapshot(out) == before
    # the same data resumes (nothing left to run)
    assert studies.run("lr", out=out, data=arrays, **common)["cells_finished"] == 1
    # resume_changed goes on with the new data, and the report says so
    summary = studies.run("lr", out=out, data=changed, resume_changed=True, **common)
    assert (
        len(summary["forced"]) == 1
        and "data arrays has changed" in summary["forced"][0]
    )
    assert "**Forced** by run" in open(os.path.join(out, "report.md")).read()


def test_a_model_without_input_passes_the_init_check():
    import keras

    def lazy(normalization, kernel_initializer, input_shape, outputs):
        norm = normalization()
        layers = [keras.layers.Dense(8, kernel_initializer=kernel_initializer)]
        layers += [norm] if norm is not None else []
        layers.append(
            keras.layers.Dense(outputs, kernel_initializer=kernel_initializer)
        )
        return keras.Sequential(layers)  # weights are made on the first call

    settings = {
        "variant": "bn",
        "seed": 0,
        "init": "he_normal",
        "init_scale": 10.0,
        "virtual_batch_size": 4,
    }
    builders.check(lazy, settings, np.zeros((4, 6), "float32"), 3, uses_init=True)


def test_a_study_folder_from_before_these_settings_still_resumes():
    from studies.science.spec import StudySpec, make_spec

    new = make_spec("lr", task="classification")
    old = json.loads(new.to_json())
    for key in (
        "task",
        "feature_scaling",
        "target_scaling",
        "virtual_batch_size",
        "momentum",
        "weight_decay",
        "schedule",
        "warmup_fraction",
    ):
        del old["fixed"][key]
    assert StudySpec.from_json(json.dumps(old)).same_study(new)
