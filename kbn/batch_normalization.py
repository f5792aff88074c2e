"""`kbn.BatchNormalization`: a drop-in replacement for Keras 3's layer."""

import dataclasses

import keras
from keras import backend, initializers, ops
from keras.layers import BatchNormalization as KerasBatchNormalization
from keras.layers import InputSpec

from kbn import kernels, validation
from kbn import moments as stats
from kbn import noise as noise_lib
from kbn.layout import FeatureLayout, ghost_blocks, maximum


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
      the Keras default on CPU and under `tf.distribute`. On JAX they are one
      `jax.custom_vjp` function with the same hand-written gradient.
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
        momentum: Momentum of the moving averages, in `[0, 1]` (`1.0` freezes
            them), or `None` for a cumulative moving average (each batch
            weighted `1 / n`, PyTorch's convention), tracked by a saved
            `num_batches_tracked` counter.
        epsilon: Float >= 0 added to the variance to avoid dividing by 0.
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
            the global batch of all replicas (with or without a mask). Not
            with `virtual_batch_size` (ghost batches are local by design).
        compile_moments: `"auto"` (default) picks, per call site, the
            fastest exact formulation for its shape: the kernels (XLA on
            TensorFlow, `jax.custom_vjp` on JAX) from the backend's
            `kbn.kernels.<backend>.MIN_KERNEL_VALUES` values on (counted on
            the input's static shape, each unknown size as 32), the
            same statistics as plain ops below (no launch of their own;
            measured faster there), and the portable `keras.ops` path where the
            kernels do not apply (masks, renorm, `synchronized`, other
            backends), with the same results. `True` always takes the kernels
            (a `ValueError` where they cannot be used); `False` always the
            portable path. On JAX the kernel is a `jax.custom_vjp` function:
            reverse mode works to any order (and `jax.hessian`), but forward
            mode on the layer's training output (`jax.jvp`) needs `False`
            (or a call small enough for "auto" to take the plain formulation).
        virtual_batch_size: Ghost batch normalization (Hoffer et al. 2017): the
            largest number of samples per ghost batch. A batch of `n` samples
            is split into `g = ceil(n / virtual_batch_size)` ghost batches as
            evenly as possible (the first `n mod g` get `n // g + 1` samples,
            the rest `n // g`), so any batch size works, including the short
            last batch of `fit`; a batch smaller than it is one ghost batch.
            Training statistics (and renorm's correction) are computed per
            ghost batch; the moving statistics from the whole batch.
        unbiased_moving_variance: If True, the moving variance tracks
            `m / (m - 1)` times the batch variance (`m` values reduced per
            feature), as in the original paper, tf-keras's fused path and
            PyTorch. Keras 3 stores the biased batch variance (the default).
        noise: A `kbn.noise` model, its string id (`"batch_statistics"`,
            `"covariate_shift"`, `"adjustment"`), or None. Applied in training
            only; see `kbn.noise`.
        seed: Optional integer seed for the noise, for reproducible runs.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Attributes:
        inference_noise: None, or a `kbn.noise.Sampling` that makes inference
            sample a noise model (set by `kbn.mc_predict` while it runs).

    Call arguments:
        inputs: Input tensor of any rank. An empty batch passes through and
            leaves the moving statistics unchanged.
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
        axis = validation.axes_argument(axis)
        momentum = validation.unit_interval("momentum", momentum, allow_none=True)
        renorm_momentum = validation.unit_interval("renorm_momentum", renorm_momentum)
        epsilon = validation.non_negative("epsilon", epsilon)
        compile_moments = validation.compile_choice(compile_moments)
        virtual_batch_size = validation.positive_int_or_none(
            "virtual_batch_size", virtual_batch_size
        )
        seed = validation.seed(seed)
        validation.combination(
            backend=backend.backend(),
            compile_moments=compile_moments,
            renorm=renorm,
            synchronized=synchronized,
            momentum=momentum,
            virtual_batch_size=virtual_batch_size,
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
        self.axis = axis
        self.momentum = momentum
        self.compile_moments = compile_moments
        self.virtual_batch_size = virtual_batch_size
        self.unbiased_moving_variance = bool(unbiased_moving_variance)
        self.noise = noise_lib.get(noise)
        self.seed = seed
        self.inference_noise = None
        # Statistics need the input's own precision: like LayerNormalization,
        # do not let a mixed-precision policy cast float32 inputs to float16.
        self.autocast = False
        self.num_batches_tracked = None
        self._layout = None
        self._ghost_layout = None
        self._seed_generator = None
        if self.noise is not None:
            noise_seed = self.noise.seed if seed is None else seed
            self._seed_generator = keras.random.SeedGenerator(
                noise_seed, name="noise_seed"
            )

    # ------------------------------------------------------------------ build

    def build(self, input_shape):
        rank = len(input_shape)
        feature_axes = validation.normalize_axes(self.axis, rank)
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
        self._layout = FeatureLayout(rank, feature_axes, feature_shape)
        if self.virtual_batch_size is not None:
            self._ghost_layout = dataclasses.replace(self._layout, ghosted=True)

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
            return self._train(inputs, mask)
        return self._infer(inputs)

    def _train(self, inputs, mask):
        """Three steps: which statistics, normalize, update the state."""
        rows = ops.shape(inputs)[0]
        static = isinstance(rows, int)
        # With synchronized statistics every replica joins the collectives,
        # an empty one too, and the global count says whether to update.
        global_count = self.synchronized and _replica_context() is not None
        if static and rows == 0 and not global_count:
            return ops.cast(inputs, self.compute_dtype)  # nothing to learn from
        noise = self.noise
        compiled = self._use_kernel(mask)
        count, blocks = self._ghost_plan(rows)
        if noise is not None and noise.normalize_with == "moving":
            block_moments = self._moments(inputs, mask, blocks, count, compiled)
            batch = self._pool(block_moments)
            gamma, beta = self._noisy_affine(noise, self._seed_generator, batch, count)
            outputs = self._normalize_with_moving(inputs, gamma, beta)
        elif compiled:
            outputs, batch = self._normalize_compiled(inputs, blocks, count)
        else:
            outputs, batch = self._normalize_portable(inputs, mask, blocks, count)
        if noise is not None:
            outputs = noise.perturb_output(
                outputs,
                feature_axes=self._layout.feature_axes,
                seed=self._seed_generator,
            )
        if global_count:
            nonempty = batch[2] > 0
        else:
            nonempty = None if static else rows > 0
        self._update_state(batch, nonempty=nonempty)
        return outputs

    def _infer(self, inputs):
        sampling = self.inference_noise  # deterministic unless kbn.mc_predict asks
        if sampling is None:
            return self._normalize_with_moving(inputs, self.gamma, self.beta)
        shape = ops.shape(inputs)
        per_row = self._layout.values_per_feature(shape) // maximum(shape[0], 1)
        count = ops.cast(per_row, "float32") * sampling.samples
        gamma, beta = sampling.model.affine(
            self.gamma,
            self.beta,
            feature_shape=self._layout.feature_shape,
            count=count,
            seed=sampling.seed,
        )
        outputs = self._normalize_with_moving(inputs, gamma, beta)
        return sampling.model.perturb_output(
            outputs, feature_axes=self._layout.feature_axes, seed=sampling.seed
        )

    # --------------------------------------------- step 1: which statistics

    def _ghost_plan(self, rows):
        """`(ghost batches, blocks)`; one block of None without Ghost BN."""
        if self.virtual_batch_size is None:
            return 1, [None]
        count, blocks = ghost_blocks(rows, self.virtual_batch_size)
        return count, [None] if len(blocks) == 1 and blocks[0].start == 0 else blocks

    def _view(self, tensor, block, ghosts=None):
        """Rows of `block` (all rows for None) in the statistics view."""
        if self._ghost_layout is None:
            return self._layout.view(tensor)
        if block is None:
            return self._ghost_layout.view(tensor, ghosts)
        rows = tensor[block.start : block.stop]
        return self._ghost_layout.view(rows, block.ghosts)

    def _layout_in_use(self):
        return self._layout if self._ghost_layout is None else self._ghost_layout

    def _moments(self, inputs, mask, blocks, ghosts, compiled):
        """Per-block `(view, mean, variance, count)` in the view's shape."""
        layout = self._layout_in_use()
        x = inputs if compiled else ops.cast(inputs, _compute_dtype(inputs.dtype))
        weights = None
        if mask is not None:
            weights = ops.expand_dims(ops.cast(mask, x.dtype), -1)
            weights = ops.broadcast_to(weights, ops.shape(x))
        ctx = _replica_context() if self.synchronized else None
        out = []
        for block in blocks:
            xv = self._view(x, block, ghosts)
            if compiled:
                mean, variance = self._kernel().batch_moments(
                    xv,
                    axes=layout.reduction_axes,
                    formulation=self._formulation(inputs),
                )
                count = layout.reduced_count(xv, like=mean)
            else:
                wv = None if weights is None else self._view(weights, block, ghosts)
                if ctx is not None:
                    from kbn.distributed import synchronized_moments

                    moments = synchronized_moments(ctx, xv, layout.reduction_axes, wv)
                else:
                    moments = stats.moments(xv, layout.reduction_axes, wv)
                mean, variance, count = moments
            out.append((xv, mean, variance, count))
        return out

    def _pool(self, block_moments):
        """Whole-batch `(mean, variance, count)`: feature shape, scalar count
        (None for one block whose count was left out)."""
        layout = self._layout_in_use()
        if len(block_moments) == 1 and block_moments[0][3] is None:
            _, mean, variance, _ = block_moments[0]
            return layout.features(mean), layout.features(variance), None
        mean, variance, count = (
            ops.concatenate([m[i] for m in block_moments], axis=0)
            if len(block_moments) > 1
            else block_moments[0][i]
            for i in (1, 2, 3)
        )
        if layout.ghosted:
            mean, variance, count = stats.combine_groups(mean, variance, count, 0)
        return (
            layout.features(mean),
            layout.features(variance),
            ops.reshape(count, (-1,))[0],
        )

    # ------------------------------------------------------ step 2: normalize

    def _normalize_portable(self, inputs, mask, blocks, ghosts):
        block_moments = self._moments(inputs, mask, blocks, ghosts, compiled=False)
        batch = self._pool(block_moments)
        gamma, beta = self._noisy_affine(
            self.noise, self._seed_generator, batch, ghosts
        )
        layout = self._layout_in_use()
        dtype = block_moments[0][0].dtype
        gamma = None if gamma is None else layout.broadcastable(ops.cast(gamma, dtype))
        beta = None if beta is None else layout.broadcastable(ops.cast(beta, dtype))
        outputs = []
        for xv, mean, variance, _ in block_moments:
            g, b = gamma, beta
            if self.renorm:
                g, b = self._renormalized(mean, variance, g, b)
            outputs.append(stats.normalize(xv, mean, variance, g, b, self.epsilon))
        return self._join(outputs, inputs, blocks), batch

    def _normalize_compiled(self, inputs, blocks, ghosts):
        kernel = self._kernel()
        layout = self._layout_in_use()
        ref = self.moving_mean
        count = None
        if self.noise is not None:  # what the noise scales with
            count = self._layout.values_per_feature(ops.shape(inputs))
        gamma, beta = self._noisy_affine(
            self.noise, self._seed_generator, (None, None, count), ghosts
        )
        # The count only feeds Ghost BN's pooling and Bessel's correction;
        # left out otherwise (each op of it costs tracing and a launch).
        counted = layout.ghosted or len(blocks) > 1 or self.unbiased_moving_variance
        gamma = layout.params(_or_ones(gamma, ref))
        beta = layout.params(_or_zeros(beta, ref))
        outputs, block_moments = [], []
        for block in blocks:
            xv = self._view(inputs, block, ghosts)
            y, mean, variance = kernel.batch_norm_train(
                xv,
                gamma,
                beta,
                axes=layout.reduction_axes,
                epsilon=self.epsilon,
                out_dtype=self.compute_dtype,
                formulation=self._formulation(inputs),
            )
            outputs.append(y)
            n = layout.reduced_count(xv, like=mean) if counted else None
            block_moments.append((xv, mean, variance, n))
        return self._join(outputs, inputs, blocks), self._pool(block_moments)

    def _join(self, outputs, inputs, blocks):
        """Block outputs back in the input's shape and the compute dtype."""
        if blocks[0] is not None:
            shape = ops.shape(inputs)
            outputs = [
                ops.reshape(y, (b.stop - b.start,) + tuple(shape[1:]))
                for y, b in zip(outputs, blocks, strict=True)
            ]
            y = ops.concatenate(outputs, axis=0)
        else:
            y = self._layout_in_use().unview(outputs[0], inputs)
        return ops.cast(y, self.compute_dtype)

    def _normalize_with_moving(self, inputs, gamma, beta):
        layout = self._layout
        mean = self.moving_mean
        variance = self.moving_variance
        kernel = self._kernel()
        if kernel is not None:
            y = kernel.batch_norm_infer(
                layout.view(inputs),
                layout.broadcastable(mean),
                layout.broadcastable(variance),
                layout.broadcastable(_or_ones(gamma, mean)),
                layout.broadcastable(_or_zeros(beta, mean)),
                epsilon=self.epsilon,
                out_dtype=self.compute_dtype,
                formulation=self._formulation(inputs),
            )
        else:
            x = layout.view(ops.cast(inputs, _compute_dtype(inputs.dtype)))
            dtype = x.dtype
            y = stats.normalize(
                x,
                layout.broadcastable(ops.cast(mean, dtype)),
                layout.broadcastable(ops.cast(variance, dtype)),
                None if gamma is None else layout.broadcastable(ops.cast(gamma, dtype)),
                None if beta is None else layout.broadcastable(ops.cast(beta, dtype)),
                self.epsilon,
            )
            y = ops.cast(y, self.compute_dtype)
        return layout.unview(y, inputs)

    def _noisy_affine(self, noise, seed, batch, ghosts):
        """`gamma` and `beta` with the noise model's perturbation folded in.

        `M`, the values behind each statistic, is the batch's count (unmasked
        values only) divided among its ghost batches.
        """
        if noise is None:
            return self.gamma, self.beta
        count = ops.cast(batch[2], "float32") / ops.cast(ghosts, "float32")
        count = ops.maximum(count, 1.0)  # an empty batch: finite noise, no NaN
        return noise.affine(
            self.gamma,
            self.beta,
            feature_shape=self._layout.feature_shape,
            count=count,
            seed=seed,
        )

    def _renormalized(self, mean, variance, gamma, beta):
        """Batch Renormalization (Ioffe 2017): `gamma`, `beta` with `r`, `d`.

        `(xhat * r + d) * gamma + beta`, with `r = std_B / renorm_std` and
        `d = (mean_B - renorm_mean) / renorm_std` held constant in the
        gradient and clipped by `renorm_clipping`. Uses the batch's own
        (biased) statistics, whatever `unbiased_moving_variance` says.
        """
        dtype = mean.dtype
        layout = self._layout_in_use()
        stddev = ops.sqrt(variance + self.epsilon)
        renorm_mean = layout.params(ops.cast(self.renorm_mean, dtype))
        renorm_stddev = ops.maximum(
            layout.params(ops.cast(self.renorm_stddev, dtype)),
            ops.sqrt(ops.cast(self.epsilon, dtype)),
        )
        r = stddev / renorm_stddev
        d = (mean - renorm_mean) / renorm_stddev
        clipping = self.renorm_clipping
        if clipping.get("rmin") is not None:
            r = ops.maximum(r, clipping["rmin"])
        if clipping.get("rmax") is not None:
            r = ops.minimum(r, clipping["rmax"])
        if clipping.get("dmax") is not None:
            d = ops.clip(d, -clipping["dmax"], clipping["dmax"])
        r, d = ops.stop_gradient(r), ops.stop_gradient(d)
        g = r if gamma is None else r * gamma
        b = d if gamma is None else d * gamma
        return g, b if beta is None else b + beta

    # ----------------------------------------------------- step 3: the state

    def _update_state(self, batch, nonempty=None):
        """Moves every statistic towards the batch's: EMA, CMA and renorm.

        Args:
            batch: Whole-batch `(mean, variance, count)`.
            nonempty: None when the batch is known to be non-empty, else a
                boolean tensor; an empty batch leaves every statistic as is.
        """
        mean, variance, count = batch
        dtype = mean.dtype
        population = self._population_variance(variance, count)
        # An empty batch's statistics are finite (counts floored at 1), so a
        # rate of 0 leaves every average exactly as it is, for fewer ops than
        # a select per statistic (an average already infinite would become
        # NaN, as it would with the next non-empty batch anyway).
        keep = None if nonempty is None else ops.cast(nonempty, dtype)
        if self.momentum is None:
            n = self.num_batches_tracked + (
                1 if nonempty is None else ops.cast(nonempty, "int64")
            )
            self.num_batches_tracked.assign(n)
            rate = 1.0 / ops.cast(ops.maximum(n, 1), dtype)
        else:
            rate = 1.0 - self.momentum
        if keep is not None:
            rate = rate * keep
        updates = []
        if self.renorm:
            updates = self._renorm_updates(mean, variance, population, rate, keep)
        else:
            updates.append(
                (
                    self.moving_variance,
                    _moving_average(self.moving_variance, population, rate),
                )
            )
        updates.append(
            (self.moving_mean, _moving_average(self.moving_mean, mean, rate))
        )
        for variable, value in updates:
            variable.assign(value)

    def _renorm_updates(self, mean, variance, population, rate, keep):
        """Renorm's correction tracks the batch's own standard deviation;
        inference uses moving_stddev, Bessel-corrected when asked."""
        stddev = ops.sqrt(variance + self.epsilon)
        renorm_rate = 1.0 - self.renorm_momentum
        if keep is not None:
            renorm_rate = renorm_rate * keep
        moving_stddev = _moving_average(
            self.moving_stddev, ops.sqrt(population + self.epsilon), rate
        )
        moving_variance = ops.relu(moving_stddev * moving_stddev - self.epsilon)
        if keep is not None:  # not recomputed from the kept stddev (rounding)
            old = ops.cast(self.moving_variance, moving_variance.dtype)
            moving_variance = ops.where(keep > 0, moving_variance, old)
        return [
            (self.renorm_mean, _moving_average(self.renorm_mean, mean, renorm_rate)),
            (
                self.renorm_stddev,
                _moving_average(self.renorm_stddev, stddev, renorm_rate),
            ),
            (self.moving_stddev, moving_stddev),
            (self.moving_variance, moving_variance),
        ]

    def _population_variance(self, variance, count):
        if not self.unbiased_moving_variance:
            return variance
        count = ops.cast(count, variance.dtype)
        return variance * count / ops.maximum(count - 1.0, 1.0)

    # ---------------------------------------------------------------- helpers

    def _kernel(self):
        """The compiled kernels' module for this backend, or None (portable)."""
        if self.compile_moments is False:
            return None
        return kernels.for_backend(backend.backend())

    def _formulation(self, inputs):
        """The kernels' `formulation`: "kernel" when asked, else by cost.

        Decided here from the input's static shape, not left to "auto" on
        the view: the view of a channels-last batch of unknown size is
        `(None, C)`, which would hide the spatial sizes from the rule.
        """
        if self.compile_moments is True:
            return "kernel"
        threshold = self._kernel().MIN_KERNEL_VALUES
        fits = kernels.common.prefers_kernel(inputs.shape, threshold)
        return "kernel" if fits else "plain"

    def _use_kernel(self, mask):
        if self._kernel() is None:
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


# -------------------------------------------------------------------- helpers


def _compute_dtype(dtype):
    return backend.result_type(dtype, "float32")


def _moving_average(variable, value, rate):
    """`variable * (1 - rate) + value * rate`, in the value's dtype."""
    old = ops.cast(variable, value.dtype)
    return old + (value - old) * ops.cast(rate, value.dtype)


def _or_ones(param, like):
    """`param`, or ones of `like`'s shape and dtype (`like` may be a Variable:
    `ops.ones_like` refuses one on JAX)."""
    return ops.ones(like.shape, dtype=like.dtype) if param is None else param


def _or_zeros(param, like):
    """`param`, or zeros of `like`'s shape and dtype."""
    return ops.zeros(like.shape, dtype=like.dtype) if param is None else param


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
