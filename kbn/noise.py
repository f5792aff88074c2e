"""Regularization as noise: principled, seeded, training-only noise for BN.

Batch normalization regularizes because its batch statistics are noisy; these
models let that noise be controlled directly. Each is a small serializable
object that knows nothing of the statistics kernel: the layer hands it the
scale `gamma` and offset `beta` to perturb (noise on the normalized values
folds exactly into them) or its output, and a seed generator.

Models:

- `BatchStatistics` (`"batch_statistics"`): the sampling noise of the batch
  mean and standard deviation for a batch of `M` values per feature.
- `CovariateShift` (`"covariate_shift"`): Santurkar et al. 2018's "noisy
  BatchNorm", a random per-unit, per-step shift and scale of the output.
- `Adjustment` (`"adjustment"`): tf-keras's `adjustment` example, a random
  per-feature scale and shift of the normalized values.

All are applied only in training mode; inference is deterministic.
"""

import dataclasses
import math

import keras
from keras import ops

_NORMALIZE_WITH = ("batch", "moving")


class NoiseModel:
    """Base class: a noise model perturbs BN's affine transform or its output.

    Subclasses override `affine` (noise on the normalized values, folded into
    `gamma` and `beta`) and/or `perturb_output` (noise on the layer's output).
    """

    id = None
    normalize_with = "batch"

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(
                f"Argument `seed` must be an integer or None. Received: seed={seed!r}"
            )
        self.seed = seed

    def affine(self, gamma, beta, *, feature_shape, count, seed):
        """Returns the effective `(gamma, beta)` for this step.

        Args:
            gamma: Scale variable or None (no scale).
            beta: Offset variable or None (no centre).
            feature_shape: Shape of the per-feature parameters.
            count: Values reduced per feature statistic (M).
            seed: A `keras.random.SeedGenerator`.
        """
        return gamma, beta

    def perturb_output(self, outputs, *, feature_axes, seed):
        """Returns the layer output with this model's output noise."""
        return outputs

    def get_config(self):
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="kbn")
class BatchStatistics(NoiseModel):
    """The sampling noise of batch statistics, at a strength you choose.

    Per feature and per step, the mean and standard deviation used to
    normalize are perturbed as the statistics of a batch of `M` values would
    be (M = values reduced per feature, or per ghost batch with Ghost BN):

        mean' = mean + std * delta,   delta ~ N(0, strength^2 / M)
        std'  = std * (1 + eps),      eps ~ N(0, strength^2 (kurtosis + 2) / (4 M))

    so `xhat' = (xhat - delta) / (1 + eps)`. `1 + eps` is clipped at 0.1 so a
    tiny `M` cannot flip the sign. `strength=1` doubles the noise the batch
    already has; `normalize_with="moving"` normalizes with the moving
    statistics plus this noise instead, which gives BN's noise without its
    dependence on the other examples in the batch (Shekhovtsov & Flach 2018).

    Args:
        strength: Noise standard deviation in units of the batch's own (>= 0).
        kurtosis: Excess kurtosis assumed for the features (>= -2; 0 for
            Gaussian features).
        normalize_with: `"batch"` or `"moving"` statistics.
        seed: Optional integer seed (used when the layer has none).

    Reference:
        - [Shekhovtsov and Flach, 2018](https://arxiv.org/abs/1809.09393).
        - [Teye et al., 2018](https://arxiv.org/abs/1802.06455).
    """

    id = "batch_statistics"

    def __init__(self, strength=1.0, kurtosis=0.0, normalize_with="batch", seed=None):
        super().__init__(seed)
        _check_at_least("strength", strength, 0.0)
        _check_at_least("kurtosis", kurtosis, -2.0)
        if normalize_with not in _NORMALIZE_WITH:
            raise ValueError(
                "Argument `normalize_with` must be 'batch' or 'moving'. "
                f"Received: normalize_with={normalize_with!r}"
            )
        self.strength = float(strength)
        self.kurtosis = float(kurtosis)
        self.normalize_with = normalize_with

    def affine(self, gamma, beta, *, feature_shape, count, seed):
        dtype = _dtype_of(gamma, beta)
        count = ops.cast(count, dtype)
        mean_std = self.strength / ops.sqrt(count)
        scale_std = self.strength * ops.sqrt((self.kurtosis + 2.0) / (4.0 * count))
        delta = keras.random.normal(feature_shape, seed=seed, dtype=dtype) * mean_std
        draw = keras.random.normal(feature_shape, seed=seed, dtype=dtype)
        stretch = ops.maximum(1.0 + draw * scale_std, 0.1)
        gamma = _ones_if_none(gamma, feature_shape, dtype) / stretch
        return gamma, _zeros_if_none(beta, feature_shape, dtype) - gamma * delta

    def get_config(self):
        return {
            "strength": self.strength,
            "kurtosis": self.kurtosis,
            "normalize_with": self.normalize_with,
            **super().get_config(),
        }


