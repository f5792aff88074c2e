"""Cross-replica batch statistics for `synchronized=True` under `tf.distribute`.

TensorFlow-only, like Keras's own `synchronized` option. Unlike Keras 3's
path, a mask is honoured: the weighted sums are what gets all-reduced.

Known limitation (TF 2.21): a kbn layer with `synchronized=True` that is first
*built* inside `strategy.run` in a `tf.function` fails with "You must feed a
value for placeholder tensor 'cond/...'"; build it under `strategy.scope()`
first (Keras models built from an `Input`, and `model.fit`, always do).
"""

import tensorflow as tf

from kbn.moments import moment_sums, moments_from_sums, weighted_mean


def replica_context():
    """The replica context when several replicas run in sync, else None."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync < 2:
        return None
    return ctx


def synchronized_moments(ctx, x, axes, weights=None):
    """Global mean, variance and count over all replicas (keepdims).

    Two collectives: a shared shift (the mean of the replicas' local means)
    so every replica accumulates around the same point, then one all-reduce
    of the three shifted sums.
    """
    if weights is None:
        # Count with a float sum, not the dynamic (int32) shape, which a
        # collective in tf.function on MirroredStrategy cannot capture.
        weights = tf.ones_like(x)
    local_shift = weighted_mean(x, axes, weights)
    shift = _sum(ctx, local_shift) / ctx.num_replicas_in_sync
    _, s0, s1, s2 = moment_sums(x, axes, weights, shift=shift)
    s0, s1, s2 = _sum(ctx, s0), _sum(ctx, s1), _sum(ctx, s2)
    mean, variance = moments_from_sums(shift, s0, s1, s2)
    return mean, variance, s0


def _sum(ctx, t):
    # One tensor per collective, as Keras does: batched or MEAN all-reduces
    # fail inside tf.function on MirroredStrategy (TF 2.21).
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, t)
