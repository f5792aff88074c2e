"""`eval_statistics`: cells scored with batch normalization statistics
recomputed over the training split, besides (`both`) or instead of
(`recomputed`) the moving ones.

The reference is an independent computation: a copy of the trained model,
its statistics recomputed by `kbn.recompute_statistics` (at another batch
size: the pooling is exact), scored with NumPy. A cell of one epoch of 4
steps at BN's momentum 0.99 leaves the moving averages near their initial
values (mean 0, variance 1), far from the features' statistics, so the two
scores differ.
"""

import json

import keras
import numpy as np
import pytest
from study_helpers import run, tiny_spec
from test_study_groups import digits, hp_for, small, together

import kbn
import studies
from studies.engine import hypermodel, records
from studies.outputs import report_sections
from studies.science import analysis, definitions, tuning
from studies.science.spec import cell_key, make_spec
from studies.surfaces import cli

RECOMPUTED = (
    "final_val_accuracy_recomputed",
    "final_test_accuracy_recomputed",
    "statistics_recomputed",
)


def _cell(mode, variant="bn"):
    """A fitted one-cell outcome of `small` on 160 digits, and its model."""
    spec = make_spec(
        "lr", variants=[variant], lrs=[0.1], seeds=1, epochs=1, batch_size=40
    )
    spec.fixed["eval_statistics"] = mode
    dataset = digits()
    hm = hypermodel.CellHyperModel(spec, dataset, small)
    hp = hp_for(spec, spec.cells()[0])
    model = hm.build(hp)
    validation = (dataset.x_val, dataset.y_val)
    outcome = hm.fit(hp, model, dataset.x_train, dataset.y_train, validation)
    return outcome, model, dataset


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))


def _recomputed_copy(model, dataset):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    kbn.recompute_statistics(copy, dataset.x_train, batch_size=32)
    return copy


def test_both_scores_a_copy_with_recomputed_statistics_and_keeps_the_moving():
    outcome, model, dataset = _cell("both")
    x_val, y_val = dataset.x_val, dataset.y_val
    # the moving statistics are back: the model scores as training left it
    moving = _accuracy(model, x_val, y_val)
    assert moving == pytest.approx(outcome["final_val_accuracy"], abs=1e-6)
    assert outcome["score"] == outcome["final_val_accuracy"]
    copy = _recomputed_copy(model, dataset)
    assert outcome["final_val_accuracy_recomputed"] == pytest.approx(
        _accuracy(copy, x_val, y_val), abs=1e-9
    )
    assert outcome["final_test_accuracy_recomputed"] == pytest.approx(
        _accuracy(copy, dataset.x_test, dataset.y_test), abs=1e-9
    )
    assert outcome["final_test_accuracy"] == pytest.approx(
        _accuracy(model, dataset.x_test, dataset.y_test), abs=1e-9
    )
    assert outcome["statistics_recomputed"] == 1
    # stale moving statistics: another score
    assert abs(outcome["final_val_accuracy_recomputed"] - moving) >= 1 / len(y_val)


def test_recomputed_makes_the_recomputed_scores_the_cells_own():
    outcome, model, dataset = _cell("recomputed")
    copy = _recomputed_copy(model, dataset)
    val = _accuracy(copy, dataset.x_val, dataset.y_val)
    assert outcome["score"] == outcome["final_val_accuracy"] == pytest.approx(val)
    assert outcome["final_val_accuracy_recomputed"] == outcome["final_val_accuracy"]
    assert outcome["final_test_accuracy"] == pytest.approx(
        _accuracy(copy, dataset.x_test, dataset.y_test)
    )
    assert outcome["final_train_accuracy"] == pytest.approx(
        _accuracy(copy, dataset.x_train, dataset.y_train)
    )
    assert _accuracy(model, dataset.x_val, dataset.y_val) != pytest.approx(val)


def test_without_batch_normalization_the_recomputed_scores_are_the_scores():
    outcome, _, _ = _cell("both", variant="layer-norm")
    assert outcome["statistics_recomputed"] == 0
    assert outcome["final_val_accuracy_recomputed"] == outcome["final_val_accuracy"]
    assert outcome["final_test_accuracy_recomputed"] == outcome["final_test_accuracy"]
    moving, _, _ = _cell("moving")
    assert not set(RECOMPUTED) & set(moving)


def test_a_group_records_the_numbers_of_the_cell_alone():
    spec = make_spec(
        "lr", variants=["none", "bn", "keras"], lrs=[0.1], seeds=1, epochs=1
    )
    spec.fixed.update(eval_statistics="both", batch_size=40)
    dataset = digits()
    hm = hypermodel.CellHyperModel(spec, dataset, small)
    validation = (dataset.x_val, dataset.y_val)
    grouped = together(hm, spec, spec.cells(), dataset)
    for cell, got in zip(spec.cells(), grouped, strict=True):
        hp = hp_for(spec, cell)
        want = hm.fit(hp, hm.build(hp), dataset.x_train, dataset.y_train, validation)
        for key in (*RECOMPUTED, "final_val_accuracy", "score"):
            assert got[key] == pytest.approx(want[key], abs=1e-6), (cell, key)


def test_one_cell_at_a_time_and_groups_record_the_same_recomputed_numbers(tmp_path):
    spec = tiny_spec("lr", eval_statistics="both")
    found = {}
    for fuse in (1, 2):
        summary, _ = run(spec, tmp_path / f"fuse{fuse}", fuse=fuse)
        found[fuse] = records.read_all(str(tmp_path / f"fuse{fuse}"))
        assert summary["eval_statistics"] == "both"
        assert summary["variants"]["bn"]["recomputed_gap"] is not None
        assert summary["variants"]["none"].get("recomputed_gap") is None
    assert {r["group_size"] for r in found[2].values()} == {2}
    for cell in spec.cells():
        one, two = found[1][cell_key(cell)], found[2][cell_key(cell)]
        for key in RECOMPUTED:
            assert one[key] == pytest.approx(two[key], abs=1e-6), (cell, key)
        assert one["statistics_recomputed"] == (cell["variant"] == "bn")


