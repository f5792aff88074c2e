"""Several member models trained as one Keras model: one compiled step for a
cell group.

`GroupModel` holds the members (each a `keras.Model` from the study's
builder, compiled with its own loss, metric and optimizer) and trains them
with Keras's own `fit`, so the step is traced and compiled once for all of
them, on TensorFlow and JAX alike. The total loss is the sum of the members'
losses; no member's loss depends on another's weights, so each member's
gradients are those it would have alone. Each member keeps:

- its own optimizer (`fused_optimizer.GroupOptimizer` routes the
  gradients);
- its own loss and metric, reported as `m<i>/loss`, `m<i>/<metric>` (and
  `val_m<i>/...`): the same running means Keras reports for a model alone;
- its own divergence check, in the step: a batch loss that is NaN, inf or
  above the limit (the threshold, times the first finite batch loss for a
  relative one, at least the floor if there is one:
  `callbacks.divergence_limit`) freezes the member after that step, as a
  cell alone stops after it.
  A frozen member's weights, optimizer state and normalization statistics
  stay as they were after the step that diverged; `m<i>/alive` and
  `m<i>/steps` (the steps it took) say when.

The step counts and flags live in a metric (`MemberHealth`) that no epoch
resets, because under JAX a step can update only variables it is given: the
forward pass sees the non-trainable `alive` copy, the loss and metrics see
the metric, and the optimizer hears it through the probes' gradients.
"""

import keras
from keras import ops

from studies.engine.fused_optimizer import read


class MemberHealth(keras.metrics.Metric):
    """Per member: alive (1/0), steps taken, the first finite batch loss.

    Not reset between epochs or by validation (`reset_state` is a no-op);
    `restart` sets it up for a new group.
    """

    def __init__(self, size, name="member_health"):
        super().__init__(name=name)
        self.size = size
        self.alive = self.add_variable((size,), "ones", name="alive")
        self.steps = self.add_variable((size,), "zeros", name="steps")
        self.initial = self.add_variable((size,), "zeros", name="initial")
        self.seen = self.add_variable((size,), "zeros", name="seen")

    def update_state(self, *args, **kwargs):
        raise NotImplementedError("updated by GroupModel.compute_loss")

    def result(self):
        return self.alive.value

    def reset_state(self):
        pass  # a member's divergence outlives the epoch

    def restart(self):
        self.alive.assign(ops.ones((self.size,)))
        for variable in (self.steps, self.initial, self.seen):
            variable.assign(ops.zeros((self.size,)))


class GroupModel(keras.Model):
    """Trains `members` together, each as it would train alone.

    Args:
        members: Compiled member models (each with its own optimizer).
        threshold: The divergence threshold on a batch's loss.
        relative: The threshold multiplies the member's first finite batch
            loss.
        floor: The smallest limit, or None (classification: the threshold).
    """

    def __init__(self, members, threshold, relative=False, floor=None, name="group"):
        super().__init__(name=name)
        self.members = list(members)
        self.threshold = float(threshold)
        self.relative = bool(relative)
        self.floor = None if floor is None else float(floor)
        size = len(self.members)
        self.health = MemberHealth(size)
        self.alive = self.add_weight(
            shape=(size,), initializer="ones", trainable=False, name="alive"
        )
        self.probes = [
            self.add_weight(shape=(), initializer="zeros", name=f"probe_{i}")
            for i in range(size)
        ]

    def call(self, x, training=None):
        outputs = []
        for index, member in enumerate(self.members):
            state = member.non_trainable_variables if training else []
            before = [read(v) for v in state]
            outputs.append(member(x, training=training))
            keep = read(self.alive)[index] > 0.5
            # a frozen member's statistics stay as they were when it froze
            for variable, old in zip(state, before, strict=True):
                variable.assign(ops.where(keep, variable.value, old))
        return outputs

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        batch = ops.shape(keras.tree.flatten(x)[0])[0]
        losses = []
        for member, pred in zip(self.members, y_pred, strict=True):
            loss = member.compute_loss(x, y, pred, sample_weight, training=training)
            member._loss_tracker.update_state(loss, sample_weight=batch)
            losses.append(loss)
        alive = read(self.health.alive)  # before the check below assigns it
        if training:
            self._check_divergence(ops.stop_gradient(ops.stack(losses)), alive)
        probes = ops.stack([p.value for p in self.probes])
        # d(total)/d(probe_i) = alive_i: how the optimizer hears it
        return ops.sum(ops.stack(losses)) + ops.sum(probes * alive)

    def _check_divergence(self, losses, alive):
        """Freezes, after this step, each live member whose batch loss
        diverged (as `callbacks.DivergenceMonitor` stops a cell alone)."""
        health = self.health
        finite = ops.isfinite(losses)
        first = ops.logical_and(health.seen.value < 0.5, finite)
        initial = ops.where(first, ops.abs(losses), health.initial.value)
        seen = ops.where(finite, 1.0, health.seen.value)
        scale = ops.ones_like(losses)
        if self.relative:
            known = ops.logical_and(seen > 0.5, initial != 0)
            scale = ops.where(known, initial, 1.0)
        limit = self.threshold * scale
        if self.floor is not None:
            limit = ops.maximum(limit, self.floor)
        diverged = ops.logical_or(ops.logical_not(finite), losses > limit)
        still = ops.where(
            ops.logical_and(alive > 0.5, ops.logical_not(diverged)), 1.0, 0.0
        )
        health.initial.assign(initial)
        health.seen.assign(seen)
        health.steps.assign(health.steps.value + alive)
        health.alive.assign(still)
        self.alive.assign(still)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        logs = {}
        for index, (member, pred) in enumerate(zip(self.members, y_pred, strict=True)):
            if member._compile_metrics is not None:
                member._compile_metrics.update_state(y, pred, sample_weight)
            for name, value in member.get_metrics_result().items():
                logs[f"m{index}/{name}"] = value
            logs[f"m{index}/alive"] = self.health.alive.value[index]
            logs[f"m{index}/steps"] = self.health.steps.value[index]
        return logs

    @property
    def metrics(self):
        found = {}
        for metric in super().metrics + [
            m for member in self.members for m in member.metrics
        ]:
            found.setdefault(id(metric), metric)
        return list(found.values())

    def restart(self):
        """Every member alive again, no steps taken (a new group)."""
        self.health.restart()
        self.alive.assign(ops.ones((len(self.members),)))
