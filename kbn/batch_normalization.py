"""`kbn.BatchNormalization`: a drop-in replacement for Keras 3's layer."""

import keras
from keras import backend, initializers, ops
from keras.layers import BatchNormalization as KerasBatchNormalization
from keras.layers import InputSpec

from kbn import moments as stats
from kbn import noise as noise_lib
from kbn.layout import FeatureLayout
from kbn.monte_carlo import inference_noise

_COMPILE_CHOICES = ("auto", True, False)


@keras.saving.register_keras_serializable(package="kbn")
class BatchNormalization(KerasBatchNormalization):
    """Batch normalization, compiled, robust and regularizable: a drop-in for Keras's.

    Normalizes its inputs with the mean and variance of the current batch in
    training and with moving averages of them in inference, then scales by
    `gamma` and shifts by `beta`, exactly as `keras.layers.BatchNormalization`
    does, with the same arguments, defaults, variables and variable names, so
    the two are interchangeable in code and in saved weights. On top of that:

    - On the TensorFlow backend, training-mode statistics and normalization run
      as one XLA-compiled kernel with a hand-written gradient (and inference as
      one fused kernel), even when the model itself is not compiled, which is
      the Keras default on CPU and under `tf.distribute`.
    - Moments are computed with shifted sums and normalization as
      `(x - mean) * inv`, so inputs with a large common offset keep their
      variance (the stock layer's fused XLA path loses it).
    - The layer opts out of input autocasting, as `LayerNormalization` does:
      under `mixed_float16`, large inputs reach the float32 statistics intact.
    - Under `tf.distribute`, moving statistics are averaged over replicas, and
      `synchronized=True` honours masks.
    - Features Keras 3 dropped: Ghost BN (`virtual_batch_size`), list-valued
      `axis`, Bessel-corrected moving variance, a cumulative moving average
      (`momentum=None`), and regularization by principled noise (`noise`).

    Args:
        axis: Integer or list/tuple of integers, the feature axis or axes.
            Statistics are computed over all other axes. Defaults to `-1`.
        momentum: Momentum of the moving averages, in `[0, 1)`, or `None` for a
            cumulative moving average (each batch weighted `1 / n`, PyTorch's
            convention), tracked by a saved `num_batches_tracked` counter.
        epsilon: Small float (> 0) added to the variance to avoid dividing by 0.
        center: If True, add the offset `beta`.
        scale: If True, multiply by `gamma`.
        beta_initializer: Initializer for `beta`.
        gamma_initializer: Initializer for `gamma`.
        moving_mean_initializer: Initializer for the moving mean.
        moving_variance_initializer: Initializer for the moving variance.
        beta_regularizer: Optional regularizer for `beta`.
        gamma_regularizer: Optional regularizer for `gamma`.
        beta_constraint: Optional constraint for `beta`.
        gamma_constraint: Optional constraint for `gamma`.
        renorm: Whether to use Batch Renormalization (as in Keras).
        renorm_clipping: Dict with optional keys `"rmax"`, `"rmin"`, `"dmax"`
            clipping the renorm correction (as in Keras).
        renorm_momentum: Momentum of the renorm moving statistics.
        synchronized: TensorFlow only. If True, statistics are computed over
            the global batch of all replicas (with or without a mask).
        compile_moments: `"auto"` (default) runs training and inference through
            the XLA kernels on TensorFlow wherever they apply and falls back to
            the portable `keras.ops` path otherwise (masks, renorm,
            `synchronized`, other backends), with the same results. `True`
            requires the kernels (a `ValueError` where they cannot be used);
            `False` always takes the portable path.
        virtual_batch_size: Ghost batch normalization (Hoffer et al. 2017): an
            integer number of samples per sub-batch. Training statistics are
            computed per sub-batch; it must divide the batch size. The moving
            statistics are updated from the whole batch.
        unbiased_moving_variance: If True, the moving variance tracks
            `m / (m - 1)` times the batch variance (`m` values reduced per
            feature), as in the original paper, tf-keras's fused path and
            PyTorch. Keras 3 stores the biased batch variance (the default).
        noise: A `kbn.noise` model, its string id (`"batch_statistics"`,
            `"covariate_shift"`, `"adjustment"`), or None. Applied in training
            only; see `kbn.noise`.
        seed: Optional integer seed for the noise, for reproducible runs.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: Input tensor of any rank.
        training: Python boolean; training mode normalizes with batch
            statistics and updates the moving ones. A layer with
            `trainable=False` always runs in inference mode.
        mask: Optional binary tensor of shape `inputs.shape[:-1]`: masked
            positions are left out of the batch statistics.

    Returns:
        A tensor of the shape of `inputs`, in the layer's compute dtype.

    Reference:
        - [Ioffe and Szegedy, 2015](https://arxiv.org/abs/1502.03167).
        - [Hoffer et al., 2017](https://arxiv.org/abs/1705.08741) (Ghost BN).
        - [Ioffe, 2017](https://arxiv.org/abs/1702.03275) (Batch Renorm).
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        synchronized=False,
        compile_moments="auto",
        virtual_batch_size=None,
        unbiased_moving_variance=False,
        noise=None,
        seed=None,
        **kwargs,
    ):
        _check_axis(axis)
        _check_unit_interval("momentum", momentum, allow_none=True)
        _check_unit_interval("renorm_momentum", renorm_momentum)
        _check_positive("epsilon", epsilon)
        if compile_moments not in _COMPILE_CHOICES or not isinstance(
            compile_moments, (str, bool)
        ):
            raise ValueError(
                "Argument `compile_moments` must be one of 'auto', True or "
                f"False. Received: compile_moments={compile_moments!r}"
            )
        if virtual_batch_size is not None and (
            isinstance(virtual_batch_size, bool)
            or not isinstance(virtual_batch_size, int)
            or virtual_batch_size < 1
        ):
            raise ValueError(
                "Argument `virtual_batch_size` must be a positive integer or "
                f"None. Received: virtual_batch_size={virtual_batch_size!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(
                f"Argument `seed` must be an integer or None. Received: seed={seed!r}"
            )
        if compile_moments is True:
            _check_compilable(renorm=renorm, synchronized=synchronized)
        if renorm and (momentum is None or virtual_batch_size is not None):
            raise ValueError(
                "Argument `renorm=True` cannot be combined with `momentum=None` "
                "or `virtual_batch_size`. Received: "
                f"momentum={momentum}, virtual_batch_size={virtual_batch_size}"
            )

        super().__init__(
            axis=-1,
            momentum=0.99 if momentum is None else momentum,
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            moving_mean_initializer=moving_mean_initializer,
            moving_variance_initializer=moving_variance_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
            renorm=renorm,
            renorm_clipping=renorm_clipping,
            renorm_momentum=renorm_momentum,
            synchronized=synchronized,
            **kwargs,
        )
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)
        self.momentum = None if momentum is None else float(momentum)
        self.compile_moments = compile_moments
        self.virtual_batch_size = virtual_batch_size
        self.unbiased_moving_variance = bool(unbiased_moving_variance)
        self.noise = noise_lib.get(noise)
        self.seed = seed
        # Statistics need the input's own precision: like LayerNormalization,
        # do not let a mixed-precision policy cast float32 inputs to float16.
        self.autocast = False
        self.num_batches_tracked = None
        self._layout = None
        self._seed_generator = None
        if self.noise is not None:
            noise_seed = self.noise.seed if seed is None else seed
            self._seed_generator = keras.random.SeedGenerator(
                noise_seed, name="noise_seed"
            )

    # ------------------------------------------------------------------ build

    def build(self, input_shape):
        rank = len(input_shape)
        feature_axes = _normalize_axes(self.axis, rank)
        feature_shape = tuple(input_shape[a] for a in feature_axes)
        if any(d is None for d in feature_shape):
            raise ValueError(
                "The feature axes of the input must have a known size. Received: "
                f"axis={self.axis}, input_shape={input_shape}"
            )
        if self.virtual_batch_size is not None and 0 in feature_axes:
            raise ValueError(
                "Argument `virtual_batch_size` splits the batch axis 0, which "
                f"cannot be a feature axis. Received: axis={self.axis}"
            )
        if self.virtual_batch_size is not None and input_shape[0] is not None:
            _check_ghosts(input_shape[0], self.virtual_batch_size)

        # Same variables, in the same order and with the same names, as
        # keras.layers.BatchNormalization, so saved weights load either way.
        shape = feature_shape
        if self.scale:
            self.gamma = self._add_parameter(
                "gamma",
                shape,
                self.gamma_initializer,
                self.gamma_regularizer,
                self.gamma_constraint,
            )
        if self.center:
            self.beta = self._add_parameter(
                "beta",
                shape,
                self.beta_initializer,
                self.beta_regularizer,
                self.beta_constraint,
            )
        self.moving_mean = self._add_statistic(
            "moving_mean", shape, self.moving_mean_initializer
        )
        self.moving_variance = self._add_statistic(
            "moving_variance", shape, self.moving_variance_initializer
        )
        if self.renorm:
            stddev_init = _sqrt_of(self.moving_variance_initializer)
            self.moving_stddev = self._add_statistic(
                "moving_stddev", shape, stddev_init
            )
            self.renorm_mean = self._add_statistic(
                "renorm_mean", shape, _clone(self.moving_mean_initializer)
            )
            self.renorm_stddev = self._add_statistic(
                "renorm_stddev", shape, _sqrt_of(self.moving_variance_initializer)
            )
        if self.momentum is None:
            self.num_batches_tracked = self.add_weight(
                shape=(),
                name="num_batches_tracked",
                initializer="zeros",
                dtype="int64",
                trainable=False,
                autocast=False,
                aggregation="only_first_replica",
            )

        self.input_spec = InputSpec(
            ndim=rank, axes={a: input_shape[a] for a in feature_axes}
        )
        self._reduction_axes = [i for i in range(rank) if i not in feature_axes]
        # Ghost batches are resolved per call, from the batch size.
        self._layout = FeatureLayout(rank, feature_axes, feature_shape)

    def _add_parameter(self, name, shape, initializer, regularizer, constraint):
        return self.add_weight(
            shape=shape,
            name=name,
            initializer=initializer,
            regularizer=regularizer,
            constraint=constraint,
            trainable=True,
            autocast=False,
        )

    def _add_statistic(self, name, shape, initializer):
        # aggregation="mean": under tf.distribute, each replica's update is
        # averaged, so reading the statistic gives the mean over replicas
        # (Keras 3 creates it with "none" and keeps replica 0's copy).
        return self.add_weight(
            shape=shape,
            name=name,
            initializer=initializer,
            trainable=False,
            autocast=False,
            aggregation="mean",
        )

    # ------------------------------------------------------------------- call

    def call(self, inputs, training=None, mask=None):
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError(
                "The mask provided should be one dimension less than the inputs. "
                f"Received: mask.shape={mask.shape}, inputs.shape={inputs.shape}"
            )
        if training and self.trainable:
            outputs = self._train(inputs, mask)
        else:
            outputs = self._infer(inputs)
        return outputs

    def _train(self, inputs, mask):
        layout = self._layout_for(inputs)
        noise, seed = self.noise, self._seed_generator
        gamma, beta = self._noisy_affine(noise, seed, inputs, layout)
        if noise is not None and noise.normalize_with == "moving":
            outputs = self._normalize_with_moving(inputs, gamma, beta)
            mean, variance, count = self._batch_moments(inputs, mask, layout)
        elif self._use_kernel(mask):
            outputs, mean, variance, count = self._train_compiled(
                inputs, gamma, beta, layout
            )
        else:
            outputs, mean, variance, count = self._train_portable(
                inputs, mask, gamma, beta, layout
            )
        if noise is not None:
            outputs = noise.perturb_output(
                outputs, feature_axes=layout.feature_axes, seed=seed
            )
        if not self.renorm:
            self._update_moving_statistics(mean, variance, count)
        return outputs

    def _infer(self, inputs):
        # Deterministic, unless kbn.mc_predict asked this layer to sample.
        noise, seed = inference_noise(self) or (None, None)
        gamma, beta = self._noisy_affine(noise, seed, inputs, self._layout)
        outputs = self._normalize_with_moving(inputs, gamma, beta)
        if noise is not None:
            outputs = noise.perturb_output(
                outputs, feature_axes=self._layout.feature_axes, seed=seed
            )
        return outputs

    def _noisy_affine(self, noise, seed, inputs, layout):
        """`gamma` and `beta` with the noise model's perturbation folded in."""
        if noise is None:
            return self.gamma, self.beta
        return noise.affine(
            self.gamma,
            self.beta,
            feature_shape=layout.feature_shape,
            count=_values_per_feature(inputs, layout),
            seed=seed,
        )

    def _normalize_with_moving(self, inputs, gamma, beta):
        layout = self._layout
        mean = self.moving_mean
        variance = self.moving_variance
        if self._kernels_enabled():
            from kbn import xla_kernel

            x = layout.view(inputs)
            y = xla_kernel.batch_norm_infer(
                x,
                layout.params(mean),
                layout.params(variance),
                layout.params(_or_ones(gamma, mean)),
                layout.params(_or_zeros(beta, mean)),
                epsilon=self.epsilon,
                out_dtype=self.compute_dtype,
            )
        else:
            x = layout.view(ops.cast(inputs, _compute_dtype(inputs.dtype)))
            dtype = x.dtype
            y = stats.normalize(
                x,
                layout.params(ops.cast(mean, dtype)),
                layout.params(ops.cast(variance, dtype)),
                None if gamma is None else layout.params(ops.cast(gamma, dtype)),
                None if beta is None else layout.params(ops.cast(beta, dtype)),
                self.epsilon,
            )
            y = ops.cast(y, self.compute_dtype)
        return ops.reshape(y, ops.shape(inputs))

    def _train_compiled(self, inputs, gamma, beta, layout):
        from kbn import xla_kernel

        ref = self.moving_mean
        y, mean, variance = xla_kernel.batch_norm_train(
            layout.view(inputs),
            layout.params(_or_ones(gamma, ref)),
            layout.params(_or_zeros(beta, ref)),
            axes=layout.reduction_axes,
            epsilon=self.epsilon,
            out_dtype=self.compute_dtype,
        )
        count = ops.ones_like(mean) * ops.cast(
            _values_per_feature(inputs, layout), mean.dtype
        )
        mean, variance, count = self._pool_ghosts(mean, variance, count, layout)
        return ops.reshape(y, ops.shape(inputs)), mean, variance, count

    def _train_portable(self, inputs, mask, gamma, beta, layout):
        x = ops.cast(inputs, _compute_dtype(inputs.dtype))
        mean, variance, count = self._view_moments(x, mask, layout)
        pooled = self._pool_ghosts(mean, variance, count, layout)
        if self.renorm:
            r, d, _, _ = self._renorm_correction_and_moments(pooled[0], pooled[1])
            gamma, beta = self._compose_transforms(r, d, gamma, beta, x.dtype)
            self._update_renorm_statistics(
                pooled[0], self._population_variance(pooled[1], pooled[2])
            )
        y = stats.normalize(
            layout.view(x),
            mean,
            variance,
            None if gamma is None else layout.params(ops.cast(gamma, x.dtype)),
            None if beta is None else layout.params(ops.cast(beta, x.dtype)),
            self.epsilon,
        )
        y = ops.cast(ops.reshape(y, ops.shape(inputs)), self.compute_dtype)
        return (y, *pooled)

    def _batch_moments(self, inputs, mask, layout):
        """Whole-batch moments (feature shape), for noise that needs no kernel."""
        x = ops.cast(inputs, _compute_dtype(inputs.dtype))
        return self._pool_ghosts(*self._view_moments(x, mask, layout), layout)

    def _view_moments(self, x, mask, layout):
        """Moments in the statistics view (per ghost batch with Ghost BN)."""
        xv = layout.view(x)
        weights = None
        if mask is not None:
            weights = ops.broadcast_to(
                ops.expand_dims(ops.cast(mask, x.dtype), -1), ops.shape(x)
            )
            weights = layout.view(weights)
        ctx = _replica_context() if self.synchronized else None
        if ctx is not None:
            from kbn.distributed import synchronized_moments

            return synchronized_moments(ctx, xv, layout.reduction_axes, weights)
        return stats.moments(xv, layout.reduction_axes, weights)

    def _pool_ghosts(self, mean, variance, count, layout):
        """Whole-batch statistics of the feature shape from view statistics."""
        if layout.ghosts is not None:
            mean, variance, count = stats.combine_groups(mean, variance, count, 0)
        return (
            layout.features(mean),
            layout.features(variance),
            ops.reshape(count, (-1,))[0],
        )

    # ------------------------------------------------------- moving statistics

    def _update_moving_statistics(self, mean, variance, count):
        variance = self._population_variance(variance, count)
        if self.momentum is None:
            n = self.num_batches_tracked + 1
            self.num_batches_tracked.assign(n)
            rate = 1.0 / ops.cast(n, mean.dtype)
            keep = 1.0 - rate
        else:
            keep, rate = self.momentum, 1.0 - self.momentum
        moving_mean = ops.cast(self.moving_mean, mean.dtype)
        moving_variance = ops.cast(self.moving_variance, mean.dtype)
        self.moving_mean.assign(moving_mean * keep + mean * rate)
        self.moving_variance.assign(moving_variance * keep + variance * rate)

    def _population_variance(self, variance, count):
        if not self.unbiased_moving_variance:
            return variance
        count = ops.cast(count, variance.dtype)
        return variance * count / ops.maximum(count - 1.0, 1.0)

    # ---------------------------------------------------------------- helpers

    def _layout_for(self, inputs):
        if self.virtual_batch_size is None:
            return self._layout
        batch = inputs.shape[0]
        if batch is not None:
            _check_ghosts(batch, self.virtual_batch_size)
        ghosts = ops.shape(inputs)[0] // self.virtual_batch_size
        return FeatureLayout(
            self._layout.input_rank,
            self._layout.feature_axes,
            self._layout.feature_shape,
            ghosts,
        )

    def _kernels_enabled(self):
        return self.compile_moments is not False and backend.backend() == "tensorflow"

    def _use_kernel(self, mask):
        if not self._kernels_enabled():
            return False
        portable_only = self.renorm or self.synchronized or mask is not None
        if portable_only and self.compile_moments is True:
            raise ValueError(
                "compile_moments=True, but this call needs the portable path "
                "(a mask was passed). Use compile_moments='auto' to fall back."
            )
        return not portable_only

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "compile_moments": self.compile_moments,
                "virtual_batch_size": self.virtual_batch_size,
                "unbiased_moving_variance": self.unbiased_moving_variance,
                "noise": noise_lib.serialize(self.noise),
                "seed": self.seed,
            }
        )
        return config


