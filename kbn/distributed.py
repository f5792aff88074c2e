"""Cross-replica batch statistics for `synchronized=True` under `tf.distribute`.

TensorFlow-only, like Keras's own `synchronized` option. Unlike Keras 3's
path, a mask is honoured: the weighted sums are what gets all-reduced.

Known limitation (TF 2.21): a kbn layer with `synchronized=True` that is first
*built* inside `strategy.run` in a `tf.function` fails with "You must feed a
value for placeholder tensor 'cond/...'"; build it under `strategy.scope()`
first (Keras models built from an `Input`, and `model.fit`, always do).
"""

import tensorflow as tf

from kbn.moments import moment_sums, moments_from_sums, safe_divisor, weighted_sums


def replica_context():
    """The replica context when several replicas run in sync, else None."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync < 2:
        return None
    return ctx


def synchronized_moments(ctx, x, axes, weights=None):
    """Global mean, variance and count over all replicas (keepdims).

    Two collectives: the replicas' weights and weighted sums, whose ratio is
    a shift shared by every replica (the global mean: a replica with an empty
    batch contributes nothing, instead of a NaN mean), then one all-reduce of
    the three sums shifted by it.
    """
    total, weighted = ctx.all_reduce(
        tf.distribute.ReduceOp.SUM, list(weighted_sums(x, axes, weights))
    )
    shift = weighted / safe_divisor(total)
    # The shift is a constant (moment_sums stops its gradient); using the
    # all-reduced one directly would send a second gradient through it.
    shift, s0, s1, s2 = moment_sums(x, axes, weights, shift=shift)
    s0, s1, s2 = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [s0, s1, s2])
    mean, variance = moments_from_sums(shift, s0, s1, s2)
    return mean, variance, s0
