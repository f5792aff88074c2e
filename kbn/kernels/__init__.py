"""Compiled batch-normalization kernels, one module per Keras backend.

`kbn.kernels.tensorflow` (XLA-compiled `tf.function`s with a hand-written
gradient) and `kbn.kernels.jax` (a `jax.custom_vjp` function with a
hand-written backward) provide the same functions: `batch_norm_train`,
`batch_moments` and `batch_norm_infer`. The layer picks a module with
`for_backend` and falls back to its portable `keras.ops` path (`kbn.moments`)
where there is none.
"""

import importlib

# Keras backends with a kernel module of the same name here.
BACKENDS = ("tensorflow", "jax")


def for_backend(name):
    """The kernel module for the Keras backend `name`, or None.

    Args:
        name: A Keras backend name (`keras.backend.backend()`).

    Returns:
        The module (imported on first use, so a backend's framework is only
        imported where it runs), or None for backends without kernels.
    """
    if name not in BACKENDS:
        return None
    return importlib.import_module(f"{__name__}.{name}")
