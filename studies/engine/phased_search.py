"""A study's search in its phases: the learning-rate tuning, then its grid.

A study that tunes the rate per variant (`studies.science.tuning`) first
runs its tuning cells, a study of their own in the same folder (their keys
start `phase=tune`, Keras Tuner's project is `<study>-tune`), then reads
each variant's best rate from their records and runs its own grid at those
rates. Both phases are ordinary searches (`tuner.search_cells`): leases,
groups, faults and resuming work as in any study, and a resumed study whose
tuning has finished goes straight to its grid at the same rates (they are
a function of the finished records). A study without tuning is one search.
"""

from studies.engine import results, step_timing, tuner
from studies.science import tasks, tuning


class TuningIncomplete(RuntimeError):
    """The tuning phase ended with cells still unrecorded (a worker whose
    chief stopped early): the rates cannot be known yet."""


def search_study(spec, study_dir, dataset, builder, stream, run_id, **engine):
    """Runs this process's share of the study's phases (`tuner.search_cells`
    takes the `engine` settings)."""
    phase = tuning.tuning_spec(spec)
    if phase is not None:
        print(
            f"tuning the learning rate of each variant: {phase.size} cells over "
            + " x ".join(f"{len(v)} {k}" for k, v in phase.axes.items() if len(v) > 1),
            file=stream,
            flush=True,
        )
        tuner.search_cells(phase, study_dir, dataset, builder, stream, run_id, **engine)
        spec = tuned_spec(spec, study_dir, dataset.chance)
        print(f"tuned learning rates: {describe(spec)}", file=stream, flush=True)
    tuner.search_cells(spec, study_dir, dataset, builder, stream, run_id, **engine)


def time_steps(spec, study_dir, dataset, builder, stream):
    """The study's step timing (`step_timing.record`: a study that times its
    steps, once its cells have finished), at the main phase's rates."""
    if not step_timing.wanted(spec):
        return
    if tuning.tunes(spec):
        spec = tuned_spec(spec, study_dir, dataset.chance)
    step_timing.record(spec, study_dir, dataset, builder, stream)


def tuned_spec(spec, study_dir, chance):
    """`spec` with the rates its tuning phase found (`tuning.with_tuned`).

    Raises:
        TuningIncomplete: some tuning cell has no record yet.
    """
    phase = tuning.tuning_spec(spec)
    rows = results.rows(phase, study_dir)
    if len(rows) < phase.size:
        raise TuningIncomplete(
            f"{phase.size - len(rows)} of the {phase.size} tuning cells have no "
            "record yet; run the study again to finish them"
        )
    key = tasks.of(spec).key("val")
    tuned, _ = tuning.tuned_lrs(spec, rows, chance, key)
    return tuning.with_tuned(spec, tuned)


def describe(spec):
    """`none 0.1, bn 1` (per batch size: `bn 4:0.3 16:1`)."""
    parts = []
    for variant, rate in spec.fixed["tuned_lr"].items():
        if isinstance(rate, dict):
            rate = " ".join(f"{b}:{r:g}" for b, r in rate.items())
        else:
            rate = f"{rate:g}"
        parts.append(f"{variant} {rate}")
    return ", ".join(parts)
