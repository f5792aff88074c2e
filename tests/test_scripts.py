"""The README's scripts run end to end at small size and write what they promise."""

import json
import sys

from conftest import ROOT, run_script


def test_benchmark_suite_quick_mode_writes_its_files(tmp_path):
    out = run_script(
        "from benchmarks.__main__ import main\n"
        f"main(['--quick', '--out', {str(tmp_path)!r}])"
    )
    assert "stock / kbn" in out and "Targets:" in out
    report = json.loads((tmp_path / "suite.json").read_text())
    assert report["layer"]["copy_bandwidth_gbs"] > 0
    rows = {(r["mode"], tuple(r["shape"])) for r in report["layer"]["rows"]}
    shapes = {(64, 32, 32, 64), (1024, 512)}
    assert rows == {(m, s) for m in ("train", "infer") for s in shapes}
    for row in report["layer"]["rows"]:
        assert set(row["ms"]) >= {"kbn", "stock", "stock_xla"}
        assert row["kbn_over_floor"] == row["ms"]["kbn"] / row["floor_ms"]
        assert ("fused" in row["ms"]) == (len(row["shape"]) == 4)
    (memory,) = report["memory"]
    assert memory["tensor_mib"] == 16.0
    assert all(v > 0 for v in memory["mib"].values())
    compiles = [row["compile"] for row in report["model"]]
    assert compiles == [
        "default",
        "jit_compile=True",
        "default, MirroredStrategy (2 CPUs)",
    ]
    for row in report["model"]:
        assert row["ms"]["kbn"] > 0 and row["ms"]["stock"] > 0
    assert len(report["targets"]) == 4 + 1 + 2 + 1 + 3
    text = (tmp_path / "suite.md").read_text()
    assert text.count("| mode | dtype | shape |") == 1 and "| target |" in text


def test_benchmark_row_in_a_fresh_process_is_what_a_full_run_collects():
    from benchmarks import processes

    row = processes.run_json(
        "benchmarks.layer_benchmark", "--row", "infer,mixed_float16,4x3x5x8,10.0"
    )
    assert (row["mode"], row["dtype"], row["shape"]) == (
        "infer",
        "mixed_float16",
        [4, 3, 5, 8],
    )
    assert set(row["ms"]) == {"kbn", "stock", "stock_xla", "fused"}
    # 2 passes of 480 float16 values at 10 GB/s.
    assert abs(row["floor_ms"] - 2 * 480 * 2 / 10e9 * 1e3) < 1e-12


def test_model_benchmark_rejects_bad_rounds():
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.model_benchmark", "--rounds", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--rounds: must be an integer >= 1, got '0'" in result.stderr


def test_benchmark_targets_compare_each_ratio_with_its_bound():
    from benchmarks import tables

    def layer_row(shape, mode, stock, floor_ratio=2.0, **others):
        return {
            "shape": list(shape),
            "dtype": "float32",
            "mode": mode,
            "speedup_vs": {"stock": stock, **others},
            "kbn_over_floor": floor_ratio,
        }

    report = {
        "layer": {
            "rows": [
                layer_row(
                    (64, 32, 32, 64), "train", 3.1, 3.5, fused=1.2, stock_xla=1.0
                ),
                layer_row((1024, 512), "train", 1.4),
                layer_row((1024, 512), "infer", 1.0),
            ]
        },
        "memory": [{"shape": [1024, 512], "mib": {"kbn": 2.0, "stock": 8.0}}],
        "model": [
            {"compile": "default", "ms": {"kbn": 10.0, "stock": 12.0}},
            {"compile": "jit_compile=True", "ms": {"kbn": 10.0, "stock": 10.0}},
        ],
    }
    met = {row["target"]: row["met"] for row in tables.targets(report)}
    assert met == {
        "conv fwd+bwd: stock / kbn >= 3": True,
        "conv fwd+bwd: fused / kbn >= 1.3": False,
        "conv fwd+bwd: stock_xla / kbn >= 1": True,
        "conv fwd+bwd: kbn / floor <= 3": False,
        "dense 1024x512 float32 fwd+bwd: stock / kbn >= 1.5": False,
        "inference 1024x512 float32: stock / kbn >= 1": True,
        "peak step memory 1024x512: stock / kbn >= 1": True,
        "model step, default: stock / kbn >= 1.3": False,
        "model step, jit_compile=True: stock / kbn >= 1": True,
    }


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
