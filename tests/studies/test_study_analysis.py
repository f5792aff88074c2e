"""Sensitivity metrics on hand-made grids, against values worked out by hand."""

import json
import math

import numpy as np
import pytest

from studies.science import analysis, outcomes
from studies.science.spec import StudySpec

CHANCE = 0.1


def row(variant, lr, seed, acc, diverged=0, status="ok", **extra):
    return dict(
        variant=variant,
        lr=lr,
        seed=seed,
        final_val_accuracy=acc,
        final_test_accuracy=acc - 0.01,
        diverged=diverged,
        status=status,
        **extra,
    )


LRS = (0.01, 0.1, 1.0, 10.0, 100.0)
# per-seed accuracy per LR; None: that seed diverged
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


def table(grids=(("bn", BN), ("none", NONE))):
    rows = []
    for variant, accs in grids:
        for lr, pair in accs.items():
            for seed, acc in enumerate(pair):
                if acc is None:  # diverged: whatever it recorded counts as chance
                    rows.append(row(variant, lr, seed, 0.6, diverged=1))
                else:
                    rows.append(row(variant, lr, seed, acc))
    return rows


def spec(variants=("bn", "none"), lrs=LRS, seeds=(0, 1)):
    axes = {"variant": tuple(variants), "lr": tuple(lrs), "seed": tuple(seeds)}
    return StudySpec("lr", axes, {})


def summarize(rows, study=None, **kwargs):
    return analysis.summarize(study or spec(), rows, CHANCE, **kwargs)


def test_outcomes_decide_status_and_score_in_one_place():
    assert outcomes.status(None) == outcomes.MISSING
    assert outcomes.status(row("bn", 1, 0, 0.9)) == outcomes.OK
    assert outcomes.status(row("bn", 1, 0, 0.9, diverged="1")) == outcomes.DIVERGED
    assert outcomes.status(row("bn", 1, 0, 0.9, status="error")) == outcomes.ERROR
    assert outcomes.score(row("bn", 1, 0, 0.9), CHANCE) == 0.9
    assert outcomes.score(row("bn", 1, 0, 0.9, diverged=1), CHANCE) == CHANCE
    # an errored cell is unknown, as a missing one (not a failed setting)
    assert math.isnan(outcomes.score(row("bn", 1, 0, 0.9, status="error"), CHANCE))
    assert math.isnan(outcomes.score(None, CHANCE))
    assert outcomes.status(row("bn", 1, 0, 0.9, diverged="0")) == outcomes.OK
    assert outcomes.status(row("bn", 1, 0, 0.9, diverged="0.0")) == outcomes.OK
    assert outcomes.status(row("bn", 1, 0, 0.9, diverged="False")) == outcomes.OK
    assert outcomes.stable(row("bn", 1, 0, 0.9))
    assert not outcomes.stable(row("bn", 1, 0, 0.9, status="error"))
    assert not outcomes.stable(None)


@pytest.mark.parametrize("flag", [math.nan, np.float32("nan"), "nan", "NaN", None, ""])
def test_an_unknown_diverged_flag_is_not_divergence(flag):
    # NaN, "nan", None and "" were read as diverged before (bool(nan) is True,
    # float("nan") != 0): a lost flag turned a measured cell into chance
    cell = row("bn", 1, 0, 0.9, diverged=flag)
    assert outcomes.status(cell) == outcomes.OK
    assert outcomes.score(cell, CHANCE) == 0.9
    assert outcomes.status(row("bn", 1, 0, 0.9, diverged=1.0)) == outcomes.DIVERGED


