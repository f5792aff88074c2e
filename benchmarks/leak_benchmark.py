"""What building, fitting and dropping many models leaves in the process.

One fresh process per variant (`kbn`, `kbn_kernel` = `compile_moments=True`,
`stock`, `none`) builds, fits (one epoch with validation) and drops
`--models` small models in turn, calling `keras.backend.clear_session()`
between them, as a tuner or a cross-validation loop does. Figures: the
entries left in TensorFlow's gradient registry (`CustomGradient-*`) and the
resident memory growth per model over the second half (least squares), so
start-up and first-compile costs do not count. `--unregister` drops the
`CustomGradient-*` entries each model left after it, as the studies'
`cell_memory` does.

The model: the studies' 6 x 100 ReLU MLP on 64 features (kbn's calls there
take the plain formulation) and, for `kbn_kernel`, the same with every call
on the kernel.

Usage:
    python -m benchmarks.leak_benchmark [--models 50]
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VARIANTS = ("kbn", "kbn_kernel", "stock", "none")


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _registry():
    from tensorflow.python.framework import ops

    return ops._gradient_registry._registry


def registry_size():
    """Entries in TensorFlow's gradient registry, whatever their names."""
    return len(_registry())


def _model(variant):
    import keras

    import kbn

    layers = [keras.Input((64,))]
    for _ in range(6):
        layers.append(keras.layers.Dense(100, use_bias=variant == "none"))
        if variant.startswith("kbn"):
            compiled = True if variant == "kbn_kernel" else "auto"
            layers.append(kbn.BatchNormalization(compile_moments=compiled))
        elif variant == "stock":
            layers.append(keras.layers.BatchNormalization())
        layers.append(keras.layers.ReLU())
    layers.append(keras.layers.Dense(10))
    model = keras.Sequential(layers)
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def in_this_process(variant, models, unregister=False):
    import gc

    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(240, 64)).astype("float32"), rng.integers(0, 10, 240)
    start = registry_size()
    rss = []
    for _ in range(models):
        keras.backend.clear_session()
        before = set(_registry())
        model = _model(variant)
        model.fit(x, y, batch_size=60, epochs=1, validation_data=(x, y), verbose=0)
        del model
        if unregister:  # what the studies do after each cell
            for name in set(_registry()) - before:
                if name.startswith("CustomGradient-"):
                    del _registry()[name]
        gc.collect()
        rss.append(_rss_mb())
    half = models // 2
    slope = float(np.polyfit(np.arange(half, models), rss[half:], 1)[0])
    return {
        "variant": variant,
        "models": models,
        "unregistered": unregister,
        "registry_entries": registry_size() - start,
        "rss_growth_mb_per_model": slope,
        "rss_mb_at_end": rss[-1],
    }


def run(models=50, unregister=False, variants=VARIANTS):
    from benchmarks import processes

    extra = ["--unregister"] if unregister else []
    return [
        processes.run_json(
            "benchmarks.leak_benchmark", "--variant", v, "--models", str(models), *extra
        )
        for v in variants
    ]


def table(rows):
    lines = [
        "| variant | models | registry entries left | RSS growth MB / model "
        "| RSS at end MB |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['models']} | {r['registry_entries']} | "
            f"{r['rss_growth_mb_per_model']:.2f} | {r['rss_mb_at_end']:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--variant", choices=VARIANTS, help="one, in this process")
    parser.add_argument(
        "--unregister",
        action="store_true",
        help="drop the CustomGradient-* entries each model left, as the studies do",
    )
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(in_this_process(args.variant, args.models, args.unregister)))
        return
    rows = run(args.models, args.unregister)
    print(table(rows))


if __name__ == "__main__":
    main()
