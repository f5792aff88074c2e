"""The study folder module: atomic, fsynced writes; names; folder checks."""

import io
import json
import os

import pytest
from study_helpers import run, tiny_spec

from studies import folder
from studies.outputs import plots, reporting

# What a finished plain `lr` study holds, spelled out here rather than taken
# from `studies.folder`, so that a renamed file fails the test.
TOP_LEVEL = {
    "study.json",
    "dataset.json",
    "results.csv",
    "summary.json",
    "report.md",
    "report.html",
    ".report.lock",
    "cells",
    "leases",
    "runs",
    "tuner",
    "tensorboard",
}


def _listing(path):
    return sorted(os.listdir(path))


def _temporaries(root):
    return [
        os.path.join(where, name)
        for where, folders, files in os.walk(root)
        for name in folders + files
        if name.startswith(".tmp-")
    ]


def test_folder_is_the_base_layer():
    import ast

    tree = ast.parse(open(folder.__file__).read())
    imported = [
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    ]
    imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert imported and not [m for m in imported if m.split(".")[0] == "studies"]


def test_write_replaces_the_file_with_text_or_bytes(tmp_path):
    path = str(tmp_path / "a.json")
    folder.write(path, "first, longer text\n")
    folder.write(path, "R² ok\r\n")  # UTF-8, newlines as given
    assert (tmp_path / "a.json").read_bytes() == "R² ok\r\n".encode()
    folder.write(path, b"\x89PNG\x00")
    assert (tmp_path / "a.json").read_bytes() == b"\x89PNG\x00"
    assert _listing(tmp_path) == ["a.json"]


def test_write_makes_the_files_folder(tmp_path):
    path = str(tmp_path / "cells" / "deeper" / "x.json")
    folder.write(path, "{}")
    assert open(path).read() == "{}"


