"""The depth study: the gradient-norm instrument against a float64 NumPy
reference, the residual variant's structure, the growth fit, the refusals
(a builder without `depth`, bad `--depths`) and the study end to end."""

import json
import math
import re
import uuid

import keras
import numpy as np
import pytest
from study_helpers import TINY_ARGS, build_model
from test_study_cli import fails

import studies
from studies.engine import instruments
from studies.inputs import builders, data, models
from studies.science import depth, spec, tasks, tuning
from studies.surfaces import cli

# -- the instrument against an independent float64 computation ---------------


def _reference_norms(model, x, y):
    """Per hidden layer, ||dL/dW|| of a Dense (-> BN) -> ReLU MLP with a
    Dense head and mean softmax cross-entropy, forward and backward written
    out in float64 NumPy (BN in training mode: batch mean, biased variance)."""
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    norms = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    weights = [[np.asarray(w, np.float64) for w in d.get_weights()] for d in dense]
    h, cache = np.asarray(x, np.float64).reshape(len(x), -1), []
    for i, w in enumerate(weights[:-1]):
        z = h @ w[0] + (w[1] if len(w) > 1 else 0.0)
        if norms:
            gamma, beta = (np.float64(v) for v in norms[i].get_weights()[:2])
            inv = 1.0 / np.sqrt(z.var(axis=0) + norms[i].epsilon)
            zhat = (z - z.mean(axis=0)) * inv
            a = gamma * zhat + beta
            cache.append((h, zhat, inv, gamma, a))
        else:
            a = z
            cache.append((h, None, None, None, a))
        h = np.maximum(a, 0.0)
    logits = h @ weights[-1][0] + weights[-1][1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    dh = (p / len(y)) @ weights[-1][0].T
    found = []
    for i in reversed(range(len(weights) - 1)):
        inp, zhat, inv, gamma, a = cache[i]
        da = dh * (a > 0)
        if zhat is None:
            dz = da
        else:
            dzhat, n = da * gamma, len(y)
            dz = (
                inv
                / n
                * (n * dzhat - dzhat.sum(axis=0) - zhat * (dzhat * zhat).sum(axis=0))
            )
        found.append(np.linalg.norm(inp.T @ dz))
        dh = dz @ weights[i][0].T
    return found[::-1]


def _compiled(variant, depth_, seed=0):
    model = build_model("mlp-relu", variant, (8, 8, 1), 10, seed=seed, depth=depth_)
    task = tasks.get(tasks.CLASSIFICATION)
    model.compile(loss=keras.losses.get(task.loss), optimizer="sgd")
    return model


@pytest.mark.parametrize("variant, depth_", [("bn", 3), ("bn", 2), ("none", 3)])
def test_gradient_norms_match_a_float64_numpy_reference(variant, depth_):
    dataset = data.load("digits", train_size=120)
    x, y = dataset.x_train[:32], dataset.y_train[:32]
    model = _compiled(variant, depth_)
    before = [np.array(v) for v in model.non_trainable_variables]
    found = instruments.init_grad_norms(model, x, y)
    assert len(found) == depth_
    np.testing.assert_allclose(found, _reference_norms(model, x, y), rtol=2e-3)
    # the forward pass left no trace: the moving statistics are as built
    for value, variable in zip(before, model.non_trainable_variables, strict=True):
        np.testing.assert_array_equal(value, np.array(variable))


def test_residual_variant_builds_pre_activation_blocks():
    model = build_model("mlp-relu", "bn-residual", (8, 8, 1), 10, depth=4)
    assert len(instruments.hidden_kernels(model)) == 4
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Add") == 3
    assert kinds.count("BatchNormalization") == 4
    plain = build_model("mlp-relu", "bn", (8, 8, 1), 10, depth=4)
    assert len(instruments.hidden_kernels(plain)) == 4
    assert "Add" not in [type(layer).__name__ for layer in plain.layers]
    # a builder that never reads normalization.residual is refused for it
    x = np.zeros((4, 8, 8, 1), "float32")
    settings = {"variant": "bn-residual", "seed": 0, "init": "he_normal"}
    settings.update(init_scale=1.0, virtual_batch_size=16)
    with pytest.raises(builders.BuilderError, match="never reads normalization.resid"):
        builders.check(models.BUILDERS["cnn"], settings, x, 10, False, "cnn")


def test_growth_is_the_fitted_factor_per_layer_towards_the_input():
    assert depth.growth([8.0, 4.0, 2.0, 1.0]) == pytest.approx(2.0)
    assert depth.growth([1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert depth.growth([1.0]) is None
    assert depth.growth([1.0, 0.0]) is None
    assert depth.PREDICTED_GROWTH == pytest.approx(1.46694, abs=1e-5)


def test_the_rate_is_tuned_at_the_median_depth():
    study = spec.make_spec("depth", "quick", depths=[2, 8, 24, 48])
    assert tuning.reference_depth(study) == 8
    phase = tuning.tuning_spec(study)
    assert phase.fixed["depth"] == 8 and "depth" not in phase.axes
    assert phase.fixed["instruments"] == []


def test_residual_and_plain_cells_train_in_a_group_as_they_do_alone():
    from test_study_groups import check_group, digits

    study = spec.make_spec(
        "depth",
        variants=["bn", "bn-residual"],
        depths=[3],
        lrs=[0.1],
        seeds=1,
        epochs=1,
        batch_size=40,
    )
    got = check_group(study, digits())
    assert [len(g["init_grad_norms"]) for g in got] == [3, 3]
    assert got[0]["init_grad_norms"] != got[1]["init_grad_norms"]


# -- refusals -------------------------------------------------------------------

NO_DEPTH = """
from studies.inputs import models


def build(normalization, kernel_initializer, input_shape, outputs):
    return models.BUILDERS["mlp-relu"](
        normalization, kernel_initializer, input_shape, outputs
    )


build.standard_init = "he_normal"
"""


def _no_depth(normalization, kernel_initializer, input_shape, outputs):
    return models.BUILDERS["mlp-relu"](
        normalization, kernel_initializer, input_shape, outputs
    )


def test_a_builder_without_depth_is_refused(tmp_path, monkeypatch, capsys):
    name = f"nodepth_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(NO_DEPTH)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "study"
    argv = ["depth", *TINY_ARGS, "--model", f"{name}:build", "--out", str(out)]
    err = fails(argv, capsys, f"model builder {name}:build takes no depth argument")
    assert "depth" in err
    assert not out.exists()
    with pytest.raises(ValueError, match="takes no depth argument"):
        studies.run("depth", out=str(out), model=_no_depth, train_size=120, seeds=1)
    assert not out.exists()
    # a builder with **kwargs takes it
    assert builders.takes_depth(lambda n, k, s, o, **kwargs: None)
    assert not builders.takes_depth(_no_depth)


def test_one_depth_fixes_it_in_another_study(tmp_path, capsys):
    fixed = spec.make_spec("lr", depths=[12], lrs=[0.1])
    assert fixed.fixed["depth"] == 12 and "depth" not in fixed.axes
    model = build_model("mlp-relu", "bn", (8, 8, 1), 10, depth=fixed.fixed["depth"])
    assert len(instruments.hidden_kernels(model)) == 12
    assert spec.make_spec("lr").fixed["depth"] is None  # the model's own
    fails(["lr", "--depths", "2,4"], capsys, "give --depths one value")
    out = tmp_path / "cnn"
    argv = ["lr", *TINY_ARGS, "--model", "cnn", "--depths", "3", "--lrs", "0.1"]
    err = fails([*argv, "--out", str(out)], capsys, "model builder cnn takes no depth")
    assert "use one that does (mlp-relu, mlp-sigmoid)" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "value, match",
    [
        ("0", "must be positive"),
        ("2,-4", "must be positive"),
        ("2.5", "comma-separated numbers"),
    ],
)
def test_bad_depths_are_refused(value, match, tmp_path, capsys):
    out = tmp_path / "study"
    fails(["depth", *TINY_ARGS, "--depths", value, "--out", str(out)], capsys, match)
    assert not out.exists()


@pytest.mark.parametrize(
    "values, match", [([0], "positive"), ([-2], "positive"), ([2.5], "integers")]
)
def test_bad_depths_are_refused_by_the_api(values, match, tmp_path):
    with pytest.raises(ValueError, match=re.escape(match)) as error:
        studies.run("depth", out=str(tmp_path / "o"), depths=values, seeds=1)
    assert "depths" in str(error.value)
    assert not (tmp_path / "o").exists()


# -- end to end -----------------------------------------------------------------


def _records(out):
    """`{cell key: record}` of the main phase's cells."""
    return {
        p.stem: json.loads(p.read_text())
        for p in (out / "cells").glob("variant=*.json")
    }


def test_the_study_end_to_end(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["depth", *TINY_ARGS, "--seeds", "2", "--depths", "1,3"]
    assert cli.main([*argv, "--lrs", "0.1,1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["tuned_lr"]) == {"none", "bn", "bn-residual"}
    predicted = summary["depth"]["predicted_growth"]
    assert predicted == pytest.approx(math.pi / (math.pi - 1))
    for variant in ("none", "bn", "bn-residual"):
        numbers = summary["variants"][variant]
        norms = numbers["init_grad_norms"]
        assert [len(norms[d]) for d in ("1", "3")] == [1, 3]
        assert all(v > 0 for v in norms["3"])
        assert numbers["init_grad_growth"]["1"]["value"] is None  # one layer
        assert numbers["init_grad_growth"]["3"]["interval"]["n"] == 2
        assert numbers["depth_accuracy"]["3"]["cells"] == 2
        assert "max_stable_depth" in numbers  # the generic numeric-axis numbers
    # each cell's record keeps its own norms, trained in a group or alone
    grouped = _records(out)
    assert {r["group_size"] for r in grouped.values()} == {3}
    alone = tmp_path / "alone"
    assert cli.main([*argv, "--lrs", "0.1", "--fuse", "1", "--out", str(alone)]) == 0
    for key, record in _records(alone).items():
        assert record["group_size"] == 1
        expected = grouped[key]["init_grad_norms"]
        assert len(expected) == int(key.split("depth=")[1].split(",")[0])
        np.testing.assert_allclose(record["init_grad_norms"], expected, rtol=1e-5)
    report = (out / "report.md").read_text()
    assert "## Depth: gradient norms at initialization and training" in report
    assert (out / "init_grad_norms.png").exists()
    assert (out / "accuracy_vs_depth.png").exists()
    printed = capsys.readouterr().out
    assert "gradient norm growth per layer at init, depth 3" in printed
