"""`model.fit` where users start: small models, first epoch and later ones.

Models (the studies' own, rebuilt here so the benchmark does not depend on
`studies`): `mlp`, 6 x 100 ReLU units on digits-sized data (1437 x 64
train, 360 validation, 10 classes); `cnn`, the studies' small VGG-style net
(two blocks of two 3x3 convolutions, 32 and 64 filters, max pooling, global
average pooling) on 8x8x1 images; `conv`, three 3x3 convolutions of 32
channels on 8x8x3 images. Normalization before each ReLU; `none` keeps the
biases instead.

Each round builds a fresh model per variant (kbn, stock, none), in rotation,
and fits it for `epochs` epochs with batch 60, SGD and validation data, in
one process, as a study's cells or a tuner's trials do: the first epoch
includes tracing and compiling, and from the second round on it shows what a
second model in the same process pays. Figures are the first epoch and the
median of the later epochs, each `median (min-max)` over the rounds, and the
ratios stock / kbn per round (above 1, kbn is faster).

Usage:
    KERAS_BACKEND=tensorflow python -m benchmarks.fit_benchmark [--rounds 3]
    KERAS_BACKEND=jax python -m benchmarks.fit_benchmark [--rounds 3]
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kbn  # noqa: E402
from benchmarks import tables, timing  # noqa: E402

VARIANTS = ("kbn", "stock", "none")
MODELS = {"mlp": (64,), "cnn": (8, 8, 1), "conv": (8, 8, 3)}
BATCH = 60


def _norm(variant):
    if variant == "kbn":
        return kbn.BatchNormalization()
    return keras.layers.BatchNormalization() if variant == "stock" else None


def _block(variant, make):
    norm = _norm(variant)
    layer = make(use_bias=norm is None)
    return (
        [layer, keras.layers.ReLU()]
        if norm is None
        else [layer, norm, keras.layers.ReLU()]
    )


def build(name, variant):
    """A fresh model `name` with normalization `variant`."""
    layers = [keras.Input(MODELS[name])]
    if name == "mlp":
        for _ in range(6):
            layers += _block(variant, lambda **kw: keras.layers.Dense(100, **kw))
    else:
        filters = [32, 32, 64, 64] if name == "cnn" else [32, 32, 32]
        for i, f in enumerate(filters):
            layers += _block(
                variant,
                lambda f=f, **kw: keras.layers.Conv2D(f, 3, padding="same", **kw),
            )
            if name == "cnn" and i % 2 == 1:
                layers.append(keras.layers.MaxPooling2D(2, padding="same"))
        layers.append(keras.layers.GlobalAveragePooling2D())
    layers.append(keras.layers.Dense(10))
    model = keras.Sequential(layers)
    model.compile(
        keras.optimizers.SGD(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def data(name, seed=0):
    rng = np.random.default_rng(seed)
    shape = MODELS[name]
    x = rng.normal(size=(1797, *shape)).astype("float32")
    y = rng.integers(0, 10, 1797)
    return (x[:1437], y[:1437]), (x[1437:], y[1437:])


class _EpochTimes(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def fit_seconds(name, variant, epochs):
    """`(first epoch, median later epoch)` of one fresh model, in seconds."""
    train, val = data(name)
    model = build(name, variant)
    times = _EpochTimes()
    model.fit(
        *train,
        batch_size=BATCH,
        epochs=epochs,
        validation_data=val,
        callbacks=[times],
        verbose=0,
    )
    return times.seconds[0], statistics.median(times.seconds[1:])


def measure(name, rounds, epochs):
    """One row: per-variant spreads and the stock / kbn ratios."""
    per_round = []
    for r in range(rounds):
        order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]  # rotate who goes first
        per_round.append({v: fit_seconds(name, v, epochs) for v in order})
        keras.backend.clear_session()
    row = {"backend": keras.backend.backend(), "model": name, "rounds": rounds}
    for i, part in enumerate(("first", "later")):
        row[part] = {v: timing.spread(r[v][i] for r in per_round) for v in VARIANTS}
        row[part + "_ratio"] = timing.spread(
            r["stock"][i] / r["kbn"][i] for r in per_round
        )
    return row


def run(rounds=3, epochs=4, models=tuple(MODELS)):
    return [measure(name, rounds, epochs) for name in models]


def _ms(spread):
    return tables._range({k: v * 1e3 for k, v in spread.items()})


def table(rows):
    lines = [
        "| backend | model | epoch | kbn (ms) | stock (ms) | none (ms) | stock / kbn |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for part, label in (("first", "first"), ("later", "later (median)")):
            cells = [_ms(r[part][v]) for v in VARIANTS]
            lines.append(
                f"| {r['backend']} | {r['model']} | {label} | {' | '.join(cells)} "
                f"| {tables._range(r[part + '_ratio'])} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=tables.at_least_3, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", action="store_true", help="print rows as JSON")
    parser.add_argument("--table", help=argparse.SUPPRESS)  # rows JSON file
    args = parser.parse_args(argv)
    if args.table:
        with open(args.table) as f:
            rows = [row for line in f for row in json.loads(line)]
    else:
        rows = run(args.rounds, args.epochs, tuple(args.models.split(",")))
    if args.json:
        print(json.dumps(rows))
        return
    print(table(rows))
    print("stock / kbn > 1: kbn is faster")


if __name__ == "__main__":
    main()
