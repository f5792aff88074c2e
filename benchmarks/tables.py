"""Markdown tables, the issue targets, and the machine description."""

import argparse
import datetime
import json
import math
import os
import platform

LAYER_CANDIDATES = ["kbn", "kbn_portable", "stock", "stock_xla", "fused", "torch"]
CONV = [64, 32, 32, 64]
TIMING_MODES = {"back_to_back": "back to back", "rotation": "rotation"}


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def at_least_3(text):
    """argparse type: an integer >= 3 (a range needs three runs)."""
    value = positive_int(text)
    if value < 3:
        raise argparse.ArgumentTypeError(f"must be an integer >= 3, got {text!r}")
    return value


def environment():
    import importlib.metadata

    def version(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        **{name: version(name) for name in ("tensorflow", "keras", "jax", "torch")},
    }


def write(out, stem, report, text):
    """Writes `stem.json` (the report) and `stem.md` (the tables) into `out`."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(out, f"{stem}.md"), "w") as f:
        f.write(text + "\n")


def _ms(value):
    return "n/a" if value is None else f"{value:.2f}"


def _range(spread, unit=""):
    """`median (min-max)` of a spread, or n/a."""
    if spread is None:
        return "n/a"
    m, lo, hi = spread["median"], spread["min"], spread["max"]
    return f"{m:.2f}{unit} ({lo:.2f}-{hi:.2f})"


def _shape(shape):
    return "x".join(map(str, shape))


def _present(rows, key):
    return [
        n
        for n in LAYER_CANDIDATES
        if any(n in t[key] for r in rows for t in r["timing"].values())
    ]


def layer_table(rows):
    """Both timing modes of every row; times and ratios as median (min-max)."""
    names = _present(rows, "ms")
    others = [n for n in names if n != "kbn"]
    head = [f"{n} (ms)" for n in names] + ["floor (ms)"]
    head += [f"{n} / kbn" for n in others] + ["kbn / floor"]
    lines = [
        "| step | dtype | shape | timing | " + " | ".join(head) + " |",
        "|---" * (4 + len(head)) + "|",
    ]
    for row in rows:
        for mode, label in TIMING_MODES.items():
            t = row["timing"][mode]
            cells = [row["mode"], row["dtype"], _shape(row["shape"]), label]
            cells += [_range(t["ms"].get(n)) for n in names]
            cells.append(_ms(row["floor_ms"]))
            cells += [_range(t["ratio"].get(n), "x") for n in others]
            cells.append(_range(t["kbn_over_floor"], "x"))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def memory_table(rows):
    names = [n for n in LAYER_CANDIDATES if any(n in r["mib"] for r in rows)]
    lines = [
        "| shape | tensor (MiB) | "
        + " | ".join(f"{n} (MiB)" for n in names)
        + " | kbn / stock |",
        "|---" * (3 + len(names)) + "|",
    ]
    for row in rows:
        mib = row["mib"]
        cells = [_shape(row["shape"]), f"{row['tensor_mib']:.1f}"]
        cells += [_ms(mib.get(n)) for n in names]
        cells.append(f"{mib['kbn'] / mib['stock']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def jax_memory_table(rows):
    """Temporary memory of the compiled JAX training steps."""
    lines = [
        "| shape | tensor (MiB) | kbn (MiB) | kbn_portable (MiB) | stock (MiB) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        if "temp_mib" not in row:
            continue
        mib = row["temp_mib"]
        tensor = 4 * math.prod(row["shape"]) / 2**20
        cells = [_shape(row["shape"]), f"{tensor:.1f}"]
        cells += [_ms(mib.get(n)) for n in ("kbn", "kbn_portable", "stock")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_table(rows):
    lines = [
        "| backend | model | compile | kbn (ms/step) | stock (ms/step) | stock / kbn |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ms = row["ms"]
        lines.append(
            f"| {row['backend']} | {row['model']} | {row['compile']} | "
            f"{_range(ms['kbn'])} | {_range(ms['stock'])} | "
            f"{_range(row['ratio']['stock'], 'x')} |"
        )
    return "\n".join(lines)


def verdict(spread, required, at_least=True):
    """ "met" when the whole range meets the bound, "not met" when none of it
    does, "within noise" when the range straddles it."""
    lo, hi = spread["min"], spread["max"]
    if not at_least:
        lo, hi, required = -hi, -lo, -required
    if lo >= required:
        return "met"
    if hi < required:
        return "not met"
    return "within noise"


def targets(report):
    """The performance issues' targets, each judged from its range.

    Returns:
        A list of `{"target", "timing", "measured", "required", "verdict"}`;
        `measured` is a spread of a ratio (> 1: kbn faster or leaner) and
        `required` the bound its range must meet.
    """
    out = []

    def add(target, spread, required, timing_mode, at_least=True):
        out.append(
            {
                "target": target,
                "timing": timing_mode,
                "measured": spread,
                "required": required,
                "verdict": verdict(spread, required, at_least),
            }
        )

    def layer_targets(rows, backend):
        for row in rows:
            for mode in TIMING_MODES:
                t = row["timing"][mode]
                ratio = t["ratio"]
                name = f"{backend} {row['mode']} {_shape(row['shape'])} {row['dtype']}"
                if backend == "jax":
                    add(f"{name}: stock / kbn >= 1", ratio["stock"], 1.0, mode)
                    continue
                if row["shape"] == CONV and row["mode"] == "train":
                    if row["dtype"] == "float32":
                        add(f"{name}: stock / kbn >= 3", ratio["stock"], 3.0, mode)
                        add(f"{name}: fused / kbn >= 1.3", ratio["fused"], 1.3, mode)
                        add(
                            f"{name}: kbn / floor <= 3",
                            t["kbn_over_floor"],
                            3.0,
                            mode,
                            False,
                        )
                    add(f"{name}: stock_xla / kbn >= 1", ratio["stock_xla"], 1.0, mode)
                if len(row["shape"]) == 2 and row["mode"] == "train":
                    add(f"{name}: stock / kbn >= 1.5", ratio["stock"], 1.5, mode)
                    add(f"{name}: stock_xla / kbn >= 1", ratio["stock_xla"], 1.0, mode)
                if row["mode"] == "infer":
                    add(f"{name}: stock / kbn >= 1", ratio["stock"], 1.0, mode)

    layer_targets(report["layer"]["rows"], "tensorflow")
    layer_targets(report.get("jax_layer", []), "jax")
    for row in report.get("memory", []):
        ratio = row["mib"]["stock"] / row["mib"]["kbn"]
        fixed = {"median": ratio, "min": ratio, "max": ratio}
        add(
            f"tensorflow peak step memory {_shape(row['shape'])}: stock / kbn >= 1",
            fixed,
            1.0,
            "one step",
        )
    for row in report.get("jax_layer", []):
        if "temp_mib" in row:
            mib = row["temp_mib"]
            fixed = {"median": mib["kbn"], "min": mib["kbn"], "max": mib["kbn"]}
            add(
                f"jax compiled temp memory {_shape(row['shape'])}: kbn <= stock "
                f"({mib['stock']:.2f} MiB)",
                fixed,
                mib["stock"],
                "compiled",
                at_least=False,
            )
    for row in report.get("model", []):
        required = (
            1.3
            if (row["compile"], row["backend"]) == ("default", "tensorflow")
            else 1.0
        )
        name = f"{row['backend']} model step, {row['compile']}"
        add(
            f"{name}: stock / kbn >= {required:g}",
            row["ratio"]["stock"],
            required,
            "fit",
        )
    for row in report.get("fit", []):
        name = f"{row['backend']} fit {row['model']}"
        add(f"{name} later epochs: stock / kbn >= 1", row["later_ratio"], 1.0, "fit")
        add(f"{name} first epoch: stock / kbn >= 0.8", row["first_ratio"], 0.8, "fit")
    return out


def targets_table(rows):
    lines = [
        "| target | timing | measured: median (min-max) | verdict |",
        "|---|---|---|---|",
    ]
    for row in rows:
        verdict_text = (
            row["verdict"] if row["verdict"] == "met" else f"**{row['verdict']}**"
        )
        lines.append(
            f"| {row['target']} | {TIMING_MODES.get(row['timing'], row['timing'])} | "
            f"{_range(row['measured'])} | {verdict_text} |"
        )
    return "\n".join(lines)
