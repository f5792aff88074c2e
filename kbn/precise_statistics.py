"""`kbn.recompute_statistics`: exact moving statistics over a dataset ("precise BN").

Numerical decisions, made here once:

- Each batch's moments (count, mean and the sum of squared deviations `M2`)
  are computed on the device in the input's precision, float32 at least, with
  the corrected two-pass algorithm of `kbn.moments` (large offsets keep their
  variance).
- Batches are pooled on the host in float64 with Chan et al.'s parallel
  update (`combine_moments`), which is exact: the result is the moments of
  all the data, whatever the batch size.
- The stored variance is the biased `M2 / n`, Keras's convention, or
  `M2 / (n - 1)` for a `kbn.BatchNormalization` with
  `unbiased_moving_variance=True`.
"""

import itertools

import keras
import numpy as np
from keras import backend, ops, tree

# Not exported under keras.*: the mask a layer attached to its output.
from keras.src.backend import get_keras_mask

from kbn import model_graph
from kbn import moments as stats
from kbn.batch_normalization import BatchNormalization as KbnBatchNormalization

# Weights that Batch Renormalization derives from the moving statistics.
_RENORM_STDDEVS = ("moving_stddev", "renorm_stddev")


def recompute_statistics(model, data, batch_size=32, steps=None):
    """Replaces every BN layer's moving statistics with exact ones over `data`.

    The moving mean and variance of batch normalization are exponential
    averages of training batches' statistics, taken while the weights were
    still changing. `recompute_statistics` replaces them, for every
    `keras.layers.BatchNormalization` and `kbn.BatchNormalization` in `model`,
    with the exact mean and variance of the layer's inputs over `data` ("precise
    BN", Wu and Johnson 2021). No other weight changes. Use it:

    - after Stochastic Weight Averaging or any averaging of weights, where the
      averaged weights were never trained with and no moving statistics
      match them (what `torch.optim.swa_utils.update_bn` is for);
    - after fine-tuning with frozen BN layers (`trainable=False`), whose
      statistics no longer match the features feeding them;
    - when the moving average lags the weights: with the default momentum of
      0.99, the average still remembers the first few hundred steps, so short
      trainings and large final learning rates leave it off.

    Every layer runs in inference mode, as it will at prediction time:
    dropout and other training-only behaviour stay off, and each BN layer
    normalizes with its moving statistics. So a BN layer's input depends on
    the new statistics of the BN layers before it, and layers are processed
    in order of BN depth (the number of BN layers on the longest path from the
    inputs): one pass over `data` per depth, each pass running the model once
    per batch (compiled, through `predict_on_batch`). A ResNet-50 takes about
    50 passes. This is what the model will see at inference, and differs from
    `torch.optim.swa_utils.update_bn` and fvcore's `update_bn_stats`, which run
    the model in training mode (upstream layers normalized with batch
    statistics, dropout on).

    Masked positions (a Keras mask on a BN layer's input) are left out of its
    statistics, as in training. For a layer with Batch Renormalization
    (`renorm=True`), `moving_stddev` and `renorm_stddev` become
    `sqrt(variance + epsilon)` and `renorm_mean` the mean, the values the
    layer's own updates would converge to. A `kbn.BatchNormalization` with
    `momentum=None` (cumulative average) has its `num_batches_tracked` set to
    the number of batches pooled, so that further training continues the
    average as if these batches had been averaged one by one.

    If anything fails midway, every statistic is restored before the error
    propagates.

    Example:

    ```python
    swa_model = ...  # weights averaged over the last epochs
    kbn.recompute_statistics(swa_model, x_train, batch_size=256)
    ```

    Args:
        model: A built Functional or Sequential Keras model with at least one
            batch normalization layer. Modified in place.
        data: The inputs to compute statistics over: a NumPy array (or list
            or dict of arrays for several inputs), split into batches of
            `batch_size`; a tuple `(x, y)` or `(x, y, sample_weight)`, whose
            `x` is used (a list is read as several inputs, not as `(x, y)`);
            or a `tf.data.Dataset` or any other iterable of such batches, used
            as it is batched. It is read once per BN depth, so it should yield
            the same batches each time (a shuffled dataset gives each depth
            its own sample); an iterator that can be read only once (a
            generator) is read once and its batches kept in memory. An
            infinite dataset needs `steps`.
        batch_size: Positive integer: rows per batch, for array data only.
        steps: Optional positive integer: the number of batches read from
            `data` per pass (all of them by default).

    Returns:
        Dict of layer name (prefixed with the names of the nested models
        holding it, joined by `/`) to the number of values each statistic of
        that layer pooled (with a mask, the fewest over its features).

    Raises:
        ValueError: If `batch_size` or `steps` is not a positive integer; if
            `model` is a subclassed model or has no batch normalization layer;
            if a BN layer is called more than once, or sits inside a
            subclassed layer the graph cannot be followed into; or if `data`
            is empty.

    Reference:
        - [Wu and Johnson, 2021](https://arxiv.org/abs/2105.07576)
          (Rethinking "Batch" in BatchNorm; precise BN).
        - [Izmailov et al., 2018](https://arxiv.org/abs/1803.05407)
          (Stochastic Weight Averaging).
        - [Chan, Golub and LeVeque, 1979](https://doi.org/10.1007/978-3-642-51461-6_3)
          (pairwise updates of the variance).
    """
    _check_positive_int("batch_size", batch_size)
    if steps is not None:
        _check_positive_int("steps", steps)
    model_graph.require_graph_model(model, "recompute_statistics")
    layers = model_graph.batch_norm_layers(model)
    if not layers:
        raise ValueError(
            "`recompute_statistics` needs a model with at least one batch "
            f"normalization layer; {model.name!r} has none."
        )
    graph = model_graph.flatten(model)
    bn_calls = _check_calls(graph, layers)
    levels = bn_levels(graph)
    batches = _batch_source(data, batch_size, steps)
    probe = _Probe(model, graph, bn_calls)
    index = {id(call): i for i, call in enumerate(bn_calls)}
    saved = [(w, ops.convert_to_numpy(w)) for la in layers for w in la.weights]
    counts = {}
    try:
        for level in levels:
            pooled, seen = _pool(probe, batches(), [index[id(c)] for c in level])
            for call, moments in zip(level, pooled, strict=True):
                counts[_key(call)] = _assign(call.layer, *moments, batches=seen)
    except BaseException:
        for w, value in saved:
            w.assign(value)
        raise
    return counts


