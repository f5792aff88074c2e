"""The convergence study: steps to a target on hand-made curves (censoring
included), the interleaved step timing, and the study end to end."""

import json
import math

import numpy as np
import pytest
from study_helpers import TINY_ARGS, tiny_spec

from studies.science import convergence, extras
from studies.surfaces import cli

AXES = {"variant": ("none", "keras", "bn"), "seed": (0, 1, 2)}


def row(variant, seed, values, every=10):
    """A result row whose validation curve is `values`, read every `every` steps."""
    steps = [i * every for i in range(len(values))]
    return {
        "variant": variant,
        "seed": seed,
        "curves": {"accuracy": {"step": steps, "train": values, "test": values}},
    }


def test_first_step_is_the_first_reading_at_or_above_the_target():
    steps, values = [0, 10, 20, 30], [0.1, 0.5, 0.9, 0.95]
    assert convergence.first_step(steps, values, 0.9) == 20
    assert convergence.first_step(steps, values, 0.5) == 10
    assert convergence.first_step(steps, values, 0.1) == 0
    assert convergence.first_step(steps, values, 0.96) is None
    # a None reading (a NaN score, as JSON null) never reaches it
    assert convergence.first_step([0, 10, 20], [0.1, None, 0.9], 0.5) == 20


def rows_with_a_censored_seed():
    """bn reaches 0.9 at steps 10, 20, 30; none at 40 and 60, and its seed 2
    never does (it diverged: its curve stops at step 20)."""
    return [
        row("bn", 0, [0.1, 0.9, 0.95]),
        row("bn", 1, [0.1, 0.5, 0.92, 0.95]),
        row("bn", 2, [0.1, 0.5, 0.6, 0.91]),
        row("none", 0, [0.1, 0.3, 0.5, 0.7, 0.91]),
        row("none", 1, [0.1, 0.3, 0.5, 0.7, 0.8, 0.85, 0.9]),
        row("none", 2, [0.1, 0.2, 0.3]),
    ]


def test_censored_seeds_are_counted_not_dropped():
    axes = {"variant": ("none", "bn"), "seed": (0, 1, 2)}
    rows = rows_with_a_censored_seed()
    timing = {
        "none": {"0": 0.001, "1": 0.001, "2": 0.001},
        "bn": {"0": 0.002, "1": 0.002, "2": 0.002},
    }
    chosen = convergence.prepare(axes, rows, "accuracy", 0.1, timing, given=0.9)
    assert (chosen["target"], chosen["given"]) == (0.9, True)
    assert [r["steps_to_target"] for r in rows] == [10, 20, 30, 40, 60, None]
    assert rows[3]["seconds_to_target"] == pytest.approx(0.04)
    assert rows[5]["seconds_to_target"] is None
    assert rows[5]["seconds_per_step"] == 0.001  # measured, though censored
    # the per-seed numbers the summary's intervals come from: NaN when censored
    found = extras.extras(("convergence",), axes, rows, 0.1)
    np.testing.assert_array_equal(
        found["steps_to_target"], [[40, 60, np.nan], [10, 20, 30]]
    )
    variants = {"none": {"steps_to_target": 50.0}, "bn": {"steps_to_target": 20.0}}
    section = convergence.section(axes, rows, variants, chosen)
    assert section["variants"]["none"] == {"seeds": 3, "reached": 2, "median": 60.0}
    assert section["variants"]["bn"] == {"seeds": 3, "reached": 3, "median": 20.0}
    assert variants["none"]["steps_to_target_not_reached"] == 1
    assert variants["none"]["steps_to_target_reached"] == 2
    assert variants["none"]["seconds_to_target"] is None  # no number was given
    ratio = section["ratios"]["none/bn"]
    # means over the seeds that reached: (40 + 60) / 2 over (10 + 20 + 30) / 3
    assert ratio["steps"]["value"] == pytest.approx(50 / 20)
    assert ratio["steps"]["interval"]["n"] == 2  # seeds where both reached
    assert ratio["seconds_per_step"]["value"] == pytest.approx(0.5)
    assert "keras/bn" not in section["ratios"]  # no keras in this grid


