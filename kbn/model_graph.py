"""Model graphs for the BN toolbox: walking, flattening, running and cloning.

`kbn.convert`, `kbn.recompute_statistics` and `kbn.fold` work on Functional and
Sequential models, including models used as layers inside other models. This
module holds what they share:

- `graph_of` and `graphs`: the Functional graph behind a model (a Sequential
  model keeps one once built) and every graph nested in it.
- `flatten`: one list of layer calls in execution order, nested models
  expanded in place, with a key for every tensor, so that "which batch
  normalization feeds which" is a plain graph question across model borders.
- `FlatGraph.run`: runs some of those calls on real tensors in inference mode.
  Running the calls directly, rather than building a sub-model from them,
  adds no node to the caller's layers (a symbolic call would, and `layer.input`
  would then fail on them).
- `clone`: `keras.models.clone_model` with the weights copied, and a hook to
  replace some layers.

Keras has no public API for the nodes of a Functional graph; like
`keras.models.clone_model`, this module reads `_nodes_by_depth` and the nodes'
`arguments`.
"""

import dataclasses

import keras
from keras import ops, tree

# Not exported under keras.*: the class of `keras.Model(inputs, outputs)`.
from keras.src.models.functional import Functional


def graph_of(model):
    """The Functional graph of a Functional or Sequential model.

    Args:
        model: A layer.

    Returns:
        The Functional graph, or None for anything else (a subclassed model, a
        plain layer, a Sequential model that was never built).
    """
    if isinstance(model, keras.Sequential):
        return model._functional
    if isinstance(model, Functional):
        return model
    return None


def require_graph_model(model, function):
    """The model's graph; a ValueError naming `function` if it has none."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`{function}` expects a Keras model. Received: model={model!r}"
        )
    graph = graph_of(model)
    if graph is None:
        if isinstance(model, keras.Sequential):
            reason = (
                "is a Sequential model that was never built; give it a "
                "`keras.Input` or call `model.build(input_shape)` first"
            )
        else:
            reason = (
                f"is a subclassed model ({type(model).__name__}); its layers "
                "are called from Python code that cannot be cloned or walked. "
                "Rebuild it as a Functional or Sequential model"
            )
        raise ValueError(
            f"`{function}` needs a Functional or Sequential model, but "
            f"{model.name!r} {reason}."
        )
    return graph


def graphs(model):
    """The model's graph and every distinct graph nested in it, outer first."""
    found, stack = {}, [graph_of(model)]
    while stack:
        graph = stack.pop()
        if graph is None or id(graph) in found:
            continue
        found[id(graph)] = graph
        stack.extend(graph_of(node.operation) for node in layer_nodes(graph))
    return list(found.values())


def layer_nodes(graph):
    """The graph's call nodes (not its inputs), in execution order."""
    return [
        node
        for depth in sorted(graph._nodes_by_depth, reverse=True)
        for node in graph._nodes_by_depth[depth]
        if node.operation is not None and not node.is_input
    ]


def sublayers(layer):
    """Every layer inside `layer` (recursively), without `layer` itself."""
    return layer._flatten_layers(include_self=False, recursive=True)