def test_lr_metrics_match_hand_computation():
    summary = summarize(table())
    bn, none = summary["variants"]["bn"], summary["variants"]["none"]
    # bn means: .81 .91 .95 .92 .30 (the diverged seed counts as chance .1)
    # none means: .1 .55 .7 .1 .1; the reference is the best of any variant
    assert summary["reference_accuracy"] == pytest.approx(0.95)
    assert bn["best_val_accuracy"] == pytest.approx(0.95)
    assert bn["test_accuracy"] == pytest.approx(0.94)  # at the val-selected point
    assert bn["best_point"] == {"lr": 1.0}
    assert bn["usable_lr_decades_5pt"] == pytest.approx(2.0)  # 0.1 .. 10
    assert bn["usable_lr_decades_1pt"] == pytest.approx(0.0)
    assert bn["usable_lr_ranges_5pt"] == [
        {"low": 0.1, "high": 10.0, "censored_low": False, "censored_high": False}
    ]
    assert bn["max_stable_lr"] == pytest.approx(10.0)
    assert bn["max_stable_lr_censored"] is False
    gaps = 0.95 - np.array([0.81, 0.91, 0.95, 0.92, 0.30])
    assert bn["lr_sensitivity"] == pytest.approx(gaps.mean())
    assert bn["diverged_fraction"] == pytest.approx(1 / 10)
    stds = [
        np.std(p, ddof=1)
        for p in ((0.8, 0.82), (0.9, 0.92), (0.95, 0.95), (0.93, 0.91), (0.5, 0.1))
    ]
    assert bn["seed_std"] == pytest.approx(np.mean(stds))
    # none trains (0.7 at LR 1) but never within 5 points of the reference
    assert none["trained"] and bn["trained"]
    assert none["usable_lr_decades_5pt"] == 0.0
    assert none["usable_lr_ranges_5pt"][0]["low"] is None
    assert none["max_stable_lr"] == pytest.approx(1.0)
    # ... but it trains (above chance + 5 points) from 0.1 to 1
    assert none["trainable_lr_ranges"][0]["low"] == 0.1
    assert none["trainable_lr_decades"] == pytest.approx(1.0)
    assert bn["trainable_lr_decades"] == pytest.approx(4.0)  # all, .30 at 100
    assert bn["trainable_lr_ranges"][0]["censored_high"] is True
    none_gaps = 0.95 - np.array([0.1, 0.55, 0.7, 0.1, 0.1])
    assert none["lr_sensitivity"] == pytest.approx(none_gaps.mean())
    assert none["diverged_fraction"] == pytest.approx(4 / 10)
    diff = summary["differences"]["bn"]
    assert diff["best_val_accuracy"]["value"] == pytest.approx(0.25)
    assert diff["usable_lr_decades_5pt"]["value"] == pytest.approx(2.0)


def test_a_variant_barely_above_chance_cannot_look_robust():
    flat = {lr: (0.12, 0.13) for lr in LRS}  # never diverges, never trains
    summary = summarize(table((("bn", BN), ("none", flat))))
    none = summary["variants"]["none"]
    assert none["trained"] is False
    assert none["usable_lr_decades_5pt"] == none["usable_lr_decades_1pt"] == 0.0
    assert none["max_stable_lr"] is None  # not "stable at every LR"
    # its sensitivity is measured against BN's best: the worst, not the best
    assert none["lr_sensitivity"] == pytest.approx(0.95 - 0.125)
    assert none["lr_sensitivity"] > summary["variants"]["bn"]["lr_sensitivity"]


def test_one_seed_gives_no_seed_std_and_no_intervals():
    rows = [r for r in table() if r["seed"] == 0]
    summary = summarize(rows, spec(seeds=(0,)))
    bn = summary["variants"]["bn"]
    assert bn["seed_std"] is None
    # every interval entry says it has no bounds, and why
    assert bn["intervals"] and all(
        i["low"] is None and i["n"] == 1 and "needs" in i["reason"]
        for i in bn["intervals"].values()
    )
    diff = summary["differences"]["bn"]["best_val_accuracy"]["interval"]
    assert diff["low"] is None and diff["high"] is None


def test_an_optimum_on_the_grid_edge_is_flagged_as_censored():
    rising = {0.01: (0.5, 0.5), 0.1: (0.7, 0.7), 1.0: (0.9, 0.92), 10.0: (0.95, 0.96)}
    summary = summarize(table((("bn", rising),)), spec(("bn",), tuple(rising)))
    bn = summary["variants"]["bn"]
    assert bn["best_at_edge"] is True
    assert bn["usable_lr_ranges_5pt"] == [
        {"low": 1.0, "high": 10.0, "censored_low": False, "censored_high": True}
    ]
    assert bn["max_stable_lr"] == 10.0 and bn["max_stable_lr_censored"] is True


