"""The README's scripts run end to end at small size and write what they promise."""

import json
import sys

from conftest import ROOT, run_script


def _check_ranges(timed, names):
    for mode in ("back_to_back", "rotation"):
        t = timed[mode]
        assert set(t["ms"]) >= set(names)
        for spread in list(t["ms"].values()) + list(t["ratio"].values()):
            assert 0 < spread["min"] <= spread["median"] <= spread["max"]


def test_benchmark_suite_quick_mode_writes_its_files(tmp_path):
    out = run_script(
        "from benchmarks.__main__ import main\n"
        f"main(['--quick', '--out', {str(tmp_path)!r}])"
    )
    assert "stock / kbn" in out and "Targets:" in out
    report = json.loads((tmp_path / "suite.json").read_text())
    assert report["layer"]["copy_bandwidth_gbs"] > 0 and report["runs"] == 3
    rows = {(r["mode"], tuple(r["shape"])) for r in report["layer"]["rows"]}
    shapes = {(64, 32, 32, 64), (1024, 512)}
    assert rows == {(m, s) for m in ("train", "infer") for s in shapes}
    for row in report["layer"]["rows"]:
        _check_ranges(row["timing"], {"kbn", "stock", "stock_xla"})
        assert ("fused" in row["timing"]["rotation"]["ms"]) == (len(row["shape"]) == 4)
        b2b = row["timing"]["back_to_back"]
        assert b2b["kbn_over_floor"]["min"] == b2b["ms"]["kbn"]["min"] / row["floor_ms"]
    (memory,) = report["memory"]
    assert memory["tensor_mib"] == 16.0
    assert all(v > 0 for v in memory["mib"].values())
    jax_rows = {(r["mode"], tuple(r["shape"])) for r in report["jax_layer"]}
    assert jax_rows == rows
    for row in report["jax_layer"]:
        _check_ranges(row["timing"], {"kbn", "kbn_portable", "stock"})
        assert ("temp_mib" in row) == (row["mode"] == "train")
    models = [(row["backend"], row["compile"]) for row in report["model"]]
    assert models == [
        ("tensorflow", "default"),
        ("tensorflow", "jit_compile=True"),
        ("tensorflow", "default, MirroredStrategy (2 CPUs)"),
        ("jax", "default (jax.jit)"),
    ]
    for row in report["model"]:
        assert row["runs"] == 3
        assert row["ms"]["kbn"]["min"] > 0 and row["ms"]["stock"]["min"] > 0
    verdicts = {t["verdict"] for t in report["targets"]}
    assert verdicts <= {"met", "not met", "within noise"}
    # TF layer: conv 4+1+1 per timing mode, dense 2, infer 1 each; memory 1;
    # JAX: 4 rows x 2 modes, 2 memory; models 4.
    assert len(report["targets"]) == 2 * (4 + 2 + 1 + 1) + 1 + 8 + 2 + 4
    text = (tmp_path / "suite.md").read_text()
    assert text.count("| step | dtype | shape | timing |") == 2
    assert "| target |" in text and "median (min-max)" in text


def test_benchmark_row_in_a_fresh_process_is_what_a_full_run_collects():
    from benchmarks import processes

    row = processes.run_json(
        "benchmarks.layer_benchmark", "--row", "infer,mixed_float16,4x3x5x8,10.0,3"
    )
    assert (row["mode"], row["dtype"], row["shape"]) == (
        "infer",
        "mixed_float16",
        [4, 3, 5, 8],
    )
    assert set(row["timing"]["rotation"]["ms"]) == {
        "kbn",
        "stock",
        "stock_xla",
        "fused",
    }
    # 2 passes of 480 float16 values at 10 GB/s.
    assert abs(row["floor_ms"] - 2 * 480 * 2 / 10e9 * 1e3) < 1e-12


def test_benchmarks_refuse_fewer_than_three_runs():
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--runs", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--runs: must be an integer >= 3, got '2'" in result.stderr


