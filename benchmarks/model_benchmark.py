"""`model.fit` step time of a small residual CNN with kbn against stock BN.

The model: a 3x3 stem, then residual blocks of depthwise 3x3 and pointwise
1x1 convolutions (MobileNet-style separable blocks in a ResNet layout), each
convolution followed by batch normalization: 1 + 2 * blocks BN layers (9 by
default). Separable convolutions keep the arithmetic small, so normalization
is a real share of the step, as in the mobile and efficient networks where BN
cost matters most. On JAX, one block of full 3x3 and 1x1 convolutions (3
convolutions, 3 BN; see `config`).

Rows: the default `compile()` (on CPU Keras does not XLA-compile the step),
`jit_compile=True`, and the default compile under `tf.distribute`'s
MirroredStrategy on two logical CPU devices (measured in a fresh process,
since logical devices must be configured before TensorFlow starts); and, in a
process on the JAX backend, the default compile there (Keras jits the step).

Each figure is the median step time of one `fit` after its first epoch
(tracing, compilation); fits of kbn and the stock layer alternate, `--runs`
of each (at least 3), and the table gives the median and range over them.

Usage:
    python -m benchmarks.model_benchmark [--quick] [--runs N]
"""

import argparse
import importlib.util
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kbn  # noqa: E402
from benchmarks import processes, tables, timing  # noqa: E402


def build_model(bn_class, image=32, width=32, blocks=4, classes=10, separable=True):
    """The residual CNN, with `bn_class` for every normalization.

    `separable=False` puts a full 3x3 convolution where the depthwise one is.
    """
    layers = keras.layers
    inputs = keras.Input((image, image, 3))
    h = layers.Conv2D(width, 3, padding="same", use_bias=False)(inputs)
    h = layers.ReLU()(bn_class()(h))
    for _ in range(blocks):
        skip = h
        if separable:
            h = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(h)
        else:
            h = layers.Conv2D(width, 3, padding="same", use_bias=False)(h)
        h = layers.ReLU()(bn_class()(h))
        h = layers.Conv2D(width, 1, use_bias=False)(h)
        h = bn_class()(h)
        h = layers.ReLU()(layers.Add()([h, skip]))
    h = layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, layers.Dense(classes)(h))


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training batch, from Keras's batch hooks."""

    def __init__(self):
        super().__init__()
        self.ms = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.ms.append((time.perf_counter() - self._start) * 1e3)


def step_ms(bn_class, jit_compile, config, strategy=None):
    """Median `fit` step time after the first epoch (tracing, compilation)."""
    keras.utils.set_random_seed(0)
    n = config["batch"] * config["steps"]
    rng = np.random.default_rng(0)
    image = config["image"]
    x = rng.normal(size=(n, image, image, 3)).astype("float32")
    y = rng.integers(0, 10, n)

    def compiled():
        model = build_model(
            bn_class,
            image=image,
            blocks=config["blocks"],
            separable=config.get("separable", True),
        )
        model.compile(
            optimizer="sgd",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
        return model

    if strategy is None:
        model = compiled()
    else:
        with strategy.scope():
            model = compiled()
    timer = StepTimer()
    model.fit(
        x,
        y,
        batch_size=config["batch"],
        epochs=config["epochs"],
        verbose=0,
        callbacks=[timer],
    )
    return statistics.median(timer.ms[config["steps"] :])


def config(quick, backend="tensorflow"):
    """The model and data sizes.

    On JAX the blocks use full 3x3 convolutions: XLA:CPU's depthwise
    convolution alone takes about 3 s of the separable model's step there
    (3.1 s with kbn, 3.0 s with the stock layer), which would hide any
    difference in normalization.
    """
    if quick:
        cfg = {"image": 8, "blocks": 1, "batch": 16, "steps": 2, "epochs": 2}
    else:
        cfg = {"image": 32, "blocks": 4, "batch": 64, "steps": 8, "epochs": 4}
    if backend == "jax":
        cfg.update(blocks=1, separable=False)
    return cfg


def _pair(compile_name, jit_compile, cfg, runs, strategy=None):
    """One row: kbn and stock fits alternating, `runs` of each."""
    classes = {"kbn": kbn.BatchNormalization, "stock": keras.layers.BatchNormalization}
    per_run = []
    for _ in range(runs):
        per_run.append(
            {
                name: step_ms(cls, jit_compile, cfg, strategy)
                for name, cls in classes.items()
            }
        )
    row = {"backend": keras.backend.backend(), "compile": compile_name}
    row.update(timing.summarize(per_run), runs=runs)
    kind = "separable" if cfg.get("separable", True) else "3x3"
    row.update(model=f"residual {kind} CNN, {1 + 2 * cfg['blocks']} BN", **cfg)
    return row


def run(quick=False, runs=3):
    """The TensorFlow rows (default, jit_compile, mirrored), then the JAX row.

    Each set runs in a fresh process, so that no earlier benchmark's heap
    state (see layer_benchmark.run) slows one model down more than the other,
    and so that each backend and device setup starts clean.
    """
    rows = _fresh_process("--json", quick, runs)
    rows.append(_fresh_process("--mirrored", quick, runs))
    if importlib.util.find_spec("jax") is not None:
        rows.append(_fresh_process("--json", quick, runs, backend="jax"))
    return rows


def _fresh_process(flag, quick, runs, backend="tensorflow"):
    args = [flag, "--runs", str(runs)] + (["--quick"] if quick else [])
    return processes.run_json(
        "benchmarks.model_benchmark", *args, env={"KERAS_BACKEND": backend}
    )


def _rows_here(quick, runs):
    """The rows this process's backend measures (TensorFlow: two)."""
    cfg = config(quick, keras.backend.backend())
    if keras.backend.backend() == "jax":
        # The default, "auto", jits the step on JAX (False would run it op by op).
        return _pair("default (jax.jit)", "auto", cfg, runs)
    return [
        _pair("default", False, cfg, runs),
        _pair("jit_compile=True", True, cfg, runs),
    ]


def _mirrored_main(quick, runs):
    # Importing TensorFlow does not start its devices, so the CPU can still
    # be split into two logical devices here.
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    name = "default, MirroredStrategy (2 CPUs)"
    return _pair(name, False, config(quick), runs, strategy)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller model input")
    parser.add_argument(
        "--mirrored", action="store_true", help="only the MirroredStrategy row (JSON)"
    )
    parser.add_argument(
        "--json", action="store_true", help="this backend's rows, as JSON"
    )
    parser.add_argument(
        "--runs", type=tables.at_least_3, default=3, help="fits of each (>= 3)"
    )
    args = parser.parse_args(argv)
    if args.mirrored:
        print(json.dumps(_mirrored_main(args.quick, args.runs)))
        return
    if args.json:
        print(json.dumps(_rows_here(args.quick, args.runs)))
        return
    print(tables.model_table(run(args.quick, args.runs)))


if __name__ == "__main__":
    main()
