"""Intervals that cover what they claim: coverage measured by simulation,
each entry's method, n and level, and the evaluation set's own noise."""

import math

import numpy as np
import pytest

from studies.outputs import report_sections, reporting
from studies.science import analysis, coverage, stats
from studies.science.spec import StudySpec

CHANCE = 0.1


@pytest.mark.parametrize("distribution", ["normal", "skewed"])
@pytest.mark.parametrize("paired", [False, True], ids=["mean", "paired"])
def test_student_t_covers_its_nominal_level(distribution, paired):
    found = {
        n: coverage.coverage(stats.t_interval, distribution, n, 2000, paired)
        for n in (3, 5, 10)
    }
    assert all(found[n] >= 0.92 for n in (5, 10)), found
    assert found[3] >= 0.90, found  # measured 94-95%: a floor, not the claim


def test_the_percentile_bootstrap_it_replaced_does_not():
    # the method the summaries used before: about 76% at n = 3, 82% at n = 5
    found = coverage.coverage(coverage.percentile_bootstrap, "normal", 3, 1000)
    assert found < 0.85
    assert coverage.coverage(stats.t_interval, "normal", 2, 10) is None


def test_an_interval_entry_names_its_method_n_and_level():
    values = [0.91, 0.95, 0.93, np.nan]  # one unfinished seed
    entry = stats.t_interval(values)
    half = 4.302653 * np.std([0.91, 0.95, 0.93], ddof=1) / math.sqrt(3)
    assert entry == pytest.approx(
        {
            "method": "student_t",
            "n": 3,
            "level": 0.95,
            "low": 0.93 - half,
            "high": 0.93 + half,
        }
    )
    few = stats.t_interval([0.9, 0.95])
    assert few["low"] is None and few["high"] is None and "3 or more" in few["reason"]
    spread = stats.seed_range([1.0, 0.5, 1.5])
    assert spread == {
        "method": "seed_range",
        "n": 3,
        "level": None,
        "low": 0.5,
        "high": 1.5,
    }


def _rows(per_seed):
    """Rows of an lr study: `{variant: {lr: [acc per seed]}}`."""
    return [
        dict(
            variant=v,
            lr=lr,
            seed=s,
            final_val_accuracy=a,
            final_test_accuracy=a - 0.01,
            diverged=0,
            status="ok",
            seconds=1.0,
        )
        for v, by_lr in per_seed.items()
        for lr, accs in by_lr.items()
        for s, a in enumerate(accs)
    ]


PER_SEED = {
    # bn's range within 5 points of 0.95 (floor 0.90): seed 0 0.1-1, seed 1
    # 0.1-10, seed 2 1 only (0.88 at 0.1), the seed-mean curve 0.1-1
    "bn": {
        0.01: (0.5, 0.5, 0.5),
        0.1: (0.92, 0.93, 0.88),
        1.0: (0.95, 0.96, 0.94),
        10.0: (0.80, 0.91, 0.70),
    },
    "none": {
        0.01: (0.6, 0.6, 0.6),
        0.1: (0.85, 0.86, 0.84),
        1.0: (0.3, 0.3, 0.3),
        10.0: (0.1, 0.1, 0.1),
    },
}


def test_range_widths_get_the_seed_range_and_means_a_t_interval():
    study = StudySpec(
        "lr",
        {"variant": ("bn", "none"), "lr": (0.01, 0.1, 1.0, 10.0), "seed": (0, 1, 2)},
        {},
    )
    summary = analysis.summarize(study, _rows(PER_SEED), CHANCE)
    bn = summary["variants"]["bn"]
    assert bn["usable_lr_decades_5pt"] == pytest.approx(1.0)
    width = bn["intervals"]["usable_lr_decades_5pt"]
    assert (width["method"], width["low"], width["high"]) == ("seed_range", 0.0, 2.0)
    # the mean-type numbers: t over the per-seed values at the best point
    test = bn["intervals"]["test_accuracy"]
    assert test["method"] == "student_t" and test["n"] == 3
    assert test["low"] < 0.94 < test["high"]
    # the sensitivity is the mean of per-seed sensitivities
    per_seed = [
        np.mean(0.95 - np.array(c)) for c in zip(*PER_SEED["bn"].values(), strict=True)
    ]
    sens = bn["intervals"]["lr_sensitivity"]
    assert (sens["low"] + sens["high"]) / 2 == pytest.approx(np.mean(per_seed))
    assert summary["interval"]["method"] == "student_t"


def test_evaluation_noise_is_the_binomial_standard_error_at_the_split_size():
    study = StudySpec(
        "lr",
        {"variant": ("bn", "none"), "lr": (0.01, 0.1, 1.0, 10.0), "seed": (0, 1, 2)},
        {},
    )
    sizes = {"val": 270, "test": 450}
    summary = analysis.summarize(study, _rows(PER_SEED), CHANCE, sizes=sizes)
    noise = summary["variants"]["bn"]["evaluation_noise"]
    assert noise["test"] == pytest.approx(math.sqrt(0.94 * 0.06 / 450))
    assert noise["val"] == pytest.approx(math.sqrt(0.95 * 0.05 / 270))
    seed_se = np.std([0.94, 0.95, 0.93], ddof=1) / math.sqrt(3)
    assert noise["seed_se_test"] == pytest.approx(seed_se)
    assert noise["dominant"] == "evaluation set"  # 0.0112 against 0.0058
    text = "\n".join(report_sections.evaluation_noise(summary))
    assert "450 test examples" in text and "evaluation set" in text


def test_the_report_refuses_intervals_below_three_seeds_and_says_why():
    study = StudySpec(
        "lr",
        {"variant": ("bn", "none"), "lr": (0.01, 0.1, 1.0, 10.0), "seed": (0, 1)},
        {},
    )
    two = {v: {lr: a[:2] for lr, a in by.items()} for v, by in PER_SEED.items()}
    summary = analysis.summarize(study, _rows(two), CHANCE)
    report = reporting.markdown(study, summary, _rows(two), [])
    assert "No intervals: 2 seed(s)" in report
    assert "(n=2: no interval)" in report
    assert "[" not in report.split("## Findings")[1].split("## Summary")[0]


def test_an_accuracy_interval_is_truncated_to_what_an_accuracy_can_be():
    near_one = [0.99, 1.0, 1.0, 0.98, 1.0]
    assert stats.t_interval(near_one)["high"] > 1.0  # the t interval alone
    assert analysis.interval_of("test_accuracy", near_one)["high"] == 1.0
    low = analysis.interval_of("test_accuracy", near_one)["low"]
    assert low == pytest.approx(stats.t_interval(near_one)["low"])
    differences = [0.99, -0.5, 0.2]
    assert analysis.interval_of("test_accuracy", differences, paired=True)["low"] >= -1
    assert analysis.interval_of("mean_loss_range", [5.0, 0.1, 0.2])["low"] < 0


def test_the_console_says_how_the_intervals_were_made():
    from studies.surfaces import console

    study = StudySpec(
        "lr", {"variant": ("bn", "none"), "lr": (0.01, 0.1, 1.0, 10.0),
               "seed": (0, 1, 2)}, {},
    )  # fmt: skip
    summary = analysis.summarize(study, _rows(PER_SEED), CHANCE)
    line = console.interval_line(summary)
    assert "95% Student t intervals over 3 seeds" in line
    two = dict(summary, interval={**summary["interval"], "seeds": 2})
    assert console.interval_line(two).startswith("no intervals: 2 seed(s)")