@keras.saving.register_keras_serializable(package="kbn")
class CovariateShift(NoiseModel):
    """Santurkar et al.'s "noisy BatchNorm": random shift and scale after BN.

    Exactly Algorithm 1 of the paper, applied to the layer's output `a`. Per
    unit and per step draw `mu ~ U(-mean_range, mean_range)` and
    `sigma ~ U(1, scale_max)`; per element draw
    `m ~ U(mu - mean_jitter, mu + mean_jitter)` and `s ~ N(sigma, scale_jitter)`;
    output `s * a + m`. For conv inputs the spatial positions count as batch
    elements. It makes each layer's input distribution shift from step to
    step, which is the point: BN still trains well under it.

    Args:
        mean_range: Half-width of the per-unit mean shift (>= 0).
        scale_max: Upper bound of the per-unit scale (>= 1).
        mean_jitter: Half-width of the per-element shift around `mu` (>= 0).
        scale_jitter: Std of the per-element scale around `sigma` (>= 0).
        seed: Optional integer seed (used when the layer has none).

    Reference:
        - [Santurkar et al., 2018](https://arxiv.org/abs/1805.11604).
    """

    id = "covariate_shift"

    def __init__(
        self,
        mean_range=0.5,
        scale_max=1.25,
        mean_jitter=0.1,
        scale_jitter=0.1,
        seed=None,
    ):
        super().__init__(seed)
        _check_at_least("mean_range", mean_range, 0.0)
        _check_at_least("scale_max", scale_max, 1.0)
        _check_at_least("mean_jitter", mean_jitter, 0.0)
        _check_at_least("scale_jitter", scale_jitter, 0.0)
        self.mean_range = float(mean_range)
        self.scale_max = float(scale_max)
        self.mean_jitter = float(mean_jitter)
        self.scale_jitter = float(scale_jitter)

    def perturb_output(self, outputs, *, feature_axes, seed):
        shape = ops.shape(outputs)
        unit_shape = [shape[i] if i in feature_axes else 1 for i in range(len(shape))]
        dtype = "float64" if outputs.dtype == "float64" else "float32"
        mu = keras.random.uniform(
            unit_shape, -self.mean_range, self.mean_range, dtype=dtype, seed=seed
        )
        sigma = keras.random.uniform(
            unit_shape, 1.0, self.scale_max, dtype=dtype, seed=seed
        )
        jitter = keras.random.uniform(
            shape, -self.mean_jitter, self.mean_jitter, dtype=dtype, seed=seed
        )
        noise = keras.random.normal(shape, dtype=dtype, seed=seed)
        s = sigma + self.scale_jitter * noise
        a = ops.cast(outputs, dtype)
        return ops.cast(s * a + (mu + jitter), outputs.dtype)

    def get_config(self):
        return {
            "mean_range": self.mean_range,
            "scale_max": self.scale_max,
            "mean_jitter": self.mean_jitter,
            "scale_jitter": self.scale_jitter,
            **super().get_config(),
        }


