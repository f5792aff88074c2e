"""Sensitivity metrics on hand-made results, against values worked out by hand."""

import math

import numpy as np
import pytest

from studies import analysis
from studies.spec import StudySpec

CHANCE = 0.1


def row(variant, lr, seed, acc, diverged=0, status="ok", **extra):
    return dict(
        variant=variant,
        lr=lr,
        seed=seed,
        final_val_accuracy=acc,
        diverged=diverged,
        status=status,
        **extra,
    )


LRS = (0.01, 0.1, 1.0, 10.0, 100.0)
# seed-mean accuracy per LR, and which LRs have a diverged seed
BN = {
    0.01: (0.80, 0.82),
    0.1: (0.90, 0.92),
    1.0: (0.95, 0.95),
    10.0: (0.93, 0.91),
    100.0: (0.50, None),
}
NONE = {
    0.01: (0.10, 0.10),
    0.1: (0.50, 0.60),
    1.0: (0.70, 0.70),
    10.0: (None, None),
    100.0: (None, None),
}


def table():
    rows = []
    for variant, accs in (("bn", BN), ("none", NONE)):
        for lr, pair in accs.items():
            for seed, acc in enumerate(pair):
                if acc is None:  # diverged: whatever it recorded counts as chance
                    rows.append(row(variant, lr, seed, 0.6, diverged=1))
                else:
                    rows.append(row(variant, lr, seed, acc))
    return rows


def spec():
    return StudySpec("lr", {"variant": ("bn", "none"), "lr": LRS, "seed": (0, 1)}, {})


def test_lr_metrics_match_hand_computation():
    summary = analysis.summarize(spec(), table(), CHANCE)["variants"]
    bn, none = summary["bn"], summary["none"]
    # bn means: .81 .91 .95 .92 .30 (the diverged seed counts as chance .1)
    assert bn["best_val_accuracy"] == pytest.approx(0.95)
    assert bn["usable_lr_decades_5pt"] == pytest.approx(2.0)  # 0.1 .. 10
    assert bn["usable_lr_decades_1pt"] == pytest.approx(0.0)
    assert bn["max_stable_lr"] == pytest.approx(10.0)
    gaps = 0.95 - np.array([0.81, 0.91, 0.95, 0.92, 0.30])
    assert bn["lr_sensitivity"] == pytest.approx(gaps.mean())
    assert bn["diverged_fraction"] == pytest.approx(1 / 10)
    stds = [
        np.std(p, ddof=1)
        for p in ((0.8, 0.82), (0.9, 0.92), (0.95, 0.95), (0.93, 0.91), (0.5, 0.1))
    ]
    assert bn["seed_std"] == pytest.approx(np.mean(stds))
    # none means: .1 .55 .7 .1 .1; within 5pt of .7 is only 1.0
    assert none["usable_lr_decades_5pt"] == pytest.approx(0.0)
    assert none["max_stable_lr"] == pytest.approx(1.0)
    assert none["diverged_fraction"] == pytest.approx(4 / 10)


def test_usable_width_is_contiguous_and_zero_at_chance():
    xs = np.array([0.01, 0.1, 1.0, 10.0])
    # a gap at 0.1 cuts the range even though 0.01 is good again
    assert analysis.usable_decades(xs, np.array([0.86, 0.2, 0.9, 0.88]), 0.05) == (
        pytest.approx(1.0)
    )
    assert (
        analysis.usable_decades(xs, np.array([0.1, 0.1, 0.12, 0.1]), 0.05, 0.1) == 0.0
    )


def test_errors_are_left_out_and_counted():
    rows = table() + [row("bn", 1.0, 2, math.nan, status="error")]
    bn = analysis.summarize(spec(), rows, CHANCE)["variants"]["bn"]
    assert bn["errors"] == 1
    assert bn["best_val_accuracy"] == pytest.approx(0.95)


def test_init_metrics_per_family_then_averaged():
    axes = {
        "variant": ("bn",),
        "init": ("a", "b"),
        "init_scale": (0.1, 1.0, 10.0),
        "seed": (0,),
    }
    accs = {
        ("a", 0.1): 0.90,
        ("a", 1.0): 0.92,
        ("a", 10.0): 0.50,
        ("b", 0.1): 0.40,
        ("b", 1.0): 0.80,
        ("b", 10.0): 0.78,
    }
    rows = [
        dict(
            variant="bn",
            init=f,
            init_scale=s,
            seed=0,
            final_val_accuracy=a,
            diverged=0,
            status="ok",
        )
        for (f, s), a in accs.items()
    ]
    bn = analysis.summarize(StudySpec("init", axes, {}), rows, CHANCE)["variants"]["bn"]
    assert bn["init_scale_decades_5pt"] == pytest.approx((1.0 + 1.0) / 2)
    assert bn["accuracy_spread"] == pytest.approx(0.92 - 0.40)
    assert "usable_lr_decades_5pt" not in bn


def test_noise_study_reports_the_generalization_gap():
    axes = {"variant": ("bn",), "seed": (0, 1)}
    rows = [
        dict(
            variant="bn",
            seed=s,
            final_val_accuracy=v,
            final_train_accuracy=t,
            diverged=0,
            status="ok",
        )
        for s, (t, v) in enumerate(((1.0, 0.8), (0.9, 0.8)))
    ]
    bn = analysis.summarize(StudySpec("noise", axes, {}), rows, CHANCE)["variants"][
        "bn"
    ]
    assert bn["final_train_accuracy"] == pytest.approx(0.95)
    assert bn["generalization_gap"] == pytest.approx(0.15)


def test_summary_is_json_ready():
    import json

    summary = analysis.summarize(spec(), [], CHANCE)
    text = json.dumps(summary, allow_nan=False)  # NaN would be invalid JSON
    assert json.loads(text)["variants"]["bn"]["best_val_accuracy"] is None