def test_timing_modes_and_ranges():
    from benchmarks import timing

    calls = []

    def candidate(name):
        return lambda: calls.append(name)

    candidates = {"kbn": candidate("kbn"), "stock": candidate("stock")}
    per_run = timing.measure_runs(candidates, (), runs=3, repeats=4, warmup=1)
    assert [len(per_run[m]) for m in timing.MODES] == [3, 3]
    # Warm-up, then per run: 4 of each back to back, then 4 rounds of turns.
    run = ["kbn"] * 4 + ["stock"] * 4 + ["kbn", "stock"] * 4
    assert calls == ["kbn", "stock"] + run * 3
    summary = timing.summarize(
        [
            {"kbn": 2.0, "stock": 4.0},
            {"kbn": 1.0, "stock": 4.0},
            {"kbn": 4.0, "stock": 2.0},
        ]
    )
    assert summary["ms"]["kbn"] == {"median": 2.0, "min": 1.0, "max": 4.0}
    assert summary["ratio"]["stock"] == {"median": 2.0, "min": 0.5, "max": 4.0}


def test_benchmark_targets_are_judged_from_ranges():
    from benchmarks import tables

    def spread(lo, hi):
        return {"median": (lo + hi) / 2, "min": lo, "max": hi}

    assert tables.verdict(spread(1.1, 1.4), 1.0) == "met"
    assert tables.verdict(spread(0.9, 1.2), 1.0) == "within noise"
    assert tables.verdict(spread(0.7, 0.95), 1.0) == "not met"
    assert tables.verdict(spread(2.0, 2.9), 3.0, at_least=False) == "met"
    assert tables.verdict(spread(3.1, 4.0), 3.0, at_least=False) == "not met"

    def timed(**ratios):
        t = {"ratio": {k: spread(*v) for k, v in ratios.items()}}
        t["kbn_over_floor"] = spread(1.5, 2.5)
        return {"back_to_back": t, "rotation": t}

    report = {
        "layer": {
            "rows": [
                {
                    "shape": [1024, 512],
                    "dtype": "float32",
                    "mode": "train",
                    "timing": timed(stock=(1.6, 2.0), stock_xla=(0.8, 0.9)),
                }
            ]
        },
        "jax_layer": [
            {
                "shape": [1024, 512],
                "dtype": "float32",
                "mode": "train",
                "timing": timed(stock=(0.9, 1.1)),
                "temp_mib": {"kbn": 1.0, "stock": 2.0},
            }
        ],
        "model": [
            {
                "backend": "tensorflow",
                "compile": "default",
                "ratio": {"stock": spread(1.2, 1.5)},
            }
        ],
    }
    got = {(t["target"], t["timing"]): t["verdict"] for t in tables.targets(report)}
    name = "tensorflow train 1024x512 float32"
    assert got[(f"{name}: stock / kbn >= 1.5", "rotation")] == "met"
    assert got[(f"{name}: stock_xla / kbn >= 1", "back_to_back")] == "not met"
    assert got[("jax train 1024x512 float32: stock / kbn >= 1", "rotation")] == (
        "within noise"
    )
    memory = "jax compiled temp memory 1024x512: kbn <= stock (2.00 MiB)"
    assert got[(memory, "compiled")] == "met"
    model = "tensorflow model step, default: stock / kbn >= 1.3"
    assert got[(model, "fit")] == "within noise"
    assert len(got) == 2 * 2 + 2 + 1 + 1


def test_quickstart_trains_all_three_variants():
    out = run_script(
        f"import sys; sys.path.insert(0, {ROOT + '/examples'!r})\n"
        "import digits_quickstart\n"
        "digits_quickstart.main(['--epochs', '1', '--lrs', '0.5'])"
    )
    rows = [
        line.split()
        for line in out.splitlines()
        if line.split()[:1] in (["none"], ["keras"], ["kbn"])
    ]
    assert [r[0] for r in rows] == ["none", "keras", "kbn"]
    assert all(0.0 <= float(r[2]) <= 1.0 for r in rows)


def test_quickstart_rejects_bad_learning_rates():
    import subprocess

    result = subprocess.run(
        [sys.executable, "examples/digits_quickstart.py", "--lrs", "0,-1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "learning rate" in result.stderr


def test_kernel_compile_process_reports_first_short_and_cached_calls():
    from benchmarks import processes

    times = processes.run_json("benchmarks.kernel_compile", "--one", "40x3")
    assert len(times) == 6 and all(t > 0 for t in times)
