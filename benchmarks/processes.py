"""Running a benchmark module in a fresh Python process."""

import json
import os
import subprocess
import sys


def run_json(module, *args, env=None):
    """Runs `python -m module *args` and returns the JSON of its last line.

    A fresh process starts with a clean heap (see layer_benchmark.run) or
    with start-up settings that cannot change later (allocator, devices).
    """
    out = subprocess.run(
        [sys.executable, "-m", module, *args],
        env=dict(os.environ, **(env or {})),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