def test_an_errored_cell_counts_as_missing_and_is_listed():
    rows = table()
    broken = next(r for r in rows if r["variant"] == "bn" and r["lr"] == 10.0)
    broken.update(status="error", message="simulated OOM")  # seed 0, 0.93
    bn = summarize(rows)["variants"]["bn"]
    assert bn["errors"] == 1
    assert bn["max_stable_lr"] == pytest.approx(1.0)  # the error at 10 ends it
    # the errored seed is unknown, not chance: LR 10's mean is the other
    # seed's 0.91, within 5 points of 0.95 (as chance, 0.505 ended the range)
    assert bn["usable_lr_ranges_5pt"][0]["high"] == 10.0
    gaps = 0.95 - np.array([0.81, 0.91, 0.95, 0.91, 0.30])
    assert bn["lr_sensitivity"] == pytest.approx(gaps.mean())
    # the diverged fraction is of the 9 cells with a result
    assert bn["diverged_fraction"] == pytest.approx(1 / 9)
    # a point whose every seed errored ends a range as a missing point does
    for r in rows:
        if r["variant"] == "bn" and r["lr"] == 0.1:
            r.update(status="error", message="simulated OOM")
    bn = summarize(rows)["variants"]["bn"]
    assert bn["errors"] == 3
    assert bn["usable_lr_ranges_5pt"][0]["low"] == 1.0


def test_max_stable_walks_up_only_through_points_that_train():
    # stable (no seed diverged) at 10 and 100, but near chance there: BN at
    # LR 10 scoring 0.15 against chance 0.10 is not "stable at LR 10"
    late = {0.01: (0.80, 0.82), 0.1: (0.90, 0.92), 1.0: (0.95, 0.95)}
    late |= {10.0: (0.15, 0.15), 100.0: (0.12, 0.12)}
    bn = summarize(table((("bn", late),)), spec(("bn",)))["variants"]["bn"]
    assert bn["trained"]
    assert bn["max_stable_lr"] == pytest.approx(1.0)  # not ">= 100"
    assert bn["max_stable_lr_censored"] is False
    # a point above the trained floor (0.10 + 0.05) counts again
    late[10.0] = (0.16, 0.16)
    bn = summarize(table((("bn", late),)), spec(("bn",)))["variants"]["bn"]
    assert bn["max_stable_lr"] == pytest.approx(10.0)


def test_an_unfinished_grid_counts_missing_cells_as_unknown():
    rows = [r for r in table() if not (r["variant"] == "bn" and r["lr"] == 0.1)]
    summary = summarize(rows)
    bn = summary["variants"]["bn"]
    assert summary["cells_finished"] == 18 and summary["cells_total"] == 20
    assert bn["missing"] == 2
    # LR 0.1 is unknown: the range around the best stops before it
    assert bn["usable_lr_ranges_5pt"][0]["low"] == 1.0
    # the sensitivity is over the known points only
    assert bn["lr_sensitivity"] == pytest.approx(
        np.mean(0.95 - np.array([0.81, 0.95, 0.92, 0.30]))
    )
    empty = summarize([r for r in rows if r["variant"] == "none"])
    assert empty["variants"]["bn"]["cells"] == 0
    assert "best_val_accuracy" not in empty["variants"]["bn"]


def test_intervals_bracket_the_estimate_and_differences_pair_by_seed():
    rng = np.random.default_rng(1)
    seeds = tuple(range(6))
    offsets = rng.uniform(-0.08, 0.08, len(seeds))  # a shared per-seed effect
    rows = []
    for seed, offset in zip(seeds, offsets, strict=True):
        for lr, base in ((0.1, 0.6), (1.0, 0.8)):
            rows.append(row("none", lr, seed, base + offset))
            rows.append(row("bn", lr, seed, base + 0.1 + offset))
    summary = summarize(rows, spec(("none", "bn"), (0.1, 1.0), seeds))
    bn = summary["variants"]["bn"]
    entry = bn["intervals"]["best_val_accuracy"]
    per_seed = 0.9 + offsets
    # the textbook t interval of the six per-seed values at the best point
    half = 2.570582 * per_seed.std(ddof=1) / math.sqrt(6)  # t(0.975, 5)
    assert entry["low"] == pytest.approx(per_seed.mean() - half)
    assert entry["high"] == pytest.approx(per_seed.mean() + half)
    assert (entry["method"], entry["n"], entry["level"]) == ("student_t", 6, 0.95)
    # paired by seed, the shared per-seed effect cancels exactly
    diff = summary["differences"]["bn"]["best_val_accuracy"]
    assert diff["value"] == pytest.approx(0.1)
    assert [diff["interval"]["low"], diff["interval"]["high"]] == pytest.approx(
        [0.1, 0.1]
    )
    assert summary["interval"]["seeds"] == 6


