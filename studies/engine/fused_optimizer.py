"""One Keras optimizer that applies each member's own optimizer to its weights.

A cell group trains several member models in one compiled step
(`studies.engine.fused_model`). Keras gives a model one optimizer, so the
group's is a `GroupOptimizer`: it routes each member's gradients to that
member's optimizer (SGD, momentum, Adam, weight decay, a schedule: each
member's own, with its own state), so every member takes exactly the step
it would take alone. Scaling a shared optimizer's loss per member would be
exact for plain SGD only.

A member that diverged is frozen: its update is computed and then undone
(`where(alive, new, old)`), weights and optimizer state alike, so its NaNs
never reach a number that is kept. Whether a member is alive at the start of
a step reaches the optimizer as the gradient of the member's probe variable
(`fused_model.GroupModel` adds `probe * stop_gradient(alive)` to the loss),
because under JAX the optimizer runs stateless and sees only its own and the
trainable variables.
"""

import keras
from keras import ops


def read(variable):
    """A variable's value now. On TensorFlow `variable.value` is the variable
    itself, read where it is used, which may be after a later assignment;
    a copy is a read in program order."""
    return ops.copy(variable.value)


class GroupOptimizer(keras.optimizers.Optimizer):
    """Applies `members[i]` to the trainable variables of member `i`.

    Args:
        members: One Keras optimizer per member (unbuilt).
        member_variables: Per member, the list of its trainable variables.
        probes: Per member, its probe variable (never updated; its gradient
            is 1.0 while the member is alive, 0.0 once it is frozen).
    """

    def __init__(self, members, member_variables, probes, name="group"):
        super().__init__(learning_rate=0.0, name=name)
        # held outside Keras's attribute tracking, which would count the
        # members' weights and optimizers' variables as this optimizer's own
        self._routes = _Routes(members, member_variables, probes)

    @property
    def _members(self):
        return self._routes.members

    @property
    def _member_variables(self):
        return self._routes.variables

    @property
    def _probes(self):
        return self._routes.probes

    def build(self, variables):
        super().build(variables)
        for optimizer, member_vars in zip(
            self._members, self._member_variables, strict=True
        ):
            optimizer.build(member_vars)

    @property
    def variables(self):
        own = self._variables[:]
        return own + [v for m in self._members for v in m.variables]

    def member_state(self, index):
        """Everything a frozen member must keep: its weights and its
        optimizer's variables."""
        return self._member_variables[index] + self._members[index].variables

    def apply(self, grads, trainable_variables=None):
        variables = (
            self._trainable_variables
            if trainable_variables is None
            else list(trainable_variables)
        )
        if not self.built:
            self.build(variables)
        by_id = {id(v): g for v, g in zip(variables, grads, strict=True)}
        for index, optimizer in enumerate(self._members):
            alive = by_id[id(self._probes[index])]
            state = self.member_state(index)
            old = [read(v) for v in state]
            member_vars = self._member_variables[index]
            member_grads = [by_id[id(v)] for v in member_vars]
            # a frozen member's gradients may be NaN: zeros keep its (undone)
            # update finite; a live member's pass as they are, NaN included,
            # as they would alone
            member_grads = [
                ops.where(alive > 0.5, g, ops.zeros_like(g)) for g in member_grads
            ]
            optimizer.apply(member_grads, member_vars)
            for variable, before in zip(state, old, strict=True):
                variable.assign(ops.where(alive > 0.5, variable.value, before))
        self._iterations.assign_add(1)

    def get_config(self):
        raise NotImplementedError("a GroupOptimizer lives only while its group trains")


class _Routes:
    """The members' optimizers, weights and probes, untracked."""

    def __init__(self, members, variables, probes):
        self.members = list(members)
        self.variables = [list(v) for v in variables]
        self.probes = list(probes)
