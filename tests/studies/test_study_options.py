"""The options table: the command line and `studies.run` take the same options,
each names an option as its caller spells it, the reference in docs/ is the
table's, and a `MODULE:FUNCTION` is resolved once."""

import inspect
import os

import pytest
from study_helpers import ROOT

import studies
from studies.inputs import plugins, variants
from studies.science import tasks
from studies.science.spec import make_spec
from studies.surfaces import api, cli, option_table, options

# The options only the command line has: a process's role in a distributed
# study; and only Python has: where progress goes.
CLI_ONLY = {"chief", "worker", "oracle_address"}
API_ONLY = {"stream"}


def _cli_options():
    """dest -> flag of every option of a study's subcommand, from argparse."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "study").choices["lr"]
    return {
        action.dest: action.option_strings[0]
        for action in sub._actions
        if action.option_strings and action.dest != "help"
    }


def _api_keywords():
    """Every keyword `studies.run` takes: its parameters, and the options its
    **kwargs accept (each one tried: an unknown one raises)."""
    parameters = inspect.signature(studies.run).parameters
    named = {n for n, p in parameters.items() if p.kind is not p.VAR_KEYWORD}
    named -= {"study"}  # the subcommand on the command line
    accepted = set()
    for name in _cli_options():
        try:
            options.check("lr", {name: None}, "api")
        except options.OptionError as error:
            assert "unknown option" in str(error)
            continue
        accepted.add(name)
    return named | (accepted - {"model", "dataset"})


def test_the_cli_and_the_api_take_the_same_options():
    cli_names = set(_cli_options())
    # the dataset is --dataset on the command line and data= in Python
    api_names = {"dataset" if k == "data" else k for k in _api_keywords()}
    assert cli_names - api_names == CLI_ONLY
    assert api_names - cli_names == API_ONLY
    assert "lr" in cli_names  # the API took lr before the command line did
    table = option_table.OPTIONS
    assert {o.name for o in table if o.cli_only} == CLI_ONLY
    assert {o.name for o in table if o.api_only} == API_ONLY
    for name, flag in _cli_options().items():
        assert flag == "--" + name.replace("_", "-")


def test_docs_options_md_is_what_the_table_renders():
    with open(os.path.join(ROOT, "docs", "options.md")) as f:
        committed = f.read()
    assert committed == option_table.markdown(), (
        'docs/options.md is stale: run python -c "from studies.surfaces import '
        'option_table; option_table.write()"'
    )
    for option in option_table.OPTIONS:
        assert (option.flag or f"`{option.api}`") in committed


@pytest.mark.parametrize(
    "argv, keywords, flag_says, keyword_says",
    [
        (
            ["lr", "--train-size", "100000"],
            {"train_size": 100000},
            "--train-size 100000 is larger than",
            "train_size 100000 is larger than",
        ),
        (
            ["lr", "--lr", "0.1"],
            {"lr": 0.1},
            "give --lrs, not --lr",
            "give lrs, not lr",
        ),
        (
            ["lr", "--target-scaling", "none"],
            {"target_scaling": "none"},
            "--target-scaling applies to regression targets",
            "target_scaling applies to regression targets",
        ),
        (
            ["lr", "--dataset", "nowhere_xyz:data"],
            {"data": "nowhere_xyz:data"},
            "--dataset nowhere_xyz:data: cannot import module",
            "data nowhere_xyz:data: cannot import module",
        ),
    ],
)
def test_errors_name_the_option_as_the_caller_spells_it(
    argv, keywords, flag_says, keyword_says, capsys, tmp_path
):
    out = tmp_path / "o"
    assert cli.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert flag_says in err, err
    with pytest.raises(ValueError) as raised:
        studies.run(argv[0], out=str(out), **keywords)
    assert keyword_says in str(raised.value)
    assert "--" not in str(raised.value)
    assert not out.exists()


def test_a_function_of_the_data_that_raises_is_named_by_the_callers_spelling(
    tmp_path, monkeypatch, capsys
):
    name = "options_data_module"
    (tmp_path / f"{name}.py").write_text(
        "def data():\n    raise RuntimeError('no data today')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "o"
    assert cli.main(["lr", "--dataset", f"{name}:data", "--out", str(out)]) == 2
    assert f"--dataset {name}:data raised RuntimeError" in capsys.readouterr().err
    with pytest.raises(ValueError, match=f"^data {name}:data raised RuntimeError"):
        studies.run("lr", out=str(out), data=f"{name}:data")


def test_lr_on_the_command_line_fixes_the_rate_as_the_api_does():
    argv = ["init", "--lr", "0.5", "--optimizer", "adam"]
    spec, _ = cli.prepare(cli.build_parser().parse_args(argv), argv)
    from_api, _, _ = api.prepare(
        "init", "quick", None, None, {"lr": 0.5, "optimizer": "adam"}, "api", ""
    )
    # given: used as given, not scaled for Adam (x0.01) as the preset's rate is
    assert spec.fixed["lr"] == from_api.fixed["lr"] == 0.5
    assert make_spec("init", optimizer="adam").fixed["lr"] == pytest.approx(0.001)
    assert spec.same_study(make_spec("init", lrs=[0.5], optimizer="adam"))


def test_choices_come_from_the_registries():
    sub = cli.build_parser()._subparsers._group_actions[0].choices["lr"]
    by_dest = {a.dest: a for a in sub._actions}
    assert tuple(by_dest["task"].choices) == ("classification", "regression")
    assert tasks.NAMES == ("classification", "regression")
    variants.register("bn-options-test", lambda seed, settings: None)
    try:  # a variant registered later is a valid value at once
        assert options.check("lr", {"variants": ["bn-options-test"]}, "cli")
        assert "bn-options-test" in option_table.BY_NAME["variants"].text()
    finally:
        variants._REGISTRY.pop("bn-options-test")
    with pytest.raises(options.OptionError, match="unknown variant bn-options-test"):
        options.check("lr", {"variants": ["bn-options-test"]}, "cli")


def test_a_module_function_is_resolved_once(tmp_path, monkeypatch):
    name = "options_once_module"
    (tmp_path / f"{name}.py").write_text(
        "import numpy as np\n"
        "def data():\n"
        "    x = np.random.default_rng(0).normal(size=(60, 4)).astype('float32')\n"
        "    y = (x[:, 0] > 0).astype('int64')\n"
        "    return x[:40], y[:40], x[40:], y[40:]\n"
        "def build(normalization, kernel_initializer, input_shape, outputs):\n"
        "    import keras\n"
        "    norm = normalization()\n"
        "    layers = [keras.Input(input_shape), keras.layers.Dense(\n"
        "        8, kernel_initializer=kernel_initializer)]\n"
        "    layers += [norm] if norm is not None else []\n"
        "    layers.append(keras.layers.Dense(outputs))\n"
        "    return keras.Sequential(layers)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    parsed, loaded = [], []
    parse, load = plugins.parse, plugins.load
    monkeypatch.setattr(plugins, "parse", lambda t: parsed.append(t) or parse(t))
    monkeypatch.setattr(
        plugins, "load", lambda r, o: loaded.append(str(r)) or load(r, o)
    )
    argv = ["lr", "--model", f"{name}:build", "--dataset", f"{name}:data"]
    argv += ["--variants", "none", "--lrs", "0.1", "--epochs", "1", "--seeds", "1"]
    argv += ["--batch-size", "20", "--out", str(tmp_path / "study")]
    assert cli.main(argv) == 0
    assert sorted(loaded) == [f"{name}:build", f"{name}:data"]
    assert sorted(parsed) == sorted(loaded)  # one look at each reference


def test_target_scaling_with_an_explicit_classification_task_is_refused_at_once(
    tmp_path, capsys
):
    out = tmp_path / "o"
    argv = ["lr", "--task", "classification", "--target-scaling", "auto"]
    assert cli.main([*argv, "--out", str(out)]) == 2
    assert (
        "--target-scaling applies to regression targets, and the task is "
        "classification" in capsys.readouterr().err
    )
    with pytest.raises(ValueError, match="^target_scaling applies to regression"):
        studies.run("lr", out=str(out), task="classification", target_scaling="auto")
    assert not out.exists()


def test_a_function_given_as_data_is_not_called(tmp_path):
    called = []

    def data():
        called.append(True)
        return None

    out = tmp_path / "o"
    with pytest.raises(ValueError, match="^data must be .*got function"):
        studies.run("lr", out=str(out), data=data, seeds=1, epochs=1)
    assert called == []
    assert not out.exists()
