"""Every variant at its own learning rate: the tuning phase's rule on
hand-made rows, the specs it makes, and a tiny tuned study end to end."""

import csv
import json

import pytest

from studies.science import tuning
from studies.science.spec import make_spec
from studies.surfaces import cli

CHANCE = 0.1


def _row(variant, lr, seed, acc, status="ok", diverged=0, **axes):
    return dict(
        variant=variant,
        lr=lr,
        seed=seed,
        final_val_accuracy=acc,
        status=status,
        diverged=diverged,
        **axes,
    )


def _spec(study="init", **overrides):
    return make_spec(study, "quick", seeds=2, tune_seeds=2, **overrides)


def test_each_variant_gets_the_rate_of_its_best_mean_score():
    spec = _spec(lrs=[0.1, 1.0, 10.0])
    rows = [
        # none: best at 0.1 on the mean (0.9), though one seed at 1.0 is higher
        _row("none", 0.1, 0, 0.90),
        _row("none", 0.1, 1, 0.90),
        _row("none", 1.0, 0, 0.95),
        _row("none", 1.0, 1, 0.60, diverged=1),  # a diverged cell is chance
        _row("none", 10.0, 0, 0.5),
        _row("none", 10.0, 1, 0.5),
        # bn: 1.0 and 10.0 tie: the smaller rate
        *(
            _row("bn", lr, s, 0.97 if lr > 0.5 else 0.9)
            for lr in (0.1, 1, 10.0)
            for s in (0, 1)
        ),
    ]
    tuned, scores = tuning.tuned_lrs(spec, rows, CHANCE)
    assert tuned == {"none": 0.1, "bn": 1.0}
    assert scores["none"][1.0] == pytest.approx((0.95 + CHANCE) / 2)
    assert tuning.at_edge(scores) == {"none": True, "bn": False}


def test_a_variant_with_no_finished_tuning_cell_keeps_the_fixed_rate():
    spec = _spec(lrs=[0.1, 1.0])
    tuned, scores = tuning.tuned_lrs(spec, [_row("bn", 1.0, 0, 0.9)], CHANCE)
    assert tuned["none"] == spec.fixed["lr"] and tuned["bn"] == 1.0
    assert all(s != s for s in scores["none"].values())  # NaN: nothing finished


def test_the_batch_size_study_tunes_per_size_or_by_the_linear_rule():
    per_size = _spec("batch-size", lrs=[0.1, 1.0], batch_sizes=[16, 64])
    assert tuning.tuning_spec(per_size).axes["batch_size"] == (16, 64)
    rows = [
        _row(v, lr, 0, acc, batch_size=b)
        for v in ("none", "bn", "ghost-bn", "layer-norm")
        for b, best in ((16, 0.1), (64, 1.0))
        for lr, acc in (
            (0.1, 0.9 if best == 0.1 else 0.8),
            (1.0, 0.9 if best == 1.0 else 0.8),
        )
    ]
    tuned, _ = tuning.tuned_lrs(per_size, rows, CHANCE)
    assert tuned["bn"] == {"16": 0.1, "64": 1.0}
    linear = _spec(
        "batch-size", lrs=[0.1, 1.0], batch_sizes=[16, 64], lr_scaling="linear"
    )
    phase = tuning.tuning_spec(linear)
    assert phase.axes["batch_size"] == (64,)  # the grid's closest to 60
    tuned, _ = tuning.tuned_lrs(
        linear, [r for r in rows if r["batch_size"] == 64], CHANCE
    )
    assert tuned["bn"] == {"16": 0.25, "64": 1.0}  # 1.0 x 16 / 64
    cell = {"variant": "bn", "batch_size": 16, "seed": 0}
    assert tuning.with_tuned(linear, tuned).settings(cell)["lr"] == 0.25


def test_specs_tune_unless_given_one_rate():
    init = make_spec("init", "quick")
    assert init.fixed["tune_lrs"] == [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
    assert len(init.axes["seed"]) >= 5
    phase = tuning.tuning_spec(init)
    assert phase.axes["phase"] == ("tune",) and phase.fixed["init_scale"] == 1.0
    assert phase.fixed["instruments"] == [] and "lr" not in phase.fixed
    assert list(phase.axes["lr"]) == init.fixed["tune_lrs"]
    # the optimizer's scaling applies to the tuning grid as to any preset grid
    momentum = make_spec("init", "quick", optimizer="momentum")
    assert momentum.fixed["tune_lrs"][:2] == [0.001, 0.003]
    for one in ({"lr": 0.2}, {"lrs": [0.2]}):
        spec = make_spec("init", "quick", **one)
        assert tuning.tuning_spec(spec) is None and spec.fixed["lr"] == 0.2
    assert make_spec("init", "quick", lrs=[1.0, 0.1]).fixed["tune_lrs"] == [0.1, 1.0]
    assert tuning.tuning_spec(make_spec("lr", "quick")) is None  # it sweeps the rate


def test_options_refuse_tuning_settings_where_there_is_no_tuning(capsys):
    code = cli.main(["lr", "--tune-seeds", "3", "--dry-run"])
    assert code == 2
    assert "--tune-seeds" in capsys.readouterr().err
    assert cli.main(["init", "--lr-scaling", "linear", "--dry-run"]) == 2


def test_a_tuned_study_runs_each_variant_at_its_best_rate(tmp_path):
    out = tmp_path / "noise"
    argv = [
        "noise",
        "--variants",
        "none,bn",
        "--seeds",
        "1",
        "--tune-seeds",
        "1",
        "--lrs",
        "0.001,1",
        "--epochs",
        "2",
        "--train-size",
        "200",
        "--fuse",
        "1",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    tune = [r for r in rows if r["phase"] == "tune"]
    main = [r for r in rows if r["phase"] == "main"]
    assert len(tune) == 4 and len(main) == 2
    for variant in ("none", "bn"):
        own = {
            float(r["lr"]): float(r["final_val_accuracy"])
            for r in tune
            if r["variant"] == variant
        }
        best = max(own, key=lambda lr: (own[lr], -lr))
        ran = next(r for r in main if r["variant"] == variant)
        assert float(ran["lr"]) == best
        record = json.loads(
            (out / "cells" / f"variant={variant},seed=0.json").read_text()
        )
        assert record["lr"] == best  # what the cell's optimizer was given
    summary = json.loads((out / "summary.json").read_text())
    assert summary["variants"]["bn"]["tuned_lr"] == summary["tuned_lr"]["bn"]
    assert summary["tuning"]["cells_finished"] == 4
    report = (out / "report.md").read_text()
    assert "## Learning rate, tuned per variant" in report
    # resuming finds both phases done: nothing runs again
    before = sorted(p.stat().st_mtime_ns for p in (out / "cells").iterdir())
    assert cli.main(argv) == 0
    assert sorted(p.stat().st_mtime_ns for p in (out / "cells").iterdir()) == before
