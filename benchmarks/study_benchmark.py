"""Studies over a long grid and under faults: memory per cell, and how soon a
chief exits after the last cell.

- `memory`: one process runs an `lr` study of `--cells` tiny cells (digits,
  120 examples, one epoch; the variants none and bn) and the process's
  resident memory, now and at its peak, is read after every cell (`rss_mb`
  and `peak_rss_mb` in each cell record). Flat means what a cell leaves in
  the process is freed after it (`studies.engine.cell_memory`): the figures are
  the memory after the first 10 cells, after half and after all of them,
  and the least-squares growth per cell over the second half.
  `--no-clear` runs the same grid without that (no `clear_session`, no
  unregistering), for the side-by-side.
- `chief`: a chief and two workers on loopback run 8 tiny cells, three
  times; in the second and third run one worker is killed (SIGKILL) in the
  middle of a cell, which the other worker then runs with the rest. The
  figures are the seconds from the last cell's record to the report and
  to the chief's exit.

Usage:
    python -m benchmarks.study_benchmark memory [--cells 120] [--no-clear]
    python -m benchmarks.study_benchmark chief
    python -m benchmarks.study_benchmark throughput [--rounds 3]
        (`benchmarks/study_throughput.py`: the quick lr grid grouped
        against one cell at a time, on TensorFlow and JAX)

Prints one JSON object.
"""

import argparse
import glob
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(dataset="digits", train_size=120, epochs=1, batch_size=40)


def memory(cells=120, clear=True, variants=("none", "bn")):
    import contextlib

    from studies.engine import cell_memory, records
    from studies.science.spec import make_spec
    from studies.surfaces import runner

    if not clear:  # what a cell leaves behind stays: the side-by-side
        cell_memory.freed_after = lambda clear=True: contextlib.nullcontext()
    seeds = max(cells // (6 * len(variants)), 1)
    spec = make_spec(
        "lr",
        variants=list(variants),
        lrs=[0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
        seeds=seeds,
        **TINY,
    )
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        runner.run(spec, out, stream=io.StringIO())
        seconds = time.perf_counter() - start
        found = sorted(records.read_all(out).values(), key=lambda r: r["finished_at"])
    result = {"cells": len(found), "freed": clear, "variants": list(variants)}
    for name in ("rss_mb", "peak_rss_mb"):
        values = np.array([r[name] for r in found])
        half = len(values) // 2
        slope = np.polyfit(np.arange(half, len(values)), values[half:], 1)[0]
        result[name] = {
            "after_10": round(float(values[9]), 1),
            "after_half": round(float(values[half - 1]), 1),
            "at_end": round(float(values[-1]), 1),
            "growth_per_cell_second_half": round(float(slope), 3),
        }
    result["eta"] = eta_errors(spec, found)
    return {**result, "seconds": round(seconds, 1)}


def eta_errors(spec, found):
    """How far the ETA is off, from the cells' measured costs: at 5%, 10%,
    25% and 50% of the grid, the estimate over the true remaining time, for
    this ETA (the remaining cells' costs by variant, cells handed out
    variant by variant) and the one before it (the mean cost so far times
    the cells left, cells in grid order: every `none` cell first)."""
    from studies.engine import progress
    from studies.engine.oracle import handout_order
    from studies.science.spec import cell_key

    cost = {cell_key(r["cell"]): r["seconds"] for r in found}
    ratios = {}
    for fraction in (0.05, 0.1, 0.25, 0.5):
        k = int(fraction * len(cost))
        new_order = [cell_key(c) for c in handout_order(spec)]
        done = {
            key: {"cell": r["cell"], "seconds": cost[key]}
            for key, r in ((cell_key(r["cell"]), r) for r in found)
            if key in new_order[:k]
        }
        true_new = sum(cost[key] for key in new_order[k:])
        old_order = [cell_key(c) for c in spec.cells()]
        true_old = sum(cost[key] for key in old_order[k:])
        mean_so_far = np.mean([cost[key] for key in old_order[:k]])
        ratios[f"{fraction:.0%}"] = {
            "now": round(progress.estimate_remaining(spec, done) / true_new, 2),
            "before": round(float(mean_so_far * (len(cost) - k) / true_old), 2),
        }
    return ratios


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _study(out, port):
    return [
        sys.executable,
        "-m",
        "studies",
        "lr",
        "--dataset",
        "digits",
        "--train-size",
        "120",
        "--epochs",
        "2",
        "--seeds",
        "2",
        "--batch-size",
        "20",
        "--variants",
        "none,layer-norm",
        "--lrs",
        "0.1,1",
        "--out",
        out,
        "--oracle-address",
        f"127.0.0.1:{port}",
    ]


def _holds_a_cell(out, pid):
    for path in glob.glob(os.path.join(out, "leases", "*.json")):
        try:
            with open(path) as f:
                if json.load(f).get("pid") == pid:
                    return True
        except (OSError, ValueError):
            continue
    return False


def chief_exit(kill_a_worker):
    """Seconds from the last cell's record to the chief's exit."""
    from studies.engine import records

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "study")
        study = _study(out, _free_port())

        def start(*role):
            return subprocess.Popen(
                [*study, *role],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        chief = start("--chief")
        workers = [start("--worker", "w1"), start("--worker", "w2")]
        if kill_a_worker:
            deadline = time.monotonic() + 300
            # a cell into the grid, so its lease is the one to hand out again
            while time.monotonic() < deadline and not (
                records.finished_keys(out) and _holds_a_cell(out, workers[0].pid)
            ):
                time.sleep(0.05)
            workers[0].send_signal(signal.SIGKILL)
        chief.wait(timeout=600)
        exited = time.time()
        for worker in workers:
            worker.wait(timeout=120)
        found = records.read_all(out)
        last = max(r["finished_at"] for r in found.values())
        report = os.path.join(out, "report.md")
        return {
            "cells": len(found),
            "chief_exit_code": chief.returncode,
            "report_written_after_s": round(os.path.getmtime(report) - last, 2),
            "exited_after_s": round(exited - last, 2),
        }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.study_benchmark")
    parser.add_argument("what", choices=("memory", "chief", "throughput"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--cells", type=int, default=120)
    parser.add_argument("--no-clear", action="store_true")
    parser.add_argument("--variants", default="none,bn")
    args = parser.parse_args(argv)
    if args.what == "throughput":
        from benchmarks.study_throughput import throughput

        options = []
        for name in ("epochs", "seeds"):
            if getattr(args, name) is not None:
                options += [f"--{name}", str(getattr(args, name))]
        result = throughput(args.rounds, args.backends.split(","), options)
    elif args.what == "memory":
        result = memory(args.cells, not args.no_clear, args.variants.split(","))
    else:
        result = {
            "all workers alive": chief_exit(False),
            "a worker killed mid-cell": [chief_exit(True) for _ in range(2)],
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
