"""The `kbn.callbacks` a study cell runs, and the curves its record keeps.

With instruments on (`--instruments`, or a study that needs them), every
`probe_every` optimizer steps a cell measures:

- always: the score (accuracy, or R² for regression) on the training set
  and on the validation split (the series and tag keep the name `test` from
  before the three-way split; the held-out test split is scored only once,
  at the end), in inference mode (`StepScore`; tags `steps/train_accuracy`,
  `steps/test_accuracy`, or `..._r2`); `score` asks for it alone (the
  convergence study's validation curve);
- `percentiles`: `kbn.callbacks.ActivationPercentiles` on unit 0 of every
  nonlinearity's input, on a fixed probe batch of training examples;
- `landscape`: `kbn.callbacks.LandscapeProbe` on a batch of the training
  batch size drawn from the training set;
- `effective_step`: the hidden kernels' norms, lr / ||W||^2 and the angle
  they turn per step (`studies.engine.weight_norms`).

All write TensorBoard scalars into the cell's own folder, next to Keras's
TensorBoard callback, and the numbers go into the cell's record as `curves`,
so the report is rebuilt from the study folder alone.

`batch_noise` is measured once, after training (`batch_noise`): how much a
normalization layer's output for one example moves when the other examples
of its batch change, the noise BN injects by normalizing with batch
statistics.

`init_grad_norms` is measured once, when the model is built, before any
step (`init_grad_norms`): the L2 norm of the loss gradient with respect to
each hidden layer's kernel, input side first, on one fixed training batch
(Yang et al. 2019's gradient explosion at initialization).
"""

import keras
import numpy as np

from kbn.callbacks import ActivationPercentiles, LandscapeProbe, StepCallback
from kbn.callbacks.gradients import current_values, loss_and_gradients_function
from studies.engine import weight_norms

PROBE_EXAMPLES = 512  # the percentiles' fixed probe batch
ACCURACY_EXAMPLES = 2048  # cap on the examples scored per set and step
UNIT = 0  # the one unit whose input percentiles are followed, as in the paper


NOISE_PROBES = 8  # examples whose output is followed across batches
NOISE_DRAWS = 16  # batches (random companions) per probe example
NOISE_EXAMPLES = 2048  # cap on the training examples batches are drawn from
# instruments that are not step callbacks (read once, not every N steps)
ONCE = ("batch_noise", "init_grad_norms")


class StepScore(StepCallback):
    """The task's score on fixed training and validation sets every N steps.

    Args:
        train: `(x, y)` training examples (at most `ACCURACY_EXAMPLES` used).
        test: `(x, y)` validation examples.
        every_n_steps: Interval in optimizer steps.
        log_dir: TensorBoard folder, or None.
        scorer: `scorer(model, x, y, split) -> float` (the hypermodel's).
        metric: The score's name (`accuracy` or `r2`), for the tags.
    """

    def __init__(self, train, test, every_n_steps, log_dir, scorer, metric):
        super().__init__(every_n_steps, log_dir)
        self.sets = {
            "train": tuple(a[:ACCURACY_EXAMPLES] for a in train),
            "test": tuple(a[:ACCURACY_EXAMPLES] for a in test),
        }
        self.scorer = scorer
        self.metric = metric

    def measure(self, step):
        scalars = {}
        for name, (x, y) in self.sets.items():
            split = "train" if name == "train" else "val"
            scalars[f"steps/{name}_{self.metric}"] = float(
                self.scorer(self.model, x, y, split)
            )
        return scalars, {}


def callbacks(settings, x, y, validation_data, log_dir, scorer, metric="accuracy"):
    """The step instruments of one cell (an empty list when none are on)."""
    names = [n for n in settings["instruments"] if n not in ONCE]
    if not names:
        return []
    every = settings["probe_every"]
    result = [StepScore((x, y), validation_data, every, log_dir, scorer, metric)]
    if "percentiles" in names:
        result.append(
            ActivationPercentiles(
                every_n_steps=every,
                log_dir=log_dir,
                data=x[:PROBE_EXAMPLES],
                unit=UNIT,
                training=True,  # what the sigmoid sees while training
            )
        )
    if "landscape" in names:
        result.append(
            LandscapeProbe(
                every_n_steps=every,
                log_dir=log_dir,
                data=(x, y),
                batch_size=settings["batch_size"],
                seed=settings["seed"],
            )
        )
    if "effective_step" in names:
        result.append(weight_norms.EffectiveStep(every, log_dir))
    return result


def curves(instruments, steps_per_epoch):
    """The instruments' histories as the record's `curves`.

    Returns:
        `{}` without instruments; otherwise `steps_per_epoch` and, per
        instrument, its steps and series: `accuracy` or `r2` (`train`, `test`),
        `percentiles` (`layer`, `p15`, `p50`, `p85`, ... of the last
        nonlinearity followed), `landscape` (`loss`, `grad_norm`,
        `loss_range`, `max_grad_change`, `beta_smoothness`) and
        `effective_step` (`weight_norms.curves`).
    """
    result = {}
    for callback in instruments:
        history = callback.history
        if isinstance(callback, StepScore):
            m = callback.metric
            result[m] = {
                "step": history["step"],
                "train": history.get(f"steps/train_{m}", []),
                "test": history.get(f"steps/test_{m}", []),
            }
        elif isinstance(callback, ActivationPercentiles):
            # The last nonlinearity followed: the last hidden layer's input.
            prefixes = [t.rsplit("/", 1)[0] for t in history if t != "step"]
            if prefixes:
                last = prefixes[-1]
                result["percentiles"] = {
                    "layer": last.split("/")[1],
                    "step": history["step"],
                    **{
                        tag.rsplit("/", 1)[1]: values
                        for tag, values in history.items()
                        if tag.startswith(last + "/")
                    },
                }
        elif isinstance(callback, weight_norms.EffectiveStep):
            result["effective_step"] = weight_norms.curves(callback)
        elif isinstance(callback, LandscapeProbe):
            result["landscape"] = {
                "step": history["step"],
                **{
                    tag.split("/", 1)[1]: values
                    for tag, values in history.items()
                    if tag != "step"
                },
            }
    if result:
        result["steps_per_epoch"] = steps_per_epoch
    return result


