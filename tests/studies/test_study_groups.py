"""Cell groups: members trained together equal the same cells trained alone.

The reference is the one-cell path of today's engine
(`CellHyperModel.build` and `fit`, with its `DivergenceMonitor` and
`StepBudget` callbacks), run on the same settings; a group goes through
`group_fit.fit_group`. Most tests use a user builder (`small`, so a user
builder is covered throughout).
Tolerance: 1e-5 relative (the members' arithmetic is the same ops in one
graph; on CPU the values have come out bit for bit).
"""

import math

import keras_tuner as kt
import numpy as np
import pytest
from study_helpers import study_command, tiny_spec

from studies.engine import group_fit, groups, hypermodel
from studies.engine.oracle import handout_order
from studies.inputs import data, models
from studies.science.spec import make_spec

NUMBERS = (
    "score",
    "final_val_accuracy",
    "best_val_accuracy",
    "final_val_loss",
    "best_val_loss",
    "final_train_loss",
    "final_train_accuracy",
    "final_test_accuracy",
    "diverged",
    "epochs_run",
    "steps_run",
    "final_val_r2",
    "final_test_r2",
    "batch_noise",
)


def small(normalization, initializer, input_shape, outputs):
    """A user builder: one normalized hidden layer of 16 units (cheap)."""
    import keras

    inputs = keras.Input(input_shape)
    flat = keras.layers.Flatten()(inputs)
    h = keras.layers.Dense(16, kernel_initializer=initializer)(flat)
    norm = normalization()  # None for the variant without normalization
    h = keras.layers.Activation("relu")(h if norm is None else norm(h))
    activation = "softmax" if outputs > 1 else None
    return keras.Model(inputs, keras.layers.Dense(outputs, activation)(h))


def digits(n=160):
    dataset = data.load("digits")
    return data.Dataset(
        "digits",
        dataset.x_train[:n],
        dataset.y_train[:n],
        dataset.x_val[:80],
        dataset.y_val[:80],
        dataset.x_test[:80],
        dataset.y_test[:80],
    )


def hp_for(spec, cell):
    hp = kt.HyperParameters()
    for name, values in spec.axes.items():
        hp.Choice(name, list(values), ordered=not isinstance(values[0], str))
        hp.values[name] = cell[name]
    return hp


def alone(hm, spec, cell, dataset):
    hp = hp_for(spec, cell)
    model = hm.build(hp)
    return hm.fit(
        hp, model, dataset.x_train, dataset.y_train, (dataset.x_val, dataset.y_val)
    )


def together(hm, spec, cells, dataset, cache=None):
    settings = [spec.settings(cell) for cell in cells]
    members, timing = group_fit.fit_group(
        hm,
        settings,
        [[] for _ in cells],
        dataset.x_train,
        dataset.y_train,
        (dataset.x_val, dataset.y_val),
        cache or group_fit.CompiledGroups(),
    )
    assert timing["first_epoch"] > 0 and set(timing) >= {"build", "later_epochs"}
    x, y = dataset.x_train, dataset.y_train
    return [
        hm.finish(s, model, x, y, ev.history, ev.diverged, ev.steps_run)
        for s, (model, ev) in zip(settings, members, strict=True)
    ]


def assert_same(got, want, what):
    for key in NUMBERS:
        if key not in want:
            continue
        a, b = float(got[key]), float(want[key])
        if math.isnan(b):
            assert math.isnan(a), (what, key, a, b)
        else:
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6), (what, key, a, b)


def check_group(spec, dataset, builder=None, cells=None):
    builder = builder or models.BUILDERS[spec.fixed["model"]]
    hm = hypermodel.CellHyperModel(spec, dataset, builder)
    cells = cells or spec.cells()
    want = [alone(hm, spec, cell, dataset) for cell in cells]
    got = together(hm, spec, cells, dataset)
    for cell, g, w in zip(cells, got, want, strict=True):
        assert_same(g, w, cell)
    return got


