"""Every combination of options gives the same results on both paths.

The compiled TensorFlow kernels (`compile_moments=True`), what "auto" picks
at this size (the plain formulation) and the portable `keras.ops` path
(`False`) are run side by side over the grid of options that
change how statistics are computed, with the same seeds: outputs, gradients
and every moving statistic must agree.
"""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import to_numpy

import kbn

NOISES = {
    "none": None,
    "batch": lambda: kbn.noise.BatchStatistics(strength=0.5),
    "moving": lambda: kbn.noise.BatchStatistics(normalize_with="moving"),
    "adjustment": lambda: kbn.noise.Adjustment(),
    "covariate": lambda: kbn.noise.CovariateShift(),
}
GRID = list(
    itertools.product(
        [None, 3],  # virtual_batch_size (10 rows: ghosts of 3, 3, 2, 2)
        [0.9, None],  # momentum
        [False, True],  # unbiased_moving_variance
        sorted(NOISES),
        [-1, [1, 2]],  # axis
    )
)


def _run(compile_moments, virtual_batch_size, momentum, unbiased, noise, axis):
    keras.utils.set_random_seed(0)
    layer = kbn.BatchNormalization(
        axis=axis,
        momentum=momentum,
        virtual_batch_size=virtual_batch_size,
        unbiased_moving_variance=unbiased,
        noise=None if NOISES[noise] is None else NOISES[noise](),
        seed=7,
        compile_moments=compile_moments,
        gamma_initializer=keras.initializers.RandomUniform(0.5, 1.5, seed=1),
        beta_initializer=keras.initializers.RandomUniform(-0.5, 0.5, seed=2),
    )
    rng = np.random.default_rng(3)
    results = []
    for step in range(2):
        x = tf.constant(rng.normal(size=(10, 3, 2)) * 2 + step, tf.float32)
        dy = tf.constant(rng.normal(size=(10, 3, 2)), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * dy)
        grads = tape.gradient(loss, [x] + layer.trainable_weights)
        results += [to_numpy(g) for g in grads]
    results += [to_numpy(v) for v in layer.non_trainable_variables]
    results.append(to_numpy(layer(x, training=False)))
    return results


# Every 7th combination by default (each value of every option appears),
# alternately on the kernel (True) and on what "auto" picks at this size (the
# plain formulation); the whole grid on both with `-m slow`.
CASES = [
    pytest.param(
        compiled,
        *case,
        marks=()
        if i % 7 == 0 and compiled == (True, "auto")[i // 7 % 2]
        else (pytest.mark.slow),
    )
    for i, case in enumerate(GRID)
    for compiled in (True, "auto")
]


@pytest.mark.parametrize("compiled,vbs,momentum,unbiased,noise,axis", CASES)
def test_compiled_and_portable_paths_agree(
    compiled, vbs, momentum, unbiased, noise, axis
):
    got = _run(compiled, vbs, momentum, unbiased, noise, axis)
    portable = _run(False, vbs, momentum, unbiased, noise, axis)
    for a, b in zip(got, portable, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