def test_the_option_parses_and_is_stored_in_the_spec():
    argv = ["lr", "--eval-statistics", "recomputed", "--out", "unused"]
    spec, _ = cli.prepare(cli.build_parser().parse_args(argv), argv)
    assert spec.fixed["eval_statistics"] == "recomputed"
    assert make_spec("lr").fixed["eval_statistics"] == "moving"
    assert json.loads(spec.to_json())["fixed"]["eval_statistics"] == "recomputed"


def test_a_bad_value_is_a_one_line_error(capsys, tmp_path):
    out = tmp_path / "o"
    assert cli.main(["lr", "--eval-statistics", "exact", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--eval-statistics" in err and "exact" in err and "\n" not in err
    assert not out.exists()
    with pytest.raises(ValueError, match="eval_statistics must be one of"):
        studies.run("lr", str(out), eval_statistics="exact", dry_run=True)


def test_the_batch_size_study_scores_both_and_tunes_on_the_moving_score():
    for preset in definitions.PRESETS:
        spec = make_spec("batch-size", preset)
        assert spec.fixed["eval_statistics"] == "both"
        assert tuning.tuning_spec(spec).fixed["eval_statistics"] == "moving"
    given = make_spec("batch-size", eval_statistics="moving")
    assert given.fixed["eval_statistics"] == "moving"
    argv = ["batch-size", "--out", "unused"]
    spec, _ = cli.prepare(cli.build_parser().parse_args(argv), argv)
    assert spec.fixed["eval_statistics"] == "both"
    recomputed = make_spec("batch-size", eval_statistics="recomputed")
    assert tuning.tuning_spec(recomputed).fixed["eval_statistics"] == "recomputed"


def _rows(gaps):
    """Batch-size rows: `gaps[variant][size]` per seed (None: no BN)."""
    rows = []
    for variant, by_size in gaps.items():
        for size, per_seed in by_size.items():
            for seed, gap in enumerate(per_seed):
                val = 0.8 + 0.01 * seed
                rows.append(
                    dict(
                        variant=variant,
                        batch_size=size,
                        seed=seed,
                        status="ok",
                        diverged=0,
                        final_val_accuracy=val,
                        final_test_accuracy=val,
                        final_val_accuracy_recomputed=val + (gap or 0.0),
                        statistics_recomputed=int(gap is not None),
                    )
                )
    return rows


def test_the_summary_gives_the_gap_per_variant_and_batch_size_with_intervals():
    spec = make_spec(
        "batch-size", variants=["none", "bn"], batch_sizes=[8, 64], seeds=3, lr=0.1
    )
    gaps = {
        "none": {8: [None] * 3, 64: [None] * 3},
        "bn": {8: [0.04, 0.05, 0.06], 64: [0.0, 0.01, 0.02]},
    }
    summary = analysis.summarize(spec, _rows(gaps), 0.1)
    bn = summary["variants"]["bn"]
    assert bn["recomputed_gap"] == pytest.approx(0.03)
    assert bn["intervals"]["recomputed_gap"]["n"] == 3
    assert summary["variants"]["none"].get("recomputed_gap") is None
    assert summary["recomputed_gap"] == {
        "bn": {"8": pytest.approx(0.05), "64": pytest.approx(0.01)}
    }
    interval = summary["recomputed_gap_intervals"]["bn"]["8"]
    assert interval["low"] < 0.05 < interval["high"]
    lines = "\n".join(report_sections.eval_statistics(summary))
    assert "## Moving against recomputed statistics" in lines
    assert "| bn | +0.030 [" in lines and "batch 64" in lines
    spec.fixed["eval_statistics"] = "moving"
    summary = analysis.summarize(spec, _rows(gaps), 0.1)
    assert (
        "recomputed_gap" not in summary
        and "recomputed_gap" not in (summary["variants"]["bn"])
    )
    assert report_sections.eval_statistics(summary) == []


def test_a_regression_cell_records_its_recomputed_r2():
    from test_study_regression import targets

    from studies.inputs import data, models

    dataset = data.load(targets(), name="toy")
    spec = make_spec("lr", variants=["bn"], lrs=[0.01], seeds=1, epochs=1)
    spec.fixed.update(task="regression", eval_statistics="recomputed")
    hm = hypermodel.CellHyperModel(spec, dataset, models.BUILDERS["mlp-relu"])
    hp = hp_for(spec, spec.cells()[0])
    model = hm.build(hp)
    validation = (dataset.x_val, dataset.y_val)
    outcome = hm.fit(hp, model, dataset.x_train, dataset.y_train, validation)
    copy = _recomputed_copy(model, dataset)
    val = hm.scorer(copy, dataset.x_val, dataset.y_val, "val")
    test = hm.scorer(copy, dataset.x_test, dataset.y_test, "test")
    # the copy pools batches of 32 in float32 moments (the cell 1024): 1e-5
    assert outcome["final_val_r2_recomputed"] == pytest.approx(val, rel=1e-5)
    assert outcome["score"] == outcome["final_val_r2"] == pytest.approx(val)
    assert outcome["final_test_r2"] == outcome["final_test_r2_recomputed"]
    assert outcome["final_test_r2"] == pytest.approx(test, rel=1e-5)
    assert hm.scorer(model, dataset.x_val, dataset.y_val, "val") != pytest.approx(val)
