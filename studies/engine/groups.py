"""Which cells train together (a cell group), and how many at once.

Cells fuse into one group when they share everything that decides the data
a step sees: the data, its order (the seed), the batch size and the step
budget. They may differ in what only the model and its optimizer see: the
normalization variant, the learning rate, the init family and scale, the
optimizer settings. Those are the `FUSABLE` settings; every other setting
is the group key.

Studies with step instruments run one cell at a time: the instruments
(`kbn.callbacks`, `studies.engine.instruments`) probe a cell's model between
steps with forward and backward passes of their own, and the landscape
probe takes extra training-mode steps on a copy of the model; in a group
they would run per member outside the fused step, costing what fusing
saves, so `fusable` says no and the tuner runs those cells as before. An
instrument read once after training (`AFTER_TRAINING`: batch noise) reads
each member's own trained model, and one read once when the model is built
(`AT_BUILD`: the gradient norms at initialization) each member's fresh
model (`CellHyperModel.build_cell`), so neither stops a cell from fusing.
"""

# what may differ between the members of one group
FUSABLE = (
    "variant",
    "lr",
    "init",
    "init_scale",
    "optimizer",
    "momentum",
    "weight_decay",
    "schedule",
    "warmup_fraction",
)
# what a re-initialized member takes from its own cell, not from the
# structure of the compiled step it reuses
REINITIALIZED = ("seed", "init", "init_scale")
# instruments read once from the trained model, not between steps
AFTER_TRAINING = ("batch_noise",)
# instruments read once from the freshly built model, before any step
AT_BUILD = ("init_grad_norms",)

DEFAULT_CAP = 32  # members per group: more only adds trace time on a CPU
MEMORY_SHARE = 0.25  # of the available memory a group's training may use
BYTES_PER_PARAMETER = 4 * 8  # float32 weight, gradient, optimizer slots, copies


def fusable(settings):
    """Whether a cell with `settings` can train in a group."""
    return set(settings.get("instruments") or ()) <= {*AFTER_TRAINING, *AT_BUILD}


def _without(settings, names):
    return tuple(sorted((k, repr(v)) for k, v in settings.items() if k not in names))


def key(settings):
    """The settings a group's members share (all but `FUSABLE`)."""
    return _without(settings, FUSABLE)


def structure(members):
    """What decides a group's traced step: each member's settings but those
    a re-initialization takes from the cell (the rate too, unless a
    schedule bakes it into the step)."""
    result = []
    for s in members:
        skip = REINITIALIZED
        if s.get("schedule", "constant") == "constant":
            skip += ("lr",)
        result.append(
            tuple(sorted((k, repr(v)) for k, v in s.items() if k not in skip))
        )
    return tuple(result)


def available_bytes():
    """Memory this process may still use (MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_size(parameters, batch_size, widest, available=None, backend=None):
    """Members per group when the user sets none.

    Args:
        parameters: One member's parameter count.
        batch_size: Examples per step.
        widest: Units of the widest activation (per example), for the
            activations a step keeps for its backward pass.
        available: Bytes of memory free (default: read from the system).
        backend: The Keras backend. On JAX the default is 1 (one cell at a
            time, its compiled step reused): XLA's compile time grows faster
            than the members, and on the quick `lr` grid (2 cores) a group of
            14 took 27 s to compile against 8 s for all 28 cells one at a
            time, and the whole study 55 s against 39 s.

    Returns:
        The cap (`DEFAULT_CAP`) or fewer, so that the group's weights,
        gradients, optimizer slots and activations fit in `MEMORY_SHARE` of
        the available memory; at least 1.
    """
    if backend == "jax":
        return 1
    available = available_bytes() if available is None else available
    if available is None:
        return DEFAULT_CAP
    per_member = parameters * BYTES_PER_PARAMETER + 4 * 16 * batch_size * widest
    fits = int(MEMORY_SHARE * available // max(per_member, 1))
    return max(1, min(DEFAULT_CAP, fits))
