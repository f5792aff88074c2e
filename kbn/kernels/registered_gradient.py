"""TensorFlow custom gradients registered once, not once per traced graph.

`tf.custom_gradient` in graph mode registers its gradient function in
TensorFlow's global gradient registry under a fresh name every time a graph
calls it (`CustomGradient-<n>`), and that function's closure holds the graph
it was traced in; nothing removes it and `clear_session` does not free it. A
layer traced in every model's training, evaluation and prediction step leaks
each of those graphs for the life of the process (issue 24 measured 26
entries per 6-layer model, 13 MB).

`differentiable` gives the same behaviour with one registration per function
it makes, made once when it is made (the kernels make one per parameter
shape and settings, cached): in graph mode the outputs and inputs go through
one `IdentityN` whose gradient is that registered function, which reads
everything from the op's own inputs and so holds no graph; a tape is told
directly (`record_operation`, as `tf.custom_gradient` does), with a closure
that lives only as long as the tape. In eager mode it is `tf.custom_gradient`
(which registers nothing there).
"""

import itertools

import tensorflow as tf
from tensorflow.python.eager import record
from tensorflow.python.framework import ops

_ids = itertools.count()


def differentiable(compute, gradient, outputs):
    """A function `compute` with the hand-written gradient `gradient`.

    Args:
        compute: `compute(*inputs)` -> a tuple of `outputs` tensors. Its own
            ops are never differentiated (it should stop gradients at its
            inputs).
        gradient: `gradient(inputs, results, upstream)` -> one gradient (or
            None) per input, from the lists of inputs, of the results and of
            the upstream gradients of the results (None where a result is
            unused). It may itself call functions made here (higher orders).
        outputs: The number of results.

    Returns:
        A function of the inputs returning the results as a list.
    """
    name = f"KbnGradient-{next(_ids)}"

    @ops.RegisterGradient(name)
    def _registered(op, *upstream):
        results, inputs = list(op.inputs[:outputs]), list(op.inputs[outputs:])
        grads = gradient(inputs, results, list(upstream[:outputs]))
        return [None] * outputs + list(grads)

    @tf.custom_gradient
    def eager(*inputs):
        results = compute(*inputs)
        return results, lambda *up: list(
            gradient(list(inputs), list(results), list(up))
        )

    def call(*inputs):
        if tf.executing_eagerly():
            return list(eager(*inputs))
        inputs = [tf.convert_to_tensor(t) for t in inputs]
        results = list(compute(*inputs))
        originals = results + inputs
        graph = tf.compat.v1.get_default_graph()
        with graph.gradient_override_map({"IdentityN": name}):
            passed = tf.identity_n(originals)

        def on_tape(*upstream):
            grads = gradient(inputs, results, list(upstream[:outputs]))
            return [None] * outputs + list(grads)

        record.record_operation(name, passed, originals, on_tape)
        return passed[:outputs]

    return call