def test_trained_needs_the_interval_above_chance():
    # seed mean 0.173 at best, 7.3 points above chance, but two seeds near it
    noisy = {0.1: (0.10, 0.30, 0.12), 1.0: (0.10, 0.10, 0.10)}
    study = spec(("none",), (0.1, 1.0), seeds=(0, 1, 2))
    summary = summarize(table((("none", noisy),)), study)
    none = summary["variants"]["none"]
    assert none["best_val_accuracy"] == pytest.approx(0.52 / 3)
    assert none["intervals"]["best_val_accuracy"]["low"] <= CHANCE
    assert none["trained"] is False
    # an untrained variant gets no ranges and no stable range
    assert none["max_stable_lr"] is None
    assert none["usable_lr_decades_5pt"] == none["trainable_lr_decades"] == 0.0
    assert none["trainable_lr_ranges"][0]["low"] is None


def test_a_partly_finished_variant_pairs_only_its_finished_seeds():
    # bn has only seed 0 done: one finished seed, one pair with none
    rows = [r for r in table() if r["variant"] == "none" or r["seed"] == 0]
    summary = summarize(rows)
    bn = summary["variants"]["bn"]
    assert bn["best_val_accuracy"] == pytest.approx(0.95)
    assert bn["intervals"]["best_val_accuracy"]["n"] == 1
    diff = summary["differences"]["bn"]["best_val_accuracy"]
    assert diff["value"] == pytest.approx(0.25)
    assert diff["interval"]["n"] == 1 and diff["interval"]["low"] is None


def test_lr_by_init_scale_grid_gives_curves_along_both_axes():
    lrs, scales = (0.01, 0.1, 1.0), (0.1, 1.0, 10.0)
    # accuracy is a function of the effective rate lr / scale^2 (BN's rule)
    best = {0.1: 0.95, 1.0: 0.9, 10.0: 0.5, 0.01: 0.7, 100.0: 0.1}
    rows = [
        dict(
            variant="bn",
            lr=lr,
            init_scale=scale,
            seed=0,
            final_val_accuracy=best.get(round(lr / scale**2, 6), 0.1),
            diverged=int(round(lr / scale**2, 6) >= 100),
            status="ok",
        )
        for lr in lrs
        for scale in scales
    ]
    axes = {"variant": ("bn",), "lr": lrs, "init_scale": scales, "seed": (0,)}
    bn = summarize(rows, StudySpec("lr-init", axes, {}))["variants"]["bn"]
    assert analysis.swept_axes(axes) == ["lr", "init_scale"]
    assert bn["best_point"] == {"lr": 0.1, "init_scale": 1.0}
    # along lr, one curve per init scale (lr/scale^2 gives the accuracy):
    # scale 0.1 -> [.9, .5, .1 diverged], 1 -> [.7, .95, .9], 10 -> [.1, .1, .7]
    by_scale = {r["where"]["init_scale"]: r for r in bn["usable_lr_ranges_5pt"]}
    assert (by_scale[0.1]["low"], by_scale[0.1]["high"]) == (0.01, 0.01)
    assert by_scale[0.1]["censored_low"] is True
    assert (by_scale[1.0]["low"], by_scale[1.0]["high"]) == (0.1, 1.0)
    assert by_scale[1.0]["censored_high"] is True
    assert by_scale[10.0]["low"] is None  # its best, .7, is not within 5 pt
    # along init scale, one curve per lr: lr 1 -> [.1 diverged, .9, .7]
    by_lr = {r["where"]["lr"]: r for r in bn["usable_init_scale_ranges_5pt"]}
    assert (by_lr[1.0]["low"], by_lr[1.0]["high"]) == (1.0, 1.0)
    assert (by_lr[0.01]["low"], by_lr[0.01]["high"]) == (0.1, 0.1)
    assert bn["usable_lr_decades_5pt"] == pytest.approx((0 + 1 + 0) / 3)
    assert bn["usable_lr_decades_5pt_censored"] is True
    # along the curve through the best point (scale 1) every lr is stable; the
    # scale-0.1 curve, which diverges at lr 1, does not count
    assert bn["max_stable_lr"] == pytest.approx(1.0)
    # on the lr 0.1 curve, scale 10 runs without diverging but scores chance
    # (.1): it does not train, so the stable run ends at scale 1
    assert bn["max_stable_init_scale"] == pytest.approx(1.0)