@keras.saving.register_keras_serializable(package="kbn")
class Adjustment(NoiseModel):
    """A random per-feature scale and shift of the normalized values.

    Per feature and step, shared across the batch:
    `scale ~ U(1 - scale_range, 1 + scale_range)`,
    `shift ~ U(-shift_range, shift_range)`, applied as `xhat * scale + shift`
    before `gamma` and `beta` (tf-keras's `adjustment` example, which Keras 3
    dropped; this one is serializable).

    Args:
        scale_range: Half-width of the scale around 1, in `[0, 1)`.
        shift_range: Half-width of the shift (>= 0).
        seed: Optional integer seed (used when the layer has none).
    """

    id = "adjustment"

    def __init__(self, scale_range=0.07, shift_range=0.1, seed=None):
        super().__init__(seed)
        _check_at_least("scale_range", scale_range, 0.0)
        if float(scale_range) >= 1.0:
            raise ValueError(
                "Argument `scale_range` must be below 1 (the scale stays "
                f"positive). Received: scale_range={scale_range!r}"
            )
        _check_at_least("shift_range", shift_range, 0.0)
        self.scale_range = float(scale_range)
        self.shift_range = float(shift_range)

    def affine(self, gamma, beta, *, feature_shape, count, seed):
        r, s = self.scale_range, self.shift_range
        dtype = _dtype_of(gamma, beta)
        scale = keras.random.uniform(
            feature_shape, 1.0 - r, 1.0 + r, seed=seed, dtype=dtype
        )
        shift = keras.random.uniform(feature_shape, -s, s, seed=seed, dtype=dtype)
        gamma = _ones_if_none(gamma, feature_shape, dtype)
        beta = _zeros_if_none(beta, feature_shape, dtype)
        return gamma * scale, beta + gamma * shift

    def get_config(self):
        return {
            "scale_range": self.scale_range,
            "shift_range": self.shift_range,
            **super().get_config(),
        }


@dataclasses.dataclass
class Sampling:
    """Noise a layer samples at inference (set by `kbn.mc_predict`).

    Attributes:
        model: The `NoiseModel` to sample.
        seed: A `keras.random.SeedGenerator`.
        samples: The batch size `M` counts, in examples: the same for every
            chunk, so a short last chunk gets no extra noise.
    """

    model: NoiseModel
    seed: object
    samples: float


_BY_ID = {cls.id: cls for cls in (BatchStatistics, CovariateShift, Adjustment)}


def get(identifier):
    """Resolves a noise argument: None, a model, its string id, or a config dict."""
    if identifier is None or isinstance(identifier, NoiseModel):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_ID:
        return _BY_ID[identifier]()
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if isinstance(obj, NoiseModel):
            return obj
    raise ValueError(
        "Argument `noise` must be None, a kbn.noise model or one of "
        f"{sorted(_BY_ID)}. Received: noise={identifier!r}"
    )


def serialize(model):
    """A JSON-able config of a noise model (None stays None)."""
    return None if model is None else keras.saving.serialize_keras_object(model)


def _check_at_least(name, value, low):
    try:
        ok = math.isfinite(float(value)) and float(value) >= low
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"Argument `{name}` must be a finite number >= {low}. "
            f"Received: {name}={value!r}"
        )


def _dtype_of(gamma, beta):
    """The parameters' dtype (float32 when the layer has neither)."""
    for p in (gamma, beta):
        if p is not None:
            return keras.backend.standardize_dtype(p.dtype)
    return "float32"


def _ones_if_none(gamma, shape, dtype):
    return ops.ones(shape, dtype) if gamma is None else ops.convert_to_tensor(gamma)


def _zeros_if_none(beta, shape, dtype):
    return ops.zeros(shape, dtype) if beta is None else ops.convert_to_tensor(beta)