@pytest.mark.parametrize("failing", ["replace", "fsync", "write"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path, monkeypatch, failing
):
    path = tmp_path / "report.md"
    path.write_text("old report\n")

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if failing == "write":  # the data only partly written, then the error
        real_open = open

        class Half(io.FileIO):
            def write(self, data):
                super().write(data[: len(data) // 2])
                fail()

        def opener(file, mode="r", *args, **kwargs):
            if isinstance(file, int):
                return Half(file, "wb")
            return real_open(file, mode, *args, **kwargs)

        monkeypatch.setattr("builtins.open", opener)
    else:
        monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError, match="No space"):
        folder.write(str(path), "new report, much longer than the old one\n" * 50)
    monkeypatch.undo()
    assert path.read_text() == "old report\n"
    assert _listing(tmp_path) == ["report.md"]


def test_write_fsyncs_the_file_before_the_rename_then_the_folder(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.isdir(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    folder.write(str(tmp_path / "summary.json"), "{}")
    assert events == [("fsync", False), ("replace", "summary.json"), ("fsync", True)]
    events.clear()
    folder.write(str(tmp_path / "lease.json"), "{}", sync_folder=False)
    assert events == [("fsync", False), ("replace", "lease.json")]


def test_write_new_writes_once_and_fsyncs(tmp_path, monkeypatch):
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    path = str(tmp_path / "study.json")
    assert folder.write_new(path, "first")
    assert len(calls) == 2  # the file, then the folder
    assert not folder.write_new(path, "second")
    assert open(path).read() == "first"
    assert _listing(tmp_path) == ["study.json"]


def test_written_files_get_the_mode_open_gives(tmp_path):
    # a temporary file from mkstemp would be 0600: unreadable to the group
    # that shares a report
    plain = tmp_path / "plain"
    with open(plain, "w") as f:
        f.write("x")
    folder.write(str(tmp_path / "atomic"), "x")
    folder.write_new(str(tmp_path / "new"), "x")
    mode = os.stat(plain).st_mode
    assert os.stat(tmp_path / "atomic").st_mode == mode
    assert os.stat(tmp_path / "new").st_mode == mode


def test_json_keys_skip_temporary_and_dot_files(tmp_path):
    for name in ["b.json", "a.json", ".tmp-123", ".lock", ".x.json", "notes.txt"]:
        (tmp_path / name).write_text("{}")
    assert folder.json_keys(str(tmp_path)) == ["a", "b"]
    assert folder.json_keys(str(tmp_path / "missing")) == []


def test_check_new_refuses_what_cannot_hold_a_new_study(tmp_path):
    folder.check_new(str(tmp_path / "new" / "deeper"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".tmp-abc").write_text("")  # another process's write
    folder.check_new(str(tmp_path / "empty"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(folder.FolderError, match="is a file, not a folder"):
        folder.check_new(str(tmp_path / "file"))
    with pytest.raises(folder.FolderError, match="cannot create output folder"):
        folder.check_new(str(tmp_path / "file" / "below"))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("x")
    with pytest.raises(folder.FolderError, match="not empty and holds no study"):
        folder.check_new(str(tmp_path / "used"))
    assert _listing(tmp_path / "empty") == [".tmp-abc"]  # nothing written


def test_plots_are_written_as_savefig_writes_them(tmp_path):
    import matplotlib.pyplot as plt

    def figure():
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([1, 2, 3], [3, 1, 2])
        return fig

    direct = figure()
    direct.tight_layout()
    direct.savefig(tmp_path / "direct.png", dpi=110)
    plt.close(direct)
    assert plots.save(figure(), str(tmp_path), "atomic.png") == "atomic.png"
    assert (tmp_path / "atomic.png").read_bytes() == (
        tmp_path / "direct.png"
    ).read_bytes()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "out"
    summary, _ = run(tiny_spec("lr"), out)
    return out, summary


def test_a_study_folder_holds_the_names_folder_lists(study):
    out, _ = study
    # timing.json: only a study that times its steps (convergence) has one
    assert set(folder.FILES) | set(folder.FOLDERS) == TOP_LEVEL | {"timing.json"}
    assert set(_listing(out)) == TOP_LEVEL | {"accuracy_vs_lr.png"}
    assert folder.curve_plot("accuracy", "lr") == "accuracy_vs_lr.png"
    assert _listing(out / "leases") == [folder.LEASE_LOCK] == [".lock"]
    assert len(folder.json_keys(folder.cells_dir(str(out)))) == 4
    assert len(_listing(out / "cells")) == 4
    assert len(_listing(out / "runs")) == 1
    assert folder.RUNNING_LOGS in _listing(out / "tensorboard")
    assert os.listdir(out / "tuner") == ["lr"]  # Keras Tuner's project
    assert _temporaries(out) == []


def test_every_report_file_goes_through_the_atomic_write(study, monkeypatch):
    out, summary = study
    written = []
    real_write = folder.write

    def write(path, data, **kwargs):
        written.append(os.path.relpath(path, out))
        real_write(path, data, **kwargs)

    monkeypatch.setattr(folder, "write", write)
    again = reporting.write(str(out))
    assert sorted(written) == sorted(
        ["results.csv", "summary.json", "accuracy_vs_lr.png", "report.md"]
        + ["report.html"]
    )
    # the whole summary, as the run wrote it (text: NaN is not equal to NaN)
    assert (out / "summary.json").read_text() == json.dumps(again, indent=2)
    assert json.dumps(again, sort_keys=True) == json.dumps(summary, sort_keys=True)
    assert again["cells_finished"] == 4


def test_a_report_that_fails_leaves_the_last_report_whole(study, monkeypatch):
    out, _ = study
    before = (out / "report.md").read_bytes()
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(dst) == "report.md":
            raise KeyboardInterrupt  # a kill while the report is written
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        reporting.write(str(out))
    assert (out / "report.md").read_bytes() == before
    assert _temporaries(out) == []


_CHECK_PAGE = """
<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  document.body.dataset.check = JSON.stringify({
    images: images.length,
    loaded: images.filter((i) => i.complete && i.naturalWidth > 0).length,
    tables: document.querySelectorAll("table").length,
    headings: [...document.querySelectorAll("h2")].map((h) => h.textContent),
  });
});
</script>
"""


def test_the_html_report_opens_in_a_browser_with_its_figures_and_tables(
    study, tmp_path
):
    """report.html is self-contained: the figures load from the file alone."""
    import re
    import shutil
    import subprocess

    out, _ = study
    page = (out / "report.html").read_text()
    assert "<table>" in page and "data:image/png;base64," in page
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    alone = tmp_path / "report.html"  # away from the PNGs it was made from
    alone.write_text(page.replace("</body>", _CHECK_PAGE + "</body>"))
    dumped = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--virtual-time-budget=5000", "--dump-dom", alone.as_uri()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    found = re.search(r'data-check="([^"]*)"', dumped.stdout)
    assert found, dumped.stderr[-2000:]
    import html

    check = json.loads(html.unescape(found.group(1)))
    assert check["images"] == check["loaded"] == 1  # accuracy_vs_lr.png
    assert check["tables"] >= 3  # setup, summary, runs
    for heading in ("Setup", "Findings", "Summary", "Plots", "Reproduce"):
        assert heading in check["headings"]


def test_report_format_says_which_report_is_rebuilt(study, capsys):
    from studies.surfaces import api, cli

    out, _ = study
    (out / "report.md").unlink()
    (out / "report.html").unlink()
    assert cli.main(["report", str(out), "--format", "html"]) == 0
    assert (out / "report.html").exists() and not (out / "report.md").exists()
    assert f"report: {out / 'report.html'}\n" in capsys.readouterr().out
    with pytest.raises(ValueError, match="format must be one of md, html, both"):
        api.report(str(out), format="pdf")
    assert cli.main(["report", str(out), "--format", "pdf"]) == 2
    api.report(str(out))  # both again, for the tests after this one
    assert (out / "report.md").exists() and (out / "report.html").exists()
