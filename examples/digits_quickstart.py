"""Quick start: the original BN paper's MLP on scikit-learn digits, three ways.

Trains a 3x100 sigmoid MLP (Ioffe & Szegedy 2015, section 4.1) on the offline
digits data set with no normalization, with keras.layers.BatchNormalization
and with kbn.BatchNormalization, at a small and a large learning rate, and
prints validation accuracy and time per epoch. BN goes before the sigmoid and
the dense layers it follows have no bias. Every variant starts from the
standard init for sigmoid units (Glorot & Bengio 2010: 4x the Glorot-uniform
bound), so the network without BN gets a fair start.

Usage:
    python examples/digits_quickstart.py [--epochs 20] [--lrs 0.05,2.0]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import kbn  # noqa: E402

VARIANTS = {
    "none": None,
    "keras": keras.layers.BatchNormalization,
    "kbn": kbn.BatchNormalization,
}


def digits():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def mlp(norm, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((64,))]
    for _ in range(3):
        layers.append(
            keras.layers.Dense(
                100,
                use_bias=norm is None,
                kernel_initializer=keras.initializers.VarianceScaling(
                    16.0,
                    "fan_avg",
                    "uniform",  # 4x the Glorot bound
                ),
            )
        )
        if norm is not None:
            layers.append(norm())
        layers.append(keras.layers.Activation("sigmoid"))
    layers.append(keras.layers.Dense(10))
    return keras.Sequential(layers)


def train(variant, lr, epochs, data):
    x_train, x_val, y_train, y_val = data
    model = mlp(VARIANTS[variant])
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        batch_size=60,
        epochs=epochs,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    accuracy = history.history["val_accuracy"][-1]
    return float(np.nan_to_num(accuracy)), seconds / epochs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs per run (>= 1)")
    parser.add_argument(
        "--lrs", default="0.05,2.0", help="comma-separated SGD learning rates (> 0)"
    )
    args = parser.parse_args(argv)
    try:
        lrs = [float(v) for v in args.lrs.split(",")]
    except ValueError:
        parser.error(f"--lrs must be comma-separated numbers, got {args.lrs!r}")
    if args.epochs < 1 or not lrs or min(lrs) <= 0:
        parser.error("--epochs must be >= 1 and every learning rate > 0")
    data = digits()
    print(
        f"digits: {len(data[0])} train / {len(data[1])} validation, "
        f"3x100 sigmoid MLP, SGD, batch 60, {args.epochs} epochs"
    )
    print(f"{'variant':8} {'lr':>6} {'val acc':>8} {'s/epoch':>8}")
    for lr in lrs:
        for variant in VARIANTS:
            accuracy, per_epoch = train(variant, lr, args.epochs, data)
            print(f"{variant:8} {lr:6g} {accuracy:8.3f} {per_epoch:8.3f}")


if __name__ == "__main__":
    main()