def test_the_median_counts_censored_seeds_as_latest():
    axes = {"variant": ("none",), "seed": (0, 1, 2)}
    rows = [
        row("none", 0, [0.1, 0.95]),
        row("none", 1, [0.1, 0.2]),
        row("none", 2, [0.1, 0.3]),
    ]
    chosen = convergence.prepare(axes, rows, "accuracy", 0.1, {}, given=0.9)
    section = convergence.section(axes, rows, {}, chosen)
    # two of three never reach it: the median seed did not
    assert section["variants"]["none"] == {"seeds": 3, "reached": 1, "median": None}


def test_the_default_target_is_one_every_trained_variant_reaches():
    rows = [
        row("none", 0, [0.1, 0.6, 0.8]),
        row("none", 1, [0.1, 0.7, 0.9]),  # none's mean curve peaks at 0.85
        row("bn", 0, [0.1, 0.95, 0.96]),
        row("bn", 1, [0.1, 0.93, 0.94]),
        row("keras", 0, [0.1, 0.1, 0.1]),  # did not train: not the slowest
    ]
    best = convergence.best_means(AXES["variant"], rows, "accuracy")
    assert best == pytest.approx({"none": 0.85, "keras": 0.1, "bn": 0.95})
    target = convergence.default_target(AXES["variant"], rows, "accuracy", 0.1)
    assert target == pytest.approx(0.85 - convergence.TARGET_MARGIN)
    assert convergence.default_target(("keras",), rows, "accuracy", 0.1) is None


def test_step_timing_gives_every_variant_a_positive_time_per_step():
    from studies.engine import step_timing
    from studies.inputs import data, models

    spec = tiny_spec("convergence", seeds=2)
    dataset = data.load("digits", train_size=120)
    found = step_timing.measure(
        spec, dataset, models.BUILDERS["mlp-relu"], rounds=3, steps=4, warmup=2
    )
    assert found["method"] == step_timing.METHOD
    for variant in spec.axes["variant"]:
        per_seed = found["seconds_per_step"][variant]
        assert set(per_seed) == {"0", "1"}
        assert all(math.isfinite(t) and t > 0 for t in per_seed.values())
        assert all(len(r) == 3 for r in found["rounds_seconds"][variant].values())
    assert step_timing.complete(spec, found)
    assert not step_timing.complete(tiny_spec("convergence", seeds=3), found)


def run_tiny(tmp_path, *options):
    out = tmp_path / "study"
    argv = ["convergence", *TINY_ARGS, *options, "--out", str(out)]
    assert cli.main(argv) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_the_study_end_to_end(tmp_path, capsys):
    out, summary = run_tiny(tmp_path, "--seeds", "3", "--lrs", "0.1")
    timing = json.loads((out / "timing.json").read_text())
    for variant in ("none", "keras", "bn"):
        numbers = summary["variants"][variant]
        for name in ("steps_to_target", "seconds_to_target", "seconds_per_step"):
            assert name in numbers
        assert numbers["seconds_per_step"] > 0
        assert numbers["intervals"]["seconds_per_step"]["n"] == 3
        assert set(timing["seconds_per_step"][variant]) == {"0", "1", "2"}
        seeds = numbers["steps_to_target_seeds"]
        assert seeds == 3
        assert (
            numbers["steps_to_target_reached"] + numbers["steps_to_target_not_reached"]
            == seeds
        )
    found = summary["convergence"]
    assert found["target_given"] is False and found["target"] is not None
    assert set(found["ratios"]) == {"none/bn", "keras/bn"}
    report = (out / "report.md").read_text()
    assert "## Steps and seconds to the target" in report
    assert (out / "convergence.png").exists()
    printed = capsys.readouterr().out
    assert "none/bn: " in printed and "seconds per step" in printed


def test_a_given_target_and_the_tuning_phase(tmp_path):
    out, summary = run_tiny(
        tmp_path, "--variants", "none,bn", "--lrs", "0.1,1", "--target", "0.15"
    )
    assert summary["convergence"]["target"] == 0.15
    assert summary["convergence"]["target_given"] is True
    assert set(summary["tuned_lr"]) == {"none", "bn"}
    assert summary["variants"]["bn"]["tuned_lr"] in (0.1, 1.0)
    assert "keras/bn" not in summary["convergence"]["ratios"]
