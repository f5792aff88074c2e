"""A group's Keras callback events, replayed to each member as if it trained alone.

A cell group trains its members in one `fit` (`studies.engine.fused_model`);
each member still has its own callbacks (its TensorBoard run and HParams
session, whatever the study adds). `MemberEvents` forwards the group's
events to one member's callbacks with that member's logs (`m<i>/loss` read
as `loss`), and keeps the member's history. A member that diverges stops
there, as a cell alone does: the epoch it diverged in ends with the running
means of the batch it diverged at and the validation Keras runs after that
epoch (the member was frozen from the next step on, so that validation sees
the weights it would see alone); no event reaches it after that epoch.
"""

import keras

# what the group step reports per member beyond the member's own logs
_HEALTH = ("alive", "steps")


class MemberEvents(keras.callbacks.Callback):
    """Forwards the group's callback events to member `index`'s callbacks.

    Args:
        index: The member's position in the group.
        member: The member's model (the callbacks' `model`).
        callbacks: The member's own callbacks.

    Attributes:
        history: The member's epoch logs, as `History.history`.
        diverged: Whether the member froze after a diverging batch.
        steps_run: Optimizer steps the member took.
    """

    def __init__(self, index, member, callbacks=()):
        super().__init__()
        self.index = index
        self.member = member
        self.callbacks = keras.callbacks.CallbackList(list(callbacks), model=member)
        self.history = {}
        self.diverged = False
        self.steps_run = 0
        self._done = False
        self._frozen = None  # the train logs at the batch it diverged

    def _mine(self, logs):
        """The member's logs out of the group's, keys as a model alone has them."""
        own, val = f"m{self.index}/", f"val_m{self.index}/"
        mine = {}
        for key, value in (logs or {}).items():
            if key.startswith(own):
                name = key[len(own) :]
            elif key.startswith(val):
                name = "val_" + key[len(val) :]
            else:
                continue
            mine[name] = float(value)
        return mine

    def on_train_begin(self, logs=None):
        self.callbacks.on_train_begin()

    def on_epoch_begin(self, epoch, logs=None):
        if not self._done:
            self.callbacks.on_epoch_begin(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if not self._done and self._frozen is None:
            self.callbacks.on_train_batch_begin(batch)

    def on_train_batch_end(self, batch, logs=None):
        if self._done or self._frozen is not None:
            return
        mine = self._mine(logs)
        self.steps_run = int(mine.get("steps", self.steps_run))
        train = {k: v for k, v in mine.items() if k not in _HEALTH}
        self.callbacks.on_train_batch_end(batch, train)
        if mine.get("alive", 1.0) < 0.5:
            self.diverged = True
            self._frozen = train

    def on_test_begin(self, logs=None):
        if not self._done:
            self.callbacks.on_test_begin()

    def on_test_end(self, logs=None):
        if not self._done:
            self.callbacks.on_test_end(self._mine(logs))

    def on_epoch_end(self, epoch, logs=None):
        if self._done:
            return
        mine = self._mine(logs)
        epoch_logs = {k: v for k, v in mine.items() if k not in _HEALTH}
        if self._frozen is not None:
            epoch_logs.update(self._frozen)
        for key, value in epoch_logs.items():
            self.history.setdefault(key, []).append(value)
        self.callbacks.on_epoch_end(epoch, epoch_logs)
        if self._frozen is not None:
            self._finish()

    def on_train_end(self, logs=None):
        if not self._done:
            self._finish()

    def _finish(self):
        self._done = True
        self.callbacks.on_train_end()

    @property
    def stopped(self):
        """Whether the member needs no more steps (it diverged)."""
        return self._frozen is not None