def batch_norm_layers(model):
    """Every `keras.layers.BatchNormalization` (kbn's included) in `model`."""
    return [
        layer
        for layer in sublayers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def feature_axes(layer, rank):
    """A BN layer's feature axes, non-negative and sorted, for inputs of `rank`."""
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    return tuple(sorted(a % rank for a in axes))


# ---------------------------------------------------------------- flattening


@dataclasses.dataclass(eq=False)
class Call:
    """One call of a layer (or operation) in a flattened graph.

    Attributes:
        layer: The layer or operation called.
        node: Its node in the Functional graph that holds it (the arguments).
        inputs: Keys of the tensors it reads, one per `node.input_tensors`.
        outputs: Keys of the tensors it returns, one per `node.outputs`.
        scope: Names of the nested models holding the call, outermost first.
    """

    layer: object
    node: object
    inputs: list
    outputs: list
    scope: tuple


@dataclasses.dataclass(eq=False)
class FlatGraph:
    """A model's layer calls in execution order, nested models expanded.

    Attributes:
        calls: The `Call`s, in an order that runs every producer first.
        inputs: Keys of the model's inputs, in `model.inputs` order.
        outputs: Keys of the model's outputs, in `model.outputs` order.
    """

    calls: list
    inputs: list
    outputs: list

    def ancestors(self, keys):
        """The calls needed to compute the tensors `keys`, in execution order."""
        producer = {k: c for c in self.calls for k in c.outputs}
        needed, stack = set(), list(keys)
        while stack:
            call = producer.get(stack.pop())
            if call is not None and id(call) not in needed:
                needed.add(id(call))
                stack.extend(call.inputs)
        return [c for c in self.calls if id(c) in needed]

    def run(self, inputs, calls, values=None):
        """Runs `calls` in inference mode and returns every tensor computed.

        Args:
            inputs: The model's inputs, a flat list in `model.inputs` order.
            calls: The calls to run, in execution order (see `ancestors`).
            values: Optional dict of tensors already known, by key.

        Returns:
            Dict of key to tensor, the inputs included.
        """
        values = dict(values or {})
        values.update(zip(self.inputs, inputs, strict=True))
        for call in calls:
            known = {
                id(t): values[k]
                for t, k in zip(call.node.input_tensors, call.inputs, strict=True)
            }
            args, kwargs = call.node.arguments.fill_in(known)
            # As `model(x, training=False)` does: the call-context argument
            # overrides one written into the graph (`Dropout(...)(x, training=True)`).
            if "training" in getattr(call.layer, "_call_context_args", ()):
                kwargs["training"] = False
            outputs = tree.flatten(call.layer(*args, **kwargs))
            values.update(zip(call.outputs, outputs, strict=True))
        return values


def flatten(model):
    """The flat graph of a Functional or Sequential model.

    Nested Functional and Sequential models are expanded where they are called
    (once per call); other layers, subclassed models included, are single calls.

    Args:
        model: A model with a graph (see `require_graph_model`).

    Returns:
        A `FlatGraph`.
    """
    graph = graph_of(model)
    calls = []
    inputs = [("input", i) for i in range(len(graph.inputs))]
    outputs = _expand(graph, inputs, (), calls, [0])
    return FlatGraph(calls=calls, inputs=inputs, outputs=outputs)


def _expand(graph, input_keys, scope, calls, counter):
    # Tensor keys are (expansion number, id of the KerasTensor): a nested model
    # called twice has the same KerasTensors inside, but two expansions.
    counter[0] += 1
    expansion = counter[0]
    keys = {id(t): k for t, k in zip(graph.inputs, input_keys, strict=True)}
    for node in layer_nodes(graph):
        if any(id(t) not in keys for t in node.input_tensors):
            continue  # Not computable from the inputs, as Keras skips it too.
        inner = graph_of(node.operation)
        if inner is not None:
            args = node.arguments.args
            nested_inputs = tree.flatten(
                args[0] if args else node.arguments.kwargs.get("inputs")
            )
            if len(nested_inputs) != len(inner.inputs):
                raise ValueError(
                    f"Cannot follow the call of nested model "
                    f"{node.operation.name!r}: it takes {len(inner.inputs)} "
                    f"inputs, the call passes {len(nested_inputs)}."
                )
            nested_keys = [keys[id(t)] for t in nested_inputs]
            nested_scope = scope + (node.operation.name,)
            out = _expand(inner, nested_keys, nested_scope, calls, counter)
            keys.update(zip(map(id, node.outputs), out, strict=True))
            continue
        out = [(expansion, id(t)) for t in node.outputs]
        keys.update(zip(map(id, node.outputs), out, strict=True))
        calls.append(
            Call(
                layer=node.operation,
                node=node,
                inputs=[keys[id(t)] for t in node.input_tensors],
                outputs=out,
                scope=scope,
            )
        )
    return [keys[id(t)] for t in graph.outputs]


# ------------------------------------------------------------------- cloning


def clone(model, replace=None, call_function=None):
    """A copy of a Functional or Sequential model with new layers, same weights.

    Nested Functional and Sequential models are cloned too (recursively);
    a layer shared between calls stays shared in the copy.

    Args:
        model: The model (see `require_graph_model`).
        replace: Optional callable `replace(layer)` returning None (copy the
            layer as it is) or `(new_layer, fill)`: the layer to use instead,
            and a callable `fill(new_layer)` that sets its weights once the
            copy is built.
        call_function: Optional `call_function(layer, *args, **kwargs)` for
            the calls in Functional graphs (see `keras.models.clone_model`);
            Sequential models call each layer on the previous one's output.

    Returns:
        The copy.
    """
    fills = []

    def clone_function(layer):
        replacement = replace(layer) if replace is not None else None
        if replacement is None:
            new = layer.__class__.from_config(layer.get_config())
            fills.append(
                (new, lambda new, old=layer: new.set_weights(old.get_weights()))
            )
            return new
        new, fill = replacement
        fills.append((new, fill))
        return new

    if isinstance(model, keras.Sequential):
        call_function = None  # clone_model refuses one for Sequential models
    copy = keras.models.clone_model(
        model,
        clone_function=clone_function,
        call_function=call_function,
        recursive=True,
    )
    for new, fill in fills:
        fill(new)
    return copy


def copy_weights(source, target):
    """Assigns `source`'s weights to `target`'s, matched by variable name.

    Args:
        source: A built layer.
        target: A built layer whose weights all have a namesake in `source`
            (`source` may have more, such as kbn's `num_batches_tracked`).

    Raises:
        ValueError: If a weight of `target` has no namesake in `source`.
    """
    by_name = {w.name: w for w in source.weights}
    for w in target.weights:
        if w.name not in by_name:
            raise ValueError(
                f"Cannot copy the weights of layer {source.name!r}: it has no "
                f"weight named {w.name!r}."
            )
        w.assign(ops.convert_to_numpy(by_name[w.name]))
