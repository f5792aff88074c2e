"""kbn.noise: the injected noise has the published moments and obeys the rules."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

import kbn

N = 20000  # draws per moment estimate: standard errors of about 1%


def _draw_affine(model, count, n=N):
    seed = keras.random.SeedGenerator(0)
    gamma, beta = model.affine(
        np.ones(n, "float32"),
        np.zeros(n, "float32"),
        feature_shape=(n,),
        count=count,
        seed=seed,
    )
    return to_numpy(gamma), to_numpy(beta)


@pytest.mark.parametrize("strength,kurtosis,m", [(1.0, 0.0, 64), (0.5, 2.0, 256)])
def test_batch_statistics_noise_has_the_sampling_moments(strength, kurtosis, m):
    gamma, beta = _draw_affine(kbn.noise.BatchStatistics(strength, kurtosis), m)
    delta = -beta / gamma  # mean shift in units of the batch std
    eps = 1.0 / gamma - 1.0  # relative std perturbation
    assert abs(delta.mean()) < 4 * strength / np.sqrt(m * N)
    np.testing.assert_allclose(delta.std(), strength / np.sqrt(m), rtol=0.03)
    np.testing.assert_allclose(
        eps.std(), strength * np.sqrt((kurtosis + 2) / (4 * m)), rtol=0.03
    )


def test_batch_statistics_noise_shrinks_as_one_over_sqrt_m():
    small = _draw_affine(kbn.noise.BatchStatistics(), 32)
    large = _draw_affine(kbn.noise.BatchStatistics(), 128)
    ratio = (small[1] / small[0]).std() / (large[1] / large[0]).std()
    np.testing.assert_allclose(ratio, 2.0, rtol=0.05)


def test_covariate_shift_follows_santurkar_algorithm_1():
    units, per_unit = 400, 200
    model = kbn.noise.CovariateShift()
    a = np.zeros((2 * per_unit, units), "float32")
    a[per_unit:] = 1.0  # the second half reveals s + m, the first half m alone
    out = to_numpy(
        model.perturb_output(a, feature_axes=(1,), seed=keras.random.SeedGenerator(1))
    )
    m, s_plus_m = out[:per_unit], out[per_unit:]
    mu = m.mean(0)
    sigma = s_plus_m.mean(0) - mu
    se_mu = 0.2 / np.sqrt(12 * per_unit)
    assert np.all(np.abs(mu) <= 0.5 + 4 * se_mu)
    assert np.all((sigma >= 1 - 0.05) & (sigma <= 1.25 + 0.05))
    np.testing.assert_allclose(mu.std(), 1 / np.sqrt(12), rtol=0.12)  # U(-0.5, 0.5)
    np.testing.assert_allclose(sigma.mean(), 1.125, atol=0.01)  # U(1, 1.25)
    # Per element, m ~ U(mu - 0.1, mu + 0.1) and s ~ N(sigma, 0.1).
    assert np.all(np.abs(m - mu) <= 0.1 + 4 * se_mu)  # mu is itself estimated
    np.testing.assert_allclose((m - mu).std(), 0.2 / np.sqrt(12), rtol=0.03)
    np.testing.assert_allclose(
        (s_plus_m - s_plus_m.mean(0)).std(), np.sqrt(0.1**2 + 0.2**2 / 12), rtol=0.03
    )


def test_adjustment_draws_uniform_scale_and_shift():
    gamma, beta = _draw_affine(kbn.noise.Adjustment(0.07, 0.1), 10)
    assert gamma.min() >= 0.93 - 1e-6 and gamma.max() <= 1.07 + 1e-6
    assert np.abs(beta).max() <= 0.1 + 1e-6
    np.testing.assert_allclose(gamma.std(), 0.14 / np.sqrt(12), rtol=0.03)
    np.testing.assert_allclose(beta.std(), 0.2 / np.sqrt(12), rtol=0.03)


ZERO_NOISE = [
    kbn.noise.BatchStatistics(strength=0.0),
    kbn.noise.CovariateShift(0.0, 1.0, 0.0, 0.0),
    kbn.noise.Adjustment(0.0, 0.0),
]
NOISES = [
    "batch_statistics",
    "covariate_shift",
    "adjustment",
    kbn.noise.BatchStatistics(normalize_with="moving"),
]


def _x(seed=0, shape=(32, 4, 6)):
    return (np.random.default_rng(seed).normal(size=shape) * 2 + 1).astype("float32")


@pytest.mark.parametrize("noise", ZERO_NOISE, ids=lambda n: type(n).__name__)
def test_zero_strength_noise_gives_identical_outputs(noise):
    plain = kbn.BatchNormalization()
    noisy = kbn.BatchNormalization(noise=noise, seed=1)
    for seed in range(2):
        x = _x(seed)
        np.testing.assert_array_equal(
            to_numpy(noisy(x, training=True)), to_numpy(plain(x, training=True))
        )


@pytest.mark.parametrize("noise", NOISES, ids=str)
def test_noise_is_training_only_and_never_reaches_moving_statistics(noise):
    plain = kbn.BatchNormalization(momentum=0.7)
    noisy = kbn.BatchNormalization(momentum=0.7, noise=noise, seed=2)
    for seed in range(4):
        x = _x(seed)
        y_noisy = to_numpy(noisy(x, training=True))
        y_plain = to_numpy(plain(x, training=True))
        assert np.abs(y_noisy - y_plain).max() > 1e-3  # the noise is really there
    for a, b in zip(
        noisy.non_trainable_weights, plain.non_trainable_weights, strict=False
    ):
        if "seed" not in a.name:
            np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6)
    x = _x(9)
    # Equal to float32 rounding: "moving" mode gathers the batch moments on the
    # portable path, the plain layer in the compiled kernel.
    np.testing.assert_allclose(to_numpy(noisy(x)), to_numpy(plain(x)), atol=2e-6)
    np.testing.assert_array_equal(to_numpy(noisy(x)), to_numpy(noisy(x)))


@pytest.mark.parametrize("noise", NOISES[:3])
def test_seeds_make_noise_reproducible_and_layers_differ(noise):
    x = _x()
    a = to_numpy(kbn.BatchNormalization(noise=noise, seed=3)(x, training=True))
    b = to_numpy(kbn.BatchNormalization(noise=noise, seed=3)(x, training=True))
    c = to_numpy(kbn.BatchNormalization(noise=noise, seed=4)(x, training=True))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    keras.utils.set_random_seed(0)
    first, second = (
        kbn.BatchNormalization(noise=noise),
        kbn.BatchNormalization(noise=noise),
    )
    assert (
        np.abs(
            to_numpy(first(x, training=True)) - to_numpy(second(x, training=True))
        ).max()
        > 1e-3
    )


def test_seed_on_the_noise_object_is_used_when_the_layer_has_none():
    x = _x()
    outs = [
        to_numpy(
            kbn.BatchNormalization(noise=kbn.noise.Adjustment(seed=8))(x, training=True)
        )
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*outs)


@pytest.mark.parametrize("noise", NOISES[:3])
def test_compiled_and_portable_paths_draw_the_same_noise(noise):
    x = _x()
    compiled = kbn.BatchNormalization(noise=noise, seed=6, compile_moments="auto")
    portable = kbn.BatchNormalization(noise=noise, seed=6, compile_moments=False)
    for _ in range(2):
        np.testing.assert_allclose(
            to_numpy(compiled(x, training=True)),
            to_numpy(portable(x, training=True)),
            atol=1e-5,
        )


def test_noise_models_round_trip_through_config():
    for model in [
        kbn.noise.BatchStatistics(0.3, 1.0, "moving", seed=2),
        kbn.noise.CovariateShift(0.2, 1.5, 0.05, 0.2),
        kbn.noise.Adjustment(0.1, 0.2, seed=1),
    ]:
        layer = kbn.BatchNormalization(noise=model)
        clone = kbn.BatchNormalization.from_config(layer.get_config())
        assert clone.noise == model
        assert kbn.noise.get(model.id) == type(model)()


BAD = [
    (kbn.noise.BatchStatistics, dict(strength=-1), "strength"),
    (kbn.noise.BatchStatistics, dict(kurtosis=-3), "kurtosis"),
    (kbn.noise.BatchStatistics, dict(normalize_with="population"), "normalize_with"),
    (kbn.noise.CovariateShift, dict(mean_range=-0.1), "mean_range"),
    (kbn.noise.CovariateShift, dict(scale_max=0.9), "scale_max"),
    (kbn.noise.CovariateShift, dict(mean_jitter=-1), "mean_jitter"),
    (kbn.noise.CovariateShift, dict(scale_jitter=float("nan")), "scale_jitter"),
    (kbn.noise.Adjustment, dict(scale_range=-0.1), "scale_range"),
    (kbn.noise.Adjustment, dict(scale_range=1.0), "scale_range"),
    (kbn.noise.Adjustment, dict(shift_range=-0.1), "shift_range"),
    (kbn.noise.Adjustment, dict(seed=1.5), "seed"),
]


@pytest.mark.parametrize("cls,kwargs,name", BAD)
def test_bad_noise_parameters_name_themselves(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


def test_unknown_noise_id():
    with pytest.raises(ValueError, match="noise.*gaussian"):
        kbn.noise.get("gaussian")
