"""Frees what a cell's model leaves in the process, so memory stays flat.

`keras.backend.clear_session` drops Keras's global state, but not all of a
model's traced graphs: in graph mode, every `tf.custom_gradient` call
registers its gradient function in TensorFlow's global gradient registry
under a fresh name (`CustomGradient-<n>`), and that function holds the graph
it was traced in. Nothing ever removes it, so each model keeps its training
and prediction graphs alive for the life of the process. Stock Keras traces
2 such gradients per model; kbn's kernel 1 per layer per trace. Measured
(`benchmarks/study_benchmark.py memory`) the peak resident memory grew by
about 7.7 MB per cell without this.

A cell's model is gone when the cell ends, so the gradients it registered
can go too. Only names registered during the cell are dropped.
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