def test_every_builtin_variant_trains_in_a_group_as_it_does_alone():
    from studies.inputs import variants

    names = list(variants.names())
    spec = make_spec(
        "lr",
        variants=names,
        lrs=[0.1],
        seeds=1,
        epochs=1,
        batch_size=40,
    )
    got = check_group(spec, digits(), builder=small)
    assert len(got) == len(names) and all(g["diverged"] == 0 for g in got)


def test_a_member_that_diverges_freezes_and_spares_the_others():
    # LR 100 diverges in the first epoch; the others train on (at LR 30 the
    # no-BN net's batch loss spikes to 2.36e3, just under 1e3 x its first
    # loss of 2.39, and recovers: not divergence under the relative limit)
    spec = make_spec(
        "lr",
        variants=["none", "bn"],
        lrs=[0.1, 100.0],
        seeds=1,
        epochs=2,
        batch_size=40,
    )
    got = check_group(spec, digits(), builder=small)
    by_cell = dict(zip(map(str, spec.cells()), got, strict=True))
    diverged = [c for c, g in by_cell.items() if g["diverged"]]
    assert any("'none'" in c and "100.0" in c for c in diverged)
    assert all(math.isfinite(g["final_val_loss"]) for g in got if not g["diverged"])
    assert any(g["steps_run"] < 12 for g in got)  # stopped mid-budget


def loud(normalization, initializer, input_shape, outputs):
    """`small` with logits (no softmax) scaled by 1e4: a first loss far above 1e3."""
    import keras

    inputs = keras.Input(input_shape)
    flat = keras.layers.Flatten()(inputs)
    h = keras.layers.Dense(16, kernel_initializer=initializer)(flat)
    norm = normalization()
    h = keras.layers.Activation("relu")(h if norm is None else norm(h))
    logits = keras.layers.Dense(outputs, kernel_initializer=initializer)(h)
    return keras.Model(inputs, keras.layers.Rescaling(SCALE)(logits))


SCALE = 1e4


def test_classification_divergence_is_relative_to_the_first_loss_in_both_paths():
    # huge initial logits: the first loss (about 7.7e3) is far above the
    # absolute 1e3 but falls at a small rate (diverged at batch 1 under the old
    # absolute rule); at a huge rate it explodes (about 1e17 at batch 2). The
    # one-cell and the group path agree, cell by cell.
    spec = make_spec(
        "lr", variants=["none"], lrs=[1e-6, 1e3], seeds=1, steps=6, batch_size=40
    )
    dataset = digits()
    hm = hypermodel.CellHyperModel(spec, dataset, loud)
    threshold, relative, floor = hm.divergence(spec.settings(spec.cells()[0]))
    assert (threshold, relative, floor) == (1e3, True, 1e3)
    calm, wild = check_group(spec, dataset, builder=loud)
    assert calm["diverged"] == 0 and calm["steps_run"] == 6
    assert wild["diverged"] == 1 and wild["steps_run"] < 6


def test_optimizers_schedules_and_weight_decay_are_per_member():
    # momentum with decay and a schedule; Adam with its defaults
    for optimizer, extra in (
        ("momentum", {"weight_decay": 1e-3, "schedule": "warmup-cosine"}),
        ("adam", {}),
    ):
        spec = make_spec(
            "lr",
            variants=["none", "bn"],
            lrs=[0.003, 0.03],
            seeds=1,
            epochs=2,
            batch_size=40,
            optimizer=optimizer,
            **extra,
        )
        check_group(spec, digits(80), builder=small)


def test_a_regression_group_and_a_group_of_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype("float32")
    y = (x @ rng.normal(size=(5, 2))).astype("float32")
    dataset = data.load(
        {"x_train": x[:120], "y_train": y[:120], "x_test": x[120:], "y_test": y[120:]},
        name="toy",
    )
    spec = make_spec(
        "lr",
        variants=["none", "bn"],
        lrs=[0.01, 0.1],
        seeds=1,
        epochs=2,
        batch_size=20,
        task="regression",
    )
    got = check_group(spec, dataset, builder=small)
    assert all("final_val_r2" in g for g in got)
    check_group(spec, dataset, builder=small, cells=spec.cells()[:1])


