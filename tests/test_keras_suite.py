"""Keras's own BatchNormalization test suite passes with kbn's class swapped in,
on every backend with kbn kernels (one fresh interpreter per backend)."""

import os
import pathlib
import subprocess
import sys

import keras
import pytest

from kbn import kernels

SUITE = (
    pathlib.Path(keras.__file__).parent
    / "src/layers/normalization/batch_normalization_test.py"
)


@pytest.mark.skipif(not SUITE.exists(), reason="this Keras wheel ships no tests")
@pytest.mark.parametrize("backend", kernels.BACKENDS)
def test_keras_batch_normalization_suite_passes_with_kbn(backend, tmp_path):
    pytest.importorskip(backend)
    count_file = tmp_path / "count"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]
        ),
        "KBN_SWAP_COUNT": str(count_file),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KERAS_BACKEND": backend,
    }
    # An empty config of its own: the suite must not pick up kbn's pyproject
    # (found above a virtual environment inside the checkout) and its addopts.
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-c",
            str(ini),
            "-p",
            "keras_swap_plugin",
        ]
        + ["-p", "no:cacheprovider", "-W", "ignore", str(SUITE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
    assert int(count_file.read_text()) > 20  # the suite really built kbn layers
