"""Monte-Carlo batch normalization: predictive uncertainty from BN's noise."""

import contextlib
import math

import keras
import numpy as np

from kbn import noise as noise_lib
from kbn.batch_normalization import BatchNormalization


@contextlib.contextmanager
def _sampling(layers, seed, batch_size):
    """Makes each layer sample its noise at inference, and restores it after."""
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=len(layers))
    previous = [layer.inference_noise for layer in layers]
    for layer, layer_seed in zip(layers, seeds, strict=True):
        layer.inference_noise = noise_lib.Sampling(
            model=layer.noise or noise_lib.BatchStatistics(),
            seed=keras.random.SeedGenerator(int(layer_seed)),
            samples=_samples_per_statistic(layer, batch_size),
        )
    try:
        yield
    finally:
        for layer, before in zip(layers, previous, strict=True):
            layer.inference_noise = before


def _samples_per_statistic(layer, batch_size):
    """M in examples: a Ghost BN layer's statistics see one ghost batch."""
    if layer.virtual_batch_size is None:
        return float(batch_size)
    ghosts = math.ceil(batch_size / layer.virtual_batch_size)
    return batch_size / ghosts


def mc_predict(model, x, samples=32, batch_size=None, seed=None):
    """Monte-Carlo BN predictions: mean and standard deviation over noisy passes.

    Every `kbn.BatchNormalization` layer in `model` normalizes with its moving
    statistics and samples its noise model at inference (layers without one
    sample `kbn.noise.BatchStatistics()`: the noise of batch statistics over
    `M` values per feature, M given by `batch_size`, or by the size of a
    ghost batch for a Ghost BN layer, and the same for every chunk, a short
    last one included), so the spread of the
    predictions reflects BN's own stochasticity (Teye et al. 2018). Moving
    statistics are untouched.

    Args:
        model: A Keras model containing at least one `kbn.BatchNormalization`.
        x: Input array (or a structure the model accepts) with a batch axis.
        samples: Number of noisy forward passes (>= 2).
        batch_size: Examples per forward pass, and so the `M` of
            batch-statistics noise (default 32, or all of `x` if fewer).
        seed: Optional integer seed for reproducible samples.

    Returns:
        `(mean, std)`: NumPy arrays of the model's output shape, the mean and
        standard deviation over `samples` passes.
    """
    layers = [la for la in _walk(model) if isinstance(la, BatchNormalization)]
    if not layers:
        raise ValueError(
            "mc_predict needs a model with at least one kbn.BatchNormalization "
            f"layer; {model.name!r} has none."
        )
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(
            f"Argument `samples` must be an integer >= 2. Received: samples={samples!r}"
        )
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(
            "Argument `batch_size` must be a positive integer or None. "
            f"Received: batch_size={batch_size!r}"
        )
    n = len(keras.tree.flatten(x)[0])
    batch_size = min(batch_size or 32, n)
    draws = []
    with _sampling(layers, seed, batch_size):
        for _ in range(samples):
            chunks = [
                keras.ops.convert_to_numpy(model(batch, training=False))
                for batch in _batches(x, n, batch_size)
            ]
            draws.append(np.concatenate(chunks))
    draws = np.stack(draws)
    return draws.mean(axis=0), draws.std(axis=0)


def _batches(x, n, batch_size):
    for start in range(0, n, batch_size):
        stop = start + batch_size
        yield keras.tree.map_structure(lambda a: a[start:stop], x)  # noqa: B023


def _walk(model):
    return model._flatten_layers(include_self=True, recursive=True)
