"""Frees what a cell's model leaves in the process, so memory stays flat.

`keras.backend.clear_session` drops Keras's global state, but not all of a
model's traced graphs: in graph mode, every `tf.custom_gradient` call
registers its gradient function in TensorFlow's global gradient registry
under a fresh name (`CustomGradient-<n>`), and that function holds the graph
it was traced in. Nothing ever removes it, so the graph stays alive for the
life of the process.

kbn no longer does this (its kernels register their gradients once per
process, `kbn.kernels.registered_gradient`), but Keras and TensorFlow still
leave one such entry per model, even a model without normalization, and it
holds that model's whole training graph. Measured
(`python -m benchmarks.leak_benchmark`, 50 models of the studies' MLP, 2
shared cores, 2026-12-03): resident memory grew 1.2 MB per model without
normalization, 3.3 with the stock layer and 5.2 with kbn (whose traced steps
have more ops) when those entries stay; see `benchmarks/results/leak.md` for
the figures with them dropped.

A cell's model is gone when the cell ends, so the gradients it registered
can go too. Only `CustomGradient-*` names registered during the cell are
dropped.
"""

import contextlib

import keras


def _custom_gradients():
    """TensorFlow's gradient registry (a dict), or None when it is not there
    (another backend, or a TensorFlow that keeps it elsewhere)."""
    if keras.config.backend() != "tensorflow":
        return None
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry
    except (ImportError, AttributeError):
        return None
    return registry if isinstance(registry, dict) else None


@contextlib.contextmanager
def freed_after(clear=True):
    """Runs a cell: a cleared Keras session before it (unless `clear` is
    False: a cell group keeps the last group's compiled step), and its
    custom gradients unregistered after it."""
    if clear:
        keras.backend.clear_session(free_memory=True)
    registry = _custom_gradients()
    before = set(registry) if registry is not None else set()
    try:
        yield
    finally:
        if registry is not None:
            for name in [n for n in registry if n not in before]:
                if name.startswith("CustomGradient-"):
                    del registry[name]
