"""BN's scale invariance on the studies' mlp-relu (digits), measured.

With BN after each hidden Dense layer, the net computes the same function
when the hidden kernels are multiplied by `a` (BN divides the scale out),
but for BN's epsilon: BN of `a * z` is `(z - mean) / sqrt(var + eps / a**2)`.
The gradient of a kernel scaled by `a` is `1 / a` times the scale-1 one, so
plain SGD at rate `a**2 * lr` for the hidden kernels (and `lr` for the rest:
BN's gamma and beta, the output layer, its bias) moves `W_a / a` exactly as
scale 1 moves `W` at `lr`. That is the "effective learning rate lr / a**2"
of a scaled init with BN.

Each row trains the studies' `mlp-relu` with the `bn` variant (6 x 100 ReLU,
kbn.BatchNormalization, He init; the output layer at scale 1, the studies'
default) with plain SGD, batch 60, on the same batches, float32, and
compares scale `a` against scale 1 at rate `lr`:

- `exact rates`: hidden kernels at `a**2 * lr`, the rest at `lr`; with the
  studies' epsilon (1e-3), then with 1e-8, to show what epsilon leaves.
- `one rate a**2 lr`: every variable at `a**2 * lr`, what a user can set
  with one optimizer; the output layer and BN's gamma and beta then move at
  another rate than at scale 1, so only the accuracies can be close.
- `one rate lr`: every variable at `lr`, as the init study trains a cell.

`max rel diff` of a layer is `max |W_a / a - W_1| / max |W_1|` over its
kernel after training (the output kernel without the `/ a`: it is not
scaled); accuracies are on digits' validation split (about 270 examples,
so one example is 0.4 points), at the end. For scale, the scale-1 net's
accuracy over three seeds is printed too.

Usage:
    python -m benchmarks.scale_invariance [--steps N] [--lr LR] [--out DIR]

Writes `scale_invariance.json` and `scale_invariance.md` into `--out`
(default benchmarks/results) and prints the Markdown. About a minute on 2
cores.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kbn  # noqa: E402
from benchmarks import tables  # noqa: E402
from studies.inputs import builders, models  # noqa: E402
from studies.inputs import data as datasets  # noqa: E402

SCALES = (0.1, 0.3, 3.0, 10.0)
BATCH = 60  # the studies' batch
STUDY_EPSILON = 1e-3  # kbn.BatchNormalization's default, the `bn` variant's
SMALL_EPSILON = 1e-8
PERTURBATION = 1e-7  # relative, about float32's rounding of one weight
# row name -> (rate of the hidden kernels, rate of the rest), as factors of lr
RATES = {
    "exact rates": lambda a: (a**2, 1.0),
    "one rate a^2 lr": lambda a: (a**2, a**2),
    "one rate lr": lambda a: (1.0, 1.0),
}


def build(dataset, scale, seed=0, epsilon=STUDY_EPSILON, dtype="float32"):
    """The studies' mlp-relu with BN at init scale `scale` (output layer at
    1); returns `(model, hidden kernels, output kernel)`."""
    settings = {
        "variant": "bn",
        "seed": seed,
        "init": "he_normal",
        "init_scale": scale,
        "scale_output": False,
        "virtual_batch_size": 16,
    }
    keras.utils.set_random_seed(seed)
    keras.config.set_dtype_policy(dtype)
    try:
        model, normalization, _ = builders.build(
            models.BUILDERS["mlp-relu"],
            settings,
            dataset.input_shape,
            dataset.outputs,
        )
    finally:
        keras.config.set_dtype_policy("float32")
    for layer in normalization.layers:
        layer.epsilon = epsilon
    kernels = [w for w in model.trainable_variables if w.path.endswith("kernel")]
    return model, kernels[:-1], kernels[-1]


def batches(dataset, steps, seed=0):
    """The example indices of each step: shuffled epochs, the same every run."""
    rng = np.random.default_rng(seed)
    n = len(dataset.x_train)
    order = np.concatenate([rng.permutation(n) for _ in range(steps * BATCH // n + 1)])
    return order[: steps * BATCH].reshape(steps, BATCH)


def train(model, hidden, dataset, order, hidden_lr, lr):
    """Plain SGD: `hidden` at `hidden_lr`, every other variable at `lr`;
    returns the validation accuracy with the moving statistics, then with
    statistics recomputed over the training split (NaN weights: 0, 0)."""
    variables = model.trainable_variables
    marked = {id(v) for v in hidden}
    rates = [hidden_lr if id(v) in marked else lr for v in variables]

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y, logits, True)
            )
        for v, g, rate in zip(
            variables, tape.gradient(loss, variables), rates, strict=True
        ):
            v.assign_sub(rate * g)

    dtype = hidden[0].dtype
    x = tf.constant(dataset.x_train, dtype)
    y = tf.constant(dataset.y_train)
    for indices in order:
        step(tf.gather(x, indices), tf.gather(y, indices))
    if not all(np.all(np.isfinite(np.asarray(v))) for v in variables):
        return 0.0, 0.0
    moving = _accuracy(model, dataset, dtype)
    kbn.recompute_statistics(model, dataset.x_train.astype(dtype), batch_size=256)
    return moving, _accuracy(model, dataset, dtype)


def _accuracy(model, dataset, dtype):
    logits = np.asarray(model(dataset.x_val.astype(dtype), training=False))
    if not np.all(np.isfinite(logits)):
        return 0.0
    return float(np.mean(np.argmax(logits, -1) == dataset.y_val))


def _difference(w, reference, a=1.0):
    w, reference = np.asarray(w), np.asarray(reference)
    return float(np.max(np.abs(w / a - reference)) / np.max(np.abs(reference)))


# (comparison, BN epsilon, dtype): the rows, in order
CONFIGURATIONS = (
    ("exact rates", STUDY_EPSILON, "float32"),
    ("exact rates", SMALL_EPSILON, "float32"),
    ("exact rates", SMALL_EPSILON, "float64"),
    ("one rate a^2 lr", STUDY_EPSILON, "float32"),
    ("one rate lr", STUDY_EPSILON, "float32"),
)


def run(steps=300, lr=0.1, command="python -m benchmarks.scale_invariance"):
    start = time.perf_counter()
    dataset = datasets.load("digits")
    order = batches(dataset, steps)
    references = {}
    for _, epsilon, dtype in CONFIGURATIONS:
        if (epsilon, dtype) not in references:
            model, hidden, output = build(dataset, 1.0, epsilon=epsilon, dtype=dtype)
            accuracies = train(model, hidden, dataset, order, lr, lr)
            references[epsilon, dtype] = (accuracies, hidden, output)
    controls = []
    for dtype in ("float32", "float64"):
        # scale 1 against itself, its kernels off by a relative PERTURBATION
        model, hidden, output = build(dataset, 1.0, epsilon=SMALL_EPSILON, dtype=dtype)
        rng = np.random.default_rng(5)
        for w in [*hidden, output]:
            noise = rng.normal(size=w.shape) * PERTURBATION
            w.assign(np.asarray(w) * (1 + noise))
        train(model, hidden, dataset, order, lr, lr)
        _, reference_hidden, reference_output = references[SMALL_EPSILON, dtype]
        controls.append(
            {
                "dtype": dtype,
                "hidden_max_rel_diff": [
                    _difference(w, w1)
                    for w, w1 in zip(hidden, reference_hidden, strict=True)
                ],
                "output_max_rel_diff": _difference(output, reference_output),
            }
        )
    yardstick = [references[STUDY_EPSILON, "float32"][0][0]]
    for seed in (1, 2):
        model, hidden, _ = build(dataset, 1.0, seed)
        yardstick.append(train(model, hidden, dataset, order, lr, lr)[0])
    rows = []
    for name, epsilon, dtype in CONFIGURATIONS:
        reference, reference_hidden, reference_output = references[epsilon, dtype]
        for a in SCALES:
            hidden_factor, rest_factor = RATES[name](a)
            model, hidden, output = build(dataset, a, epsilon=epsilon, dtype=dtype)
            accuracies = train(
                model, hidden, dataset, order, hidden_factor * lr, rest_factor * lr
            )
            rows.append(
                {
                    "comparison": name,
                    "epsilon": epsilon,
                    "dtype": dtype,
                    "scale": a,
                    "hidden_lr": hidden_factor * lr,
                    "other_lr": rest_factor * lr,
                    "hidden_max_rel_diff": [
                        _difference(w, w1, a)
                        for w, w1 in zip(hidden, reference_hidden, strict=True)
                    ],
                    "output_max_rel_diff": _difference(output, reference_output),
                    "val_accuracy": accuracies[0],
                    "val_accuracy_recomputed": accuracies[1],
                    "reference_val_accuracy": reference[0],
                    "reference_val_accuracy_recomputed": reference[1],
                }
            )
    return {
        **tables.environment(),
        "backend": keras.backend.backend(),
        "command": command,
        "steps": steps,
        "lr": lr,
        "batch": BATCH,
        "scale_1_val_accuracy_seeds": yardstick,
        "rows": rows,
        "perturbation": PERTURBATION,
        "controls": controls,
        "seconds": time.perf_counter() - start,
    }


def markdown(report):
    seeds = report["scale_1_val_accuracy_seeds"]
    lines = [
        f"Measured {report['date']} on {report['machine']} (CPU), "
        f"{report['backend']} backend, TensorFlow {report['tensorflow']}, Keras "
        f"{report['keras']}, in {report['seconds']:.0f} s: `{report['command']}`.",
        "",
        f"The studies' mlp-relu with BN on digits, plain SGD, {report['steps']} "
        f"steps of batch {report['batch']}, the same batches in every run; "
        f"scale `a` of the hidden kernels (output layer at scale 1) against "
        f"scale 1 at lr {report['lr']:g}. Max rel diff per hidden layer is "
        "`max |W_a / a - W_1| / max |W_1|` after training (layers 1-6), then "
        "the output kernel's (not divided by a). The scale-1 net's validation "
        "accuracy over seeds 0, 1, 2: " + ", ".join(f"{v:.3f}" for v in seeds) + ".",
        "",
        "| comparison | BN epsilon | dtype | a | hidden lr | other lr | max rel "
        "diff, hidden layers 1-6 | output | val acc (a) | val acc (1) | "
        "recomputed (a) | recomputed (1) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        hidden = " ".join(f"{v:.1e}" for v in row["hidden_max_rel_diff"])
        lines.append(
            f"| {row['comparison']} | {row['epsilon']:g} | {row['dtype']} | "
            f"{row['scale']:g} | {row['hidden_lr']:g} | {row['other_lr']:g} | "
            f"{hidden} | {row['output_max_rel_diff']:.1e} | "
            f"{row['val_accuracy']:.3f} | {row['reference_val_accuracy']:.3f} | "
            f"{row['val_accuracy_recomputed']:.3f} | "
            f"{row['reference_val_accuracy_recomputed']:.3f} |"
        )
    lines += [
        "",
        f"Control (how far a relative {report['perturbation']:g} change of the "
        "initial kernels, about float32's rounding, grows over the same "
        "training; scale 1 against itself, BN epsilon 1e-8):",
        "",
        "| dtype | max rel diff, hidden layers 1-6 | output |",
        "|---|---|---|",
    ]
    for row in report["controls"]:
        hidden = " ".join(f"{v:.1e}" for v in row["hidden_max_rel_diff"])
        lines.append(
            f"| {row['dtype']} | {hidden} | {row['output_max_rel_diff']:.1e} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=tables.positive_int, default=300, help="SGD steps per run"
    )
    parser.add_argument("--lr", type=float, default=0.1, help="the scale-1 rate")
    parser.add_argument(
        "--out",
        default=os.path.join("benchmarks", "results"),
        help="folder for scale_invariance.json and scale_invariance.md",
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    command = " ".join(["python -m benchmarks.scale_invariance", *argv])
    report = run(args.steps, args.lr, command)
    text = markdown(report)
    tables.write(args.out, "scale_invariance", report, text)
    print(text)
    print(f"\nWritten to {args.out} in {report['seconds']:.0f} s.")


if __name__ == "__main__":
    main()
