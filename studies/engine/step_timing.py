"""Seconds per training step of each variant, measured in one process with
the variants interleaved (a study whose definition `times_steps`).

A cell's wall time mixes its step cost with what else the machine did
while it ran (another job, a compile, a report), and cells of different
variants run at different times. So after the cells, for each seed, this
builds every variant's model (the cell's own settings: its seed, its
tuned rate) in this one process, runs `WARMUP` steps of each (the
compiles), then `ROUNDS` rounds in which each variant in turn times
`STEPS` consecutive training steps, the order rotating by one each round
so no variant always goes first. A variant's seconds per step at that
seed is its median over the rounds: drift of the machine hits every
variant alike, and one slow round does not move it.

A step is `model.train_on_batch` on a batch of the cell's batch size from
the training split (the same batches for every variant): the compiled
train function `fit` runs, with the per-call conversion of a NumPy batch
that `fit`'s data adapter also does; callbacks and validation are not
included (they are the same for every variant).

The numbers go to the study folder's `timing.json` (`{"method", "rounds",
"steps", "warmup", "seconds_per_step": {variant: {seed: seconds}},
"rounds_seconds": the same with every round's value}`), written once; a
resumed study with every variant and seed in it keeps it.
"""

import json
import os
import time

import keras
import numpy as np

from studies import folder
from studies.engine.hypermodel import CellHyperModel
from studies.science import definitions, tuning

WARMUP = 5
ROUNDS = 5
STEPS = 20
METHOD = "interleaved_train_on_batch"


def wanted(spec):
    """Whether `spec`'s study times its steps."""
    return definitions.get(spec.study).times_steps


def read(study_dir):
    """The folder's `timing.json` (`{}` if there is none)."""
    path = folder.timing_path(study_dir)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def complete(spec, found):
    """Whether `found` (a `timing.json`) has every variant and seed of `spec`."""
    table = (found or {}).get("seconds_per_step") or {}
    return all(
        str(seed) in (table.get(variant) or {})
        for variant in spec.axes["variant"]
        for seed in spec.axes["seed"]
    )


def record(spec, study_dir, dataset, builder, stream=None):
    """Measures and writes `timing.json` if the study wants it and the folder
    has no complete one. `spec` is the main phase's (with its tuned rates,
    `phased_search.tuned_spec`)."""
    if not wanted(spec) or complete(spec, read(study_dir)):
        return
    if stream is not None:
        print(
            f"timing the training step of each variant, interleaved "
            f"({ROUNDS} rounds of {STEPS} steps per seed)",
            file=stream,
            flush=True,
        )
    found = measure(spec, dataset, builder)
    folder.write(folder.timing_path(study_dir), json.dumps(found, indent=2))


def measure(spec, dataset, builder, rounds=ROUNDS, steps=STEPS, warmup=WARMUP):
    """`timing.json`'s content for `spec` (see the module docstring)."""
    hypermodel = CellHyperModel(spec, dataset, builder)
    variants = list(spec.axes["variant"])
    medians, every = {v: {} for v in variants}, {v: {} for v in variants}
    for seed in spec.axes["seed"]:
        models, batches = {}, None
        for variant in variants:
            settings = spec.settings(_cell(spec, variant, seed))
            models[variant] = hypermodel.build_cell(settings)
            if batches is None:
                batches = _batches(dataset, settings["batch_size"], seed)
        for variant in variants:
            _steps(models[variant], batches, warmup)
        times = {v: [] for v in variants}
        for r in range(rounds):
            for variant in (
                variants[r % len(variants) :] + variants[: r % len(variants)]
            ):
                start = time.perf_counter()
                _steps(models[variant], batches, steps)
                times[variant].append((time.perf_counter() - start) / steps)
        for variant in variants:
            medians[variant][str(seed)] = float(np.median(times[variant]))
            every[variant][str(seed)] = times[variant]
        keras.backend.clear_session()
    return {
        "method": METHOD,
        "rounds": rounds,
        "steps": steps,
        "warmup": warmup,
        "seconds_per_step": medians,
        "rounds_seconds": every,
    }


def _cell(spec, variant, seed):
    """The main-phase cell of `variant` and `seed` (other axes: first value)."""
    cell = {name: values[0] for name, values in spec.axes.items()}
    cell.update(variant=variant, seed=seed)
    cell.pop(tuning.PHASE, None)
    return cell


def _batches(dataset, batch_size, seed, count=64):
    """Up to `count` training batches of `batch_size`, the same for every variant."""
    order = np.random.default_rng(seed).permutation(len(dataset.x_train))
    batch_size = min(batch_size, len(order))
    starts = range(0, len(order) - batch_size + 1, batch_size)
    return [
        (
            dataset.x_train[order[i : i + batch_size]],
            dataset.y_train[order[i : i + batch_size]],
        )
        for i in list(starts)[:count]
    ]


def _steps(model, batches, steps):
    """`steps` training steps of `model`, cycling through `batches`."""
    for i in range(steps):
        x, y = batches[i % len(batches)]
        model.train_on_batch(x, y)