def combine_moments(a, b):
    """Moments of the union of two sets, from each set's (Chan et al. 1979).

    Args:
        a: `(count, mean, m2)` of the first set: arrays (or scalars) that
            broadcast together; `m2` is the sum of squared deviations from the
            set's mean. A count of 0 means an empty set.
        b: The same for the second set.

    Returns:
        `(count, mean, m2)` of the union, float64 arrays.
    """
    na, ma, sa = (np.asarray(v, dtype=np.float64) for v in a)
    nb, mb, sb = (np.asarray(v, dtype=np.float64) for v in b)
    n = na + nb
    safe = np.where(n > 0, n, 1.0)
    delta = mb - ma
    mean = ma + delta * (nb / safe)
    m2 = sa + sb + delta * delta * (na * nb / safe)
    return n, mean, m2


def bn_levels(graph):
    """The flat graph's BN calls grouped by BN depth.

    Args:
        graph: A `model_graph.FlatGraph`.

    Returns:
        A list of lists of calls: level `d` holds the BN calls with `d` BN
        calls on their longest path from the inputs, in execution order.
    """
    depth, levels = {}, []
    for call in graph.calls:
        d = max((depth.get(k, 0) for k in call.inputs), default=0)
        if isinstance(call.layer, keras.layers.BatchNormalization):
            if d == len(levels):
                levels.append([])
            levels[d].append(call)
            d += 1
        depth.update(dict.fromkeys(call.outputs, d))
    return levels


# ------------------------------------------------------------------ the pass


class _Probe(keras.Model):
    """Per-batch moments of every BN call's input, the model in inference mode.

    A model of its own so that `predict_on_batch` compiles it once for every
    pass and batch, on any backend. It calls the model's layers on tensors
    (never on symbolic ones, which would add nodes to them), and tracks the
    model so that, on JAX, its variables are the compiled function's state
    and the statistics assigned between passes are read.
    """

    def __init__(self, model, graph, bn_calls):
        super().__init__(name="recompute_statistics_probe")
        self.source = model
        # A plain tuple inside a closure keeps Keras from tracking the calls.
        needed = graph.ancestors([k for call in bn_calls for k in call.inputs])
        plan = (graph, needed, bn_calls)
        self._plan = lambda: plan
        self.built = True

    def call(self, inputs):
        graph, calls, bn_calls = self._plan()
        standardized = model_graph.graph_of(self.source)._standardize_inputs(inputs)
        values = graph.run(standardized, calls)
        return [_batch_moments(call, values) for call in bn_calls]


def _batch_moments(call, values):
    x = values[_input_key(call)]
    mask = _mask(call, values, x)
    x = ops.cast(x, backend.result_type(x.dtype, "float32"))
    rank = len(x.shape)
    features = model_graph.feature_axes(call.layer, rank)
    axes = tuple(a for a in range(rank) if a not in features)
    weights = None
    if mask is not None:
        weights = ops.broadcast_to(
            ops.expand_dims(ops.cast(mask, x.dtype), -1), ops.shape(x)
        )
    mean, variance, count = stats.moments(x, axes, weights)
    shape = [x.shape[a] for a in features]
    count = ops.broadcast_to(count, ops.shape(mean))
    return tuple(ops.reshape(v, shape) for v in (count, mean, variance * count))


def _input_key(call):
    node = call.node
    args = node.arguments.args
    x = args[0] if args else node.arguments.kwargs["inputs"]
    position = [id(t) for t in node.input_tensors].index(id(x))
    return call.inputs[position]


