"""The study engine's throughput: the quick `lr` grid with cell groups
(`--fuse 32`: each seed's 14 cells together) against one cell at a time
(`--fuse 1`), both reusing compiled steps.

Each run is a whole `python -m studies lr --preset quick` process (start-up,
data, every cell, the report), the two settings alternating, `--rounds`
times per backend. Per run: wall seconds, cells per second, the peak
resident memory (the largest `peak_rss_mb` a cell record holds), the group
size the run used; for the grouped runs also where the time went, from the
records' `timing` (build, first epoch = trace + compile + steps, later
epochs, scoring and records), summed over groups.

Usage:
    python -m benchmarks.study_benchmark throughput [--rounds 3]
        [--backends tensorflow,jax] [--epochs N] [--seeds N]

Prints one JSON object: per backend, per setting, the median (min-max) of
each figure, the ratio of cells per second (grouped / one at a time) per
round, and the runs themselves.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# grouped: as many cells together as a group key allows (the default on
# TensorFlow; on JAX the default is one at a time, see `groups.default_size`)
SETTINGS = {"grouped": ["--fuse", "32"], "one at a time": ["--fuse", "1"]}


def _records(out):
    found = []
    for name in os.listdir(os.path.join(out, "cells")):
        with open(os.path.join(out, "cells", name)) as f:
            found.append(json.load(f))
    return found


def one_run(backend, extra, options):
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "studies", "lr", "--preset", "quick"]
        command += [*options, *extra, "--out", out]
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - start
        found = _records(out)
    timing = {}
    for record in found:
        for key, value in (record.get("timing") or {}).items():
            timing[key] = timing.get(key, 0.0) + value / record["group_size"]
    return {
        "seconds": round(seconds, 2),
        "cells": len(found),
        "cells_per_second": round(len(found) / seconds, 4),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in found), 1),
        "group_size": max(r.get("group_size", 1) for r in found),
        "timing": {k: round(v, 2) for k, v in timing.items()},
    }


def _range(values):
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def throughput(rounds=3, backends=("tensorflow", "jax"), options=()):
    result = {"command": "python -m studies lr --preset quick " + " ".join(options)}
    for backend in backends:
        runs = {name: [] for name in SETTINGS}
        for _ in range(rounds):
            for name, extra in SETTINGS.items():  # alternating, in one session
                runs[name].append(one_run(backend, extra, list(options)))
        ratios = [
            g["cells_per_second"] / o["cells_per_second"]
            for g, o in zip(runs["grouped"], runs["one at a time"], strict=True)
        ]
        result[backend] = {
            name: {
                figure: _range([r[figure] for r in these])
                for figure in ("seconds", "cells_per_second", "peak_rss_mb")
            }
            for name, these in runs.items()
        }
        result[backend]["speedup"] = _range(ratios)
        result[backend]["runs"] = runs
    return result