def batch_noise(model, layers, x, batch_size, seed):
    """The noise a normalization layer adds by depending on the rest of its batch.

    For `NOISE_PROBES` training examples, each is put in `NOISE_DRAWS`
    batches of `batch_size` with random companions, and the first
    normalization layer is called on them in training mode (as in `fit`;
    its state is restored after). The number is the RMS over probes and
    features of the std of the probe's output across batches, divided by the
    RMS over features of the outputs' std across the examples of a batch:
    0 for a per-example normalizer (LayerNorm), about
    sqrt((1 + z² (kappa + 2) / 4) / M) for BN over M examples (batch-mean
    noise sigma²/M plus batch-std noise; z is the probe's standardized
    value, kappa the excess kurtosis), so it grows as 1/sqrt(M) as the batch
    shrinks; Ghost BN's M is its ghost batch.

    Args:
        model: The trained model (Functional or Sequential: the layer's
            input is read through a sub-model).
        layers: The normalization layers the builder made, in order.
        x: Training examples.
        batch_size: The cell's batch size.
        seed: Seeds the probes and companions.

    Returns:
        The relative noise, or NaN without a normalization layer (or when
        its input cannot be read from the model) or with a batch of 1.
    """
    if not layers or batch_size < 2:
        return float("nan")
    layer = layers[0]
    try:
        inputs = model.inputs
        features = keras.Model(inputs[0] if len(inputs) == 1 else inputs, layer.input)
    except (AttributeError, ValueError, TypeError):  # e.g. a subclassed model
        return float("nan")
    rng = np.random.default_rng(seed)
    pool = x[rng.permutation(len(x))[:NOISE_EXAMPLES]]
    h = keras.ops.convert_to_numpy(features(pool, training=False))
    batch_size = min(batch_size, len(h))
    state = [keras.ops.convert_to_numpy(v) for v in layer.non_trainable_variables]
    outputs, spreads = [], []
    for probe in range(min(NOISE_PROBES, len(h))):
        others = np.delete(np.arange(len(h)), probe)
        draws = []
        for _ in range(NOISE_DRAWS):
            rows = rng.choice(others, batch_size - 1, replace=False)
            batch = h[np.concatenate([[probe], rows])]
            out = keras.ops.convert_to_numpy(layer(batch, training=True))
            out = out.reshape(len(batch), -1)
            draws.append(out[0])
            spreads.append(out.std(axis=0))
        outputs.append(np.std(draws, axis=0))
    for variable, value in zip(layer.non_trainable_variables, state, strict=True):
        variable.assign(value)
    scale = np.sqrt(np.mean(np.square(spreads)))
    return float(np.sqrt(np.mean(np.square(outputs))) / scale) if scale > 0 else 0.0


def hidden_kernels(model):
    """The kernels of the model's hidden layers, input side first
    (`weight_norms.hidden_kernel_layers`)."""
    return [layer.kernel for layer in weight_norms.hidden_kernel_layers(model)]


def init_grad_norms(model, x, y):
    """The gradient norm of each hidden kernel at the model's current weights.

    The loss is the compiled one (`model.compute_loss`, the loss `fit`
    differentiates) on the batch `(x, y)`, in training mode (batch
    statistics, as in the first step). The forward pass's state updates
    (moving statistics, noise seeds) are undone afterwards, so the first
    step starts from the state the builder made. Eager on TensorFlow (one
    call: tracing a function per model would cost more than it runs);
    other backends go through `kbn.callbacks.gradients`.

    Args:
        model: A compiled model, before its first step.
        x, y: One training batch (the cell's batch size).

    Returns:
        `[||dL/dW_l||_2 for each hidden kernel l]`, input side first
        (`hidden_kernels`); `[]` for a model without hidden kernels.
    """
    kernels = hidden_kernels(model)
    if not kernels:
        return []
    if keras.backend.backend() == "tensorflow":
        grads = _tensorflow_gradients(model, x, y)
    else:
        compute = loss_and_gradients_function(model)
        _, grads = compute(
            current_values(model.trainable_variables),
            current_values(model.non_trainable_variables),
            x,
            y,
        )
    by_path = {v.path: g for v, g in zip(model.trainable_variables, grads, strict=True)}
    return [
        float(np.sqrt(np.sum(np.square(np.asarray(by_path[k.path], np.float64)))))
        for k in kernels
    ]


def _tensorflow_gradients(model, x, y):
    """The loss's gradient per trainable variable, eagerly; every
    non-trainable variable is restored after the forward pass."""
    import tensorflow as tf

    state = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
    try:
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        grads = tape.gradient(loss, [v.value for v in model.trainable_variables])
    finally:
        for variable, value in zip(model.non_trainable_variables, state, strict=True):
            variable.assign(value)
    return [
        np.zeros(v.shape) if g is None else keras.ops.convert_to_numpy(g)
        for v, g in zip(model.trainable_variables, grads, strict=True)
    ]
