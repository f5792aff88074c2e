"""Trains a cell group: its members built (or the last group's compiled step
reused), fitted together, and each member's outcome as if it ran alone.

Compile once: a group whose members have the same structure as the last
group's (same variants, model, optimizer kinds and settings; see
`groups.structure`) reuses that group's `GroupModel`, whose traced and
compiled step Keras keeps. Each member's weights and optimizer state are
re-initialized from its own cell: a fresh model is built from the cell's
seed (cheap: no trace, no compile) and its variables, and those of a fresh
optimizer, are copied in. A one-member group is the one-at-a-time path,
reusing its compiled step the same way.
"""

import time

import keras

from studies.engine import budget, groups
from studies.engine.callbacks import StepBudget
from studies.engine.fused_model import GroupModel
from studies.engine.fused_optimizer import GroupOptimizer
from studies.engine.member_events import MemberEvents


class AllStopped(keras.callbacks.Callback):
    """Stops the group's fit once every member has stopped (diverged)."""

    def __init__(self, events):
        super().__init__()
        self.events = events

    def on_train_batch_end(self, batch, logs=None):
        if all(event.stopped for event in self.events):
            self.model.stop_training = True


class EpochClock(keras.callbacks.Callback):
    """When each epoch of the group's fit ended (for where the time goes)."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())

    def seconds(self):
        """`(first epoch, later epochs)`: the first holds the trace and compile."""
        if not self.ends:
            return 0.0, 0.0
        return self.ends[0] - self.start, self.ends[-1] - self.ends[0]


class CompiledGroups:
    """The compiled `GroupModel`s of the last few group structures, kept for
    the next group of the same structure. Several, not one: one cell at a
    time (`--fuse 1`) alternates the variants (`oracle.handout_order`), and a
    grid cut into groups alternates a full group and a shorter last one.

    Args:
        size: Structures kept (the least recently used goes first).
    """

    def __init__(self, size=4):
        self.size = size
        self._groups = {}

    def get(self, key):
        group = self._groups.pop(key, None)
        if group is not None:
            self._groups[key] = group  # most recently used last
        return group

    def keep(self, key, group):
        self._groups[key] = group
        while len(self._groups) > self.size:
            self._groups.pop(next(iter(self._groups)))

    def clear(self):
        self._groups.clear()


def _copy(targets, sources):
    for target, source in zip(targets, sources, strict=True):
        target.assign(source.value)


def _prime(member, x, y):
    """Builds a member's loss and metric state (Keras builds them lazily,
    and a JAX step can only update state that exists before it is traced)."""
    outputs = member(x, training=False)
    member.compute_loss(x, y, outputs, training=False)
    member.compute_metrics(x, y, outputs, None)
    member.reset_metrics()


def build_group(hypermodel, settings, x, y):
    """A new compiled `GroupModel` for members with `settings` (a list)."""
    members = [hypermodel.build_cell(s) for s in settings]
    for member in members:
        _prime(member, x[:2], y[:2])
    threshold, relative, floor = hypermodel.divergence(settings[0])
    group = GroupModel(members, threshold, relative, floor)
    group(x[:2])
    group.compile(
        optimizer=GroupOptimizer(
            [m.optimizer for m in members],
            [m.trainable_variables for m in members],
            group.probes,
        )
    )
    group.optimizer.build(group.trainable_variables)
    return group


def reinitialize(group, hypermodel, settings):
    """Gives each member of `group` the weights and optimizer state a fresh
    build of its cell would have."""
    for member, s in zip(group.members, settings, strict=True):
        fresh = hypermodel.build_cell(s)
        fresh.optimizer.build(fresh.trainable_variables)
        _copy(member.variables, fresh.variables)
        _copy(member.optimizer.variables, fresh.optimizer.variables)
    group.optimizer.iterations.assign(0)
    group.restart()


def fit_group(hypermodel, settings, member_callbacks, x, y, validation_data, cache):
    """Trains the members with `settings` together.

    Returns:
        `(members, timing)`: each member's `(model, events)` (its trained
        model and its `MemberEvents`: history, divergence, steps), and the
        group's seconds: `build` (or re-initialize), `first_epoch` (trace,
        compile and the first epoch's steps and validation, or only those
        when the step was reused), `later_epochs`.

    Args:
        hypermodel: The study's `CellHyperModel`.
        settings: Each member's cell settings (one group: `groups.key` equal).
        member_callbacks: Each member's own callbacks.
        x, y: The training split; validation_data: `(x, y)` of validation.
        cache: The `CompiledGroups` of this process.
    """
    start = time.perf_counter()
    key = groups.structure(settings)
    group = cache.get(key)
    if group is None:
        group = build_group(hypermodel, settings, x, y)
        cache.keep(key, group)
    else:
        reinitialize(group, hypermodel, settings)
    events = [
        MemberEvents(i, member, callbacks)
        for i, (member, callbacks) in enumerate(
            zip(group.members, member_callbacks, strict=True)
        )
    ]
    first = settings[0]
    clock = EpochClock()
    built = time.perf_counter()
    group.fit(
        x,
        y,
        validation_data=validation_data,
        batch_size=first["batch_size"],
        epochs=budget.epochs_for(first, len(x)),
        callbacks=[
            *events,
            StepBudget(first.get("steps")),
            AllStopped(events),
            clock,
        ],
        verbose=0,
    )
    first_epoch, later = clock.seconds()
    timing = {"build": built - start, "first_epoch": first_epoch}
    timing["later_epochs"] = later
    return list(zip(group.members, events, strict=True)), timing
