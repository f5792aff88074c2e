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


class CompiledGroups:
    """The last group's compiled `GroupModel`, kept for the next group of the
    same structure (one at a time: a study's groups mostly share one)."""

    def __init__(self):
        self._key = None
        self._group = None

    def get(self, key):
        return self._group if key == self._key else None

    def keep(self, key, group):
        self._key, self._group = key, group

    def clear(self):
        self._key = self._group = None


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
    threshold, relative = hypermodel.divergence(settings[0])
    group = GroupModel(members, threshold, relative)
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
    """Trains the members with `settings` together and returns each one's
    `(model, events)`: its trained model and its `MemberEvents` (history,
    divergence, steps).

    Args:
        hypermodel: The study's `CellHyperModel`.
        settings: Each member's cell settings (one group: `groups.key` equal).
        member_callbacks: Each member's own callbacks.
        x, y: The training split; validation_data: `(x, y)` of validation.
        cache: The `CompiledGroups` of this process.
    """
    key = groups.structure(settings)
    group = cache.get(key)
    if group is None:
        cache.clear()  # the old group's memory goes before the new one is built
        keras.backend.clear_session(free_memory=True)
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
    group.fit(
        x,
        y,
        validation_data=validation_data,
        batch_size=first["batch_size"],
        epochs=budget.epochs_for(first, len(x)),
        callbacks=[*events, StepBudget(first.get("steps")), AllStopped(events)],
        verbose=0,
    )
    return list(zip(group.members, events, strict=True))