# ----------------------------------------------------------------- validation


def _check_axis(axis):
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    if (
        not axes
        or any(isinstance(a, bool) or not isinstance(a, int) for a in axes)
        or len(set(axes)) != len(axes)
    ):
        raise ValueError(
            "Argument `axis` must be an integer or a non-empty list of distinct "
            f"integers. Received: axis={axis!r}"
        )


def _normalize_axes(axis, rank):
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    for a in axes:
        if not -rank <= a < rank:
            raise ValueError(
                f"Argument `axis` is out of range for an input of rank {rank}. "
                f"Received: axis={axis}"
            )
    normalized = sorted(a % rank for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ValueError(
            f"Argument `axis` names the same axis twice for rank {rank}. "
            f"Received: axis={axis}"
        )
    return tuple(normalized)


def _check_unit_interval(name, value, allow_none=False):
    if value is None and allow_none:
        return
    try:
        ok = 0.0 <= float(value) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        allowed = "a float in [0, 1)" + (" or None" if allow_none else "")
        raise ValueError(
            f"Argument `{name}` must be {allowed}. Received: {name}={value!r}"
        )


def _check_positive(name, value):
    try:
        ok = float(value) > 0.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"Argument `{name}` must be a positive float. Received: {name}={value!r}"
        )


def _check_compilable(renorm, synchronized):
    if backend.backend() != "tensorflow":
        raise ValueError(
            "compile_moments=True needs the TensorFlow backend; the current "
            f"backend is {backend.backend()!r}. Use compile_moments='auto'."
        )
    if renorm or synchronized:
        raise ValueError(
            "compile_moments=True cannot be combined with renorm=True or "
            "synchronized=True, which use the portable path. "
            f"Received: renorm={renorm}, synchronized={synchronized}"
        )


def _check_ghosts(batch, virtual_batch_size):
    if batch % virtual_batch_size:
        raise ValueError(
            f"Argument `virtual_batch_size` ({virtual_batch_size}) must divide "
            f"the batch size ({batch})."
        )


# -------------------------------------------------------------------- helpers


def _compute_dtype(dtype):
    return backend.result_type(dtype, "float32")


def _values_per_feature(inputs, layout):
    """Number of values each statistic reduces (per ghost batch with Ghost BN)."""
    shape = ops.shape(inputs)
    n = 1
    for i, d in enumerate(shape):
        if i not in layout.feature_axes:
            n = n * d
    if layout.ghosts is not None:
        n = n // layout.ghosts
    return n


def _or_ones(param, like):
    return ops.ones_like(like) if param is None else param


def _or_zeros(param, like):
    return ops.zeros_like(like) if param is None else param


def _replica_context():
    if backend.backend() != "tensorflow":
        return None
    from kbn.distributed import replica_context

    return replica_context()


def _clone(initializer):
    return initializers.deserialize(initializers.serialize(initializer))


def _sqrt_of(initializer):
    def initializer_sqrt(shape, dtype=None):
        return ops.sqrt(_clone(initializer)(shape, dtype=dtype))

    return initializer_sqrt