def test_batch_noise_is_each_members_own_in_a_group():
    # measured after training from each member's own layers: a group builds
    # all members before scoring any, so the last-built member's layers
    # would give every member the same (wrong) number
    spec = make_spec(
        "batch-size",
        variants=["bn", "ghost-bn", "layer-norm", "none"],
        batch_sizes=[40],
        lr=0.1,
        seeds=1,
        epochs=1,
    )
    assert spec.fixed["instruments"] == ["batch_noise"]
    assert groups.fusable(spec.settings(spec.cells()[0]))
    got = check_group(spec, digits(), builder=small)
    noise = {
        c["variant"]: g["batch_noise"] for c, g in zip(spec.cells(), got, strict=True)
    }
    assert noise["bn"] > 0.05 and noise["ghost-bn"] > noise["bn"]  # 16 < 40
    assert noise["layer-norm"] == pytest.approx(0, abs=1e-6)
    assert math.isnan(noise["none"])


def test_a_reused_compiled_group_equals_a_fresh_build():
    spec = make_spec(
        "lr",
        variants=["none", "bn", "noisy-bn"],
        lrs=[0.1, 1.0],
        seeds=2,
        epochs=1,
        batch_size=40,
    )
    dataset = digits()
    hm = hypermodel.CellHyperModel(spec, dataset, small)
    first = [c for c in spec.cells() if c["seed"] == 0]
    second = [c for c in spec.cells() if c["seed"] == 1]
    cache = group_fit.CompiledGroups()
    together(hm, spec, first, dataset, cache)
    kept = cache.get(groups.structure([spec.settings(c) for c in second]))
    assert kept is not None  # the second seed's group has the same structure
    reused = together(hm, spec, second, dataset, cache)
    assert cache.get(groups.structure([spec.settings(c) for c in second])) is kept
    fresh = together(hm, spec, second, dataset)
    for r, f in zip(reused, fresh, strict=True):
        assert_same(r, f, "reused")


def test_group_keys_structures_and_sizes_on_hand_made_settings():
    base = tiny_spec("batch-size", batch_sizes=[20, 40]).settings
    cells = tiny_spec("batch-size", batch_sizes=[20, 40]).cells()
    keys = {groups.key(base(c)) for c in cells}
    assert len(keys) == 2  # one group per batch size
    lr = tiny_spec("lr", seeds=2)
    assert len({groups.key(lr.settings(c)) for c in lr.cells()}) == 2  # per seed
    a, b = lr.settings(lr.cells()[0]), dict(lr.settings(lr.cells()[0]), lr=9.0)
    assert groups.structure([a]) == groups.structure([b])  # a constant rate
    a["schedule"] = b["schedule"] = "warmup-cosine"
    assert groups.structure([a]) != groups.structure([b])  # baked in the step
    assert not groups.fusable(dict(a, instruments=("landscape",)))
    assert not groups.fusable(dict(a, instruments=("batch_noise", "score")))
    assert groups.fusable(dict(a, instruments=("batch_noise",)))
    assert groups.default_size(10_000, 60, 100, available=2**40) == groups.DEFAULT_CAP
    assert groups.default_size(10**9, 60, 100, available=2**30) == 1
    assert groups.default_size(10_000, 60, 100, available=2**40, backend="jax") == 1
    order = handout_order(lr)
    seeds = [c["seed"] for c in order]
    assert seeds == sorted(seeds)  # one seed's cells come together


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "x"])
def test_a_bad_fuse_is_a_one_line_error(tmp_path, value):
    import subprocess

    out = tmp_path / "s"
    result = subprocess.run(
        study_command("lr", out, "--fuse", value),
        capture_output=True,
        text=True,
        cwd=__import__("study_helpers").ROOT,
    )
    assert result.returncode == 2
    assert "--fuse" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_the_api_refuses_a_bad_fuse_by_name(tmp_path):
    import studies

    for value in (0, 2.5, True):
        with pytest.raises(ValueError, match="fuse"):
            studies.run("lr", str(tmp_path / "s"), fuse=value)
    assert not (tmp_path / "s").exists()