def _mask(call, values, x):
    # An explicit `mask=` argument, else the Keras mask the input carries.
    mask = call.node.arguments.kwargs.get("mask")
    if isinstance(mask, keras.KerasTensor):
        position = [id(t) for t in call.node.input_tensors].index(id(mask))
        return values[call.inputs[position]]
    return get_keras_mask(x)


def _pool(probe, batches, indices):
    """Float64 moments of the chosen BN calls over all batches, and the count."""
    pooled = [None] * len(indices)
    seen = 0
    for x in batches:
        if _rows(x) == 0:
            continue
        moments = probe.predict_on_batch(x)
        seen += 1
        for j, i in enumerate(indices):
            batch = moments[i]
            pooled[j] = (
                batch if pooled[j] is None else combine_moments(pooled[j], batch)
            )
    if seen == 0:
        raise ValueError("Argument `data` is empty: it yielded no samples.")
    return [tuple(np.asarray(v, np.float64) for v in m) for m in pooled], seen


def _assign(layer, count, mean, m2, batches):
    """Stores pooled moments in a BN layer; returns the smallest count."""
    if isinstance(layer, KbnBatchNormalization) and layer.unbiased_moving_variance:
        variance = m2 / np.maximum(count - 1.0, 1.0)
    else:
        variance = m2 / np.where(count > 0, count, 1.0)
    # A feature with no unmasked value keeps its statistics.
    seen = count > 0
    new = {"moving_mean": mean, "moving_variance": variance}
    if layer.renorm:
        stddev = np.sqrt(variance + layer.epsilon)
        new.update(renorm_mean=mean, **dict.fromkeys(_RENORM_STDDEVS, stddev))
    for w in layer.weights:
        if w.name in new:
            old = ops.convert_to_numpy(w)
            w.assign(np.where(seen, new[w.name], old).astype(old.dtype))
    if getattr(layer, "num_batches_tracked", None) is not None:
        layer.num_batches_tracked.assign(batches)
    return int(count.min())


# ------------------------------------------------------------------ checking


def _check_calls(graph, layers):
    """The BN calls of the flat graph, one per layer; ValueErrors otherwise."""
    calls = [
        c for c in graph.calls if isinstance(c.layer, keras.layers.BatchNormalization)
    ]
    called = {}
    for call in calls:
        called.setdefault(id(call.layer), []).append(call)
    shared = [la.name for la in layers if len(called.get(id(la), ())) > 1]
    if shared:
        raise ValueError(
            f"Batch normalization layers {shared} are called more than once "
            "(shared layers, or inside a nested model called twice); their "
            "inputs differ between calls, so `recompute_statistics` cannot "
            "give them one set of statistics."
        )
    hidden = [la.name for la in layers if id(la) not in called]
    if hidden:
        raise ValueError(
            f"Batch normalization layers {hidden} sit inside subclassed "
            "layers or models (or are never called), whose calls "
            "`recompute_statistics` cannot follow. Rebuild them as Functional "
            "or Sequential models."
        )
    return calls


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"Argument `{name}` must be a positive integer. Received: {name}={value!r}"
        )


def _key(call):
    return "/".join(call.scope + (call.layer.name,))


# ---------------------------------------------------------------------- data


def _batch_source(data, batch_size, steps):
    """A callable returning a fresh iterator over the input batches of `data`."""
    x = _inputs_of(data)
    if _is_arrays(x):
        rows = _rows(x)

        def fresh():
            for start in range(0, rows, batch_size):
                stop = start + batch_size
                yield tree.map_structure(lambda a: a[start:stop], x)  # noqa: B023

    else:
        try:
            iterator = iter(x)
        except TypeError:
            raise ValueError(
                "Argument `data` must be arrays, a tuple (x, y), a "
                f"tf.data.Dataset or an iterable of batches. Received: {data!r}"
            ) from None
        if iterator is x:
            # Readable once, but read once per BN depth: keep what is read.
            cached = list(itertools.islice(iterator, steps))

            def fresh():
                return iter(cached)

        else:

            def fresh():
                return iter(x)

    def batches():
        for element in itertools.islice(fresh(), steps):
            yield tree.map_structure(_to_array, _inputs_of(element))

    return batches


def _inputs_of(data):
    if isinstance(data, tuple):
        if not 1 <= len(data) <= 3:
            raise ValueError(
                "A tuple in `data` must be (x,), (x, y) or (x, y, sample_weight). "
                f"Received a tuple of length {len(data)}."
            )
        return data[0]
    return data


def _is_arrays(x):
    leaves = tree.flatten(x)
    return bool(leaves) and all(
        isinstance(a, np.ndarray) or ops.is_tensor(a) for a in leaves
    )


def _rows(x):
    return int(tree.flatten(x)[0].shape[0])


def _to_array(a):
    # Backend tensors go in as they are; anything else (tf.data's tensors on
    # another backend, Python lists) through NumPy.
    return a if isinstance(a, np.ndarray) or ops.is_tensor(a) else np.asarray(a)
