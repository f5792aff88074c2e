"""The init scale multiplies the hidden layers' kernels (those a variant
normalizes), not the output layer's, unless `scale_output`: built-in models,
user builders, the spec, the command line and resuming."""

import json
import os

import numpy as np
import pytest
from study_helpers import build_model
from test_study_cli import fails

import studies
from studies.inputs import builders
from studies.science.spec import StudySpec, make_spec
from studies.surfaces import cli, runner

SHAPES = {"mlp-relu": (8, 8, 1), "mlp-sigmoid": (8, 8, 1), "cnn": (8, 8, 1)}


def _kernels(model):
    """The kernels in layer order (the output layer's last)."""
    return [np.asarray(w) for w in model.weights if w.path.endswith("kernel")]


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("scale_output", [False, True])
def test_init_scale_multiplies_the_hidden_kernels_and_the_output_only_if_asked(
    name, scale_output
):
    standard = _kernels(build_model(name, "bn", SHAPES[name], 10, init_scale=1.0))
    scaled = _kernels(
        build_model(
            name, "bn", SHAPES[name], 10, init_scale=10.0, scale_output=scale_output
        )
    )
    ratios = [np.std(s) / np.std(b) for s, b in zip(scaled, standard, strict=True)]
    *hidden, output = ratios
    assert len(hidden) >= 3
    # the same seeded draws, scaled: the ratio of stds is the scale itself
    assert hidden == pytest.approx([10.0] * len(hidden), rel=1e-4)
    assert output == pytest.approx(10.0 if scale_output else 1.0, rel=1e-4)
    # and the output kernel's std is the family's standard one (He: 2 / fan_in)
    if name == "mlp-relu" and not scale_output:
        fan_in = scaled[-1].shape[0]
        assert np.std(scaled[-1]) == pytest.approx(np.sqrt(2 / fan_in), rel=0.1)


def test_the_spec_records_scale_output_and_an_old_folder_reads_as_it_ran():
    assert make_spec("init").fixed["scale_output"] is False
    assert make_spec("init", scale_output=True).fixed["scale_output"] is True
    for study, ran_scaled in (("init", True), ("lr-init", True), ("lr", False)):
        old = json.loads(make_spec(study).to_json())
        del old["fixed"]["scale_output"]  # a folder from before the setting
        # it multiplied every kernel by the scale: recorded as scale_output
        # where the scale was not 1 (so resuming with the new default refuses)
        assert StudySpec.from_json(json.dumps(old)).fixed["scale_output"] is ran_scaled


def _prepare(argv):
    return cli.prepare(cli.build_parser().parse_args(argv), argv)[0]


def test_the_flag_parses_and_is_refused_where_the_scale_is_1(capsys, tmp_path):
    assert _prepare(["init"]).fixed["scale_output"] is False
    assert _prepare(["init", "--scale-output"]).fixed["scale_output"] is True
    assert _prepare(["lr-init", "--scale-output"]).fixed["scale_output"] is True
    fixed = _prepare(["lr", "--init-scales", "3", "--scale-output"]).fixed
    assert (fixed["init_scale"], fixed["scale_output"]) == (3.0, True)
    out = str(tmp_path / "o")
    fails(["lr", "--scale-output", "--out", out], capsys, "init scale is 1")
    with pytest.raises(ValueError, match="^scale_output scales the output layer"):
        studies.run("lr", out=out, scale_output=True)
    with pytest.raises(ValueError, match="scale_output takes True or False"):
        studies.run("init", out=out, scale_output="yes")
    assert not os.path.exists(out)
    # off is no request: allowed anywhere
    assert make_spec("lr", scale_output=False).fixed["scale_output"] is False


def test_resuming_with_another_scale_output_is_refused(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "study.json").write_text(make_spec("init", command="first").to_json())
    with pytest.raises(runner.StudyError, match="scale_output: False there, True"):
        runner.check_folder(make_spec("init", scale_output=True), str(out))
    runner.check_folder(make_spec("init"), str(out))  # the same study resumes


def _user_builder(output):
    """A user's builder whose output layer takes `output(kernel_initializer)`."""
    import keras

    def build(normalization, kernel_initializer, input_shape, outputs):
        norm = normalization()
        layers = [keras.Input(input_shape), keras.layers.Flatten()]
        layers += [keras.layers.Dense(8, kernel_initializer=kernel_initializer)]
        layers += [norm] if norm is not None else []
        kernel = output(kernel_initializer)
        layers.append(keras.layers.Dense(outputs, kernel_initializer=kernel))
        return keras.Sequential(layers)

    return build


def test_a_user_builders_output_layer_must_follow_scale_output():
    settings = {"variant": "bn", "seed": 0, "init": "he_normal", "init_scale": 10.0}
    x = np.zeros((4, 6), "float32")

    def check(builder, scale_output):
        builders.check(
            builder,
            {**settings, "scale_output": scale_output},
            x,
            3,
            uses_init=True,
            scales=True,
        )

    follows = _user_builder(lambda init: init.output)
    check(follows, False)
    check(follows, True)
    scaled = _user_builder(lambda init: init)  # the hidden layers' initializer
    check(scaled, True)
    with pytest.raises(builders.BuilderError, match="use kernel_initializer.output"):
        check(scaled, False)
    own = _user_builder(lambda init: "glorot_uniform")  # its own output init
    check(own, False)
    with pytest.raises(builders.BuilderError, match="never uses kernel_initializer"):
        check(own, True)
    # where the scale is 1 the output layer's initializer does not matter
    builders.check(scaled, {**settings, "init_scale": 1.0}, x, 3, uses_init=True)
