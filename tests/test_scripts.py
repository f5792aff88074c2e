"""The README's scripts run end to end at small size and write what they promise."""

import json
import sys

from conftest import ROOT, run_script


def test_layer_benchmark_quick_mode_writes_its_files(tmp_path):
    out = run_script(
        "from benchmarks.layer_benchmark import main\n"
        f"main(['--quick', '--out', {str(tmp_path)!r}])"
    )
    assert "stock / kbn" in out
    report = json.loads((tmp_path / "layer.json").read_text())
    shapes = [row["shape"] for row in report["results"]]
    assert shapes == [[64, 32, 32, 64], [1024, 512]]
    for row in report["results"]:
        assert row["ms"]["kbn"] > 0 and {"stock", "stock_xla"} <= set(row["ms"])
    assert (tmp_path / "layer.md").read_text().startswith("| shape |")


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