def test_init_metrics_per_family_then_averaged():
    axes = {
        "variant": ("bn",),
        "init": ("a", "b"),
        "init_scale": (10.0, 0.1, 1.0),  # not sorted: curves sort by value
        "seed": (0,),
    }
    accs = {
        ("a", 0.1): 0.90,
        ("a", 1.0): 0.92,
        ("a", 10.0): 0.50,
        ("b", 0.1): 0.40,
        ("b", 1.0): 0.80,
        ("b", 10.0): 0.89,
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
    bn = summarize(rows, StudySpec("init", axes, {}))["variants"]["bn"]
    # reference .92: family a 0.1..1 (1 decade); family b only 10 (0 decades)
    assert bn["usable_init_scale_decades_5pt"] == pytest.approx((1.0 + 0.0) / 2)
    assert [r["where"] for r in bn["usable_init_scale_ranges_5pt"]] == [
        {"init": "a"},
        {"init": "b"},
    ]
    assert bn["usable_init_scale_ranges_5pt"][1]["low"] == 10.0
    assert bn["best_point"] == {"init": "a", "init_scale": 1.0}
    assert "usable_lr_decades_5pt" not in bn
    assert analysis.swept_axes(axes) == ["init_scale"]


def test_noise_study_reports_the_generalization_gap_with_intervals():
    axes = {"variant": ("bn",), "seed": (0, 1, 2)}
    rows = [
        dict(
            variant="bn",
            seed=s,
            final_val_accuracy=v,
            final_train_accuracy=t,
            diverged=0,
            status="ok",
        )
        for s, (t, v) in enumerate(((1.0, 0.8), (0.9, 0.8), (0.95, 0.8)))
    ]
    bn = summarize(rows, StudySpec("noise", axes, {}), metrics=("generalization",))[
        "variants"
    ]["bn"]
    assert bn["final_train_accuracy"] == pytest.approx(0.95)
    assert bn["generalization_gap"] == pytest.approx(0.15)
    gap = bn["intervals"]["generalization_gap"]  # gaps 0.2, 0.1, 0.15
    half = 4.302653 * 0.05 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(n)
    assert [gap["low"], gap["high"]] == pytest.approx([0.15 - half, 0.15 + half])


def test_generalization_gap_leaves_failed_cells_out_and_pairs_differences():
    axes = {"variant": ("none", "bn"), "seed": (0, 1, 2)}
    cells = {
        ("none", 0): (1.0, 0.8, 0),
        ("none", 1): (0.9, 0.8, 0),
        ("none", 2): (0.1, 0.1, 1),  # diverged: a gap of 0 that means nothing
        ("bn", 0): (1.0, 0.9, 0),
        ("bn", 1): (0.9, 0.85, 0),
        ("bn", 2): (1.0, 0.95, 0),
    }
    rows = [
        dict(
            variant=v,
            seed=s,
            final_train_accuracy=t,
            final_val_accuracy=a,
            diverged=d,
            status="diverged" if d else "ok",
        )
        for (v, s), (t, a, d) in cells.items()
    ]
    summary = summarize(rows, StudySpec("noise", axes, {}), metrics=("generalization",))
    none = summary["variants"]["none"]
    assert none["generalization_gap"] == pytest.approx((0.2 + 0.1) / 2)
    # train accuracy counts the failed cell as chance, like every score
    assert none["final_train_accuracy"] == pytest.approx((1.0 + 0.9 + 0.1) / 3)
    diff = summary["differences"]["bn"]["generalization_gap"]
    assert diff["value"] == pytest.approx((0.1 + 0.05 + 0.05) / 3 - 0.15)
    assert diff["interval"] is not None


def test_summary_is_json_ready():
    summary = summarize([])
    text = json.dumps(summary, allow_nan=False)  # NaN would be invalid JSON
    assert json.loads(text)["variants"]["bn"]["cells"] == 0
    full = json.dumps(summarize(table()), allow_nan=False)
    assert json.loads(full)["variants"]["bn"]["trained"] is True


def test_usable_run_is_contiguous():
    xs = np.array([0.01, 0.1, 1.0, 10.0])
    # a gap at 0.1 cuts the range even though 0.01 is good again
    run = analysis.usable_run(np.array([0.86, 0.2, 0.9, 0.88]), 0.85)
    assert run == (2, 3) and analysis.decades(xs, run) == pytest.approx(1.0)
    # a curve whose best is not within the tolerance of the reference: no run
    assert analysis.usable_run(np.array([0.5, 0.6, 0.55, 0.5]), 0.85) is None
    assert analysis.decades(xs, None) == 0.0


def noise_rows(noise, sizes=(4, 8, 16, 32, 64), seeds=(0, 1, 2)):
    """Batch-size study rows: `noise[variant](batch size, seed)` per cell."""
    return [
        dict(
            variant=variant,
            batch_size=b,
            seed=s,
            final_val_accuracy=0.9,
            final_test_accuracy=0.9,
            diverged=0,
            status="ok",
            batch_noise=f(b, s),
        )
        for variant, f in noise.items()
        for b in sizes
        for s in seeds
    ]


def noise_summary(rows, sizes=(4, 8, 16, 32, 64), fixed=None):
    axes = {"variant": ("bn", "ghost-bn"), "batch_size": sizes, "seed": (0, 1, 2)}
    study = StudySpec("batch-size", axes, fixed or {"virtual_batch_size": 16})
    return summarize(rows, study, metrics=("batch_noise",))


def test_batch_noise_is_per_batch_size_and_ghost_bn_slope_stops_at_its_ghost():
    # BN: 1/sqrt(batch); Ghost BN (ghost batch 16): the same up to 16, flat above
    noise = {
        "bn": lambda b, s: (1 + 0.1 * s) * b**-0.5,
        "ghost-bn": lambda b, s: (1 + 0.1 * s) * min(b, 16) ** -0.5,
    }
    summary = noise_summary(noise_rows(noise))
    bn, ghost = summary["variants"]["bn"], summary["variants"]["ghost-bn"]
    assert bn["batch_noise_slope"] == pytest.approx(-0.5)
    # one line through the kink (all five sizes) gave -0.25; below it
    # the slope is BN's -0.5
    assert ghost["batch_noise_slope"] == pytest.approx(-0.5)
    assert summary["batch_noise_slope_sizes"] == {
        "bn": [4, 8, 16, 32, 64],
        "ghost-bn": [4, 8, 16],
    }
    # per batch size, with intervals; no mean over the grid's sizes
    assert "batch_noise" not in bn
    assert bn["batch_noise_b16"] == pytest.approx(1.1 / 4)
    assert ghost["batch_noise_b64"] == pytest.approx(1.1 / 4)
    interval = bn["intervals"]["batch_noise_b16"]
    assert interval["n"] == 3 and interval["low"] < 1.1 / 4 < interval["high"]
    # a coarser grid gives the same per-size numbers (a grid mean did not)
    coarse = noise_summary(noise_rows(noise, (4, 16, 64)), (4, 16, 64))
    assert coarse["variants"]["bn"]["batch_noise_b16"] == pytest.approx(1.1 / 4)
    # another ghost batch: the fit stops there
    summary = noise_summary(noise_rows(noise), fixed={"virtual_batch_size": 8})
    assert summary["batch_noise_slope_sizes"]["ghost-bn"] == [4, 8]
    # defaults to the studies' common ghost batch (16) when not fixed
    summary = noise_summary(noise_rows(noise), fixed={"lr": 0.1})
    assert summary["batch_noise_slope_sizes"]["ghost-bn"] == [4, 8, 16]
