"""Markdown tables, the issue targets, and the machine description."""

import argparse
import datetime
import json
import os
import platform

LAYER_CANDIDATES = ["kbn", "stock", "stock_xla", "fused"]
CONV = [64, 32, 32, 64]


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def environment():
    import keras
    import tensorflow as tf

    return {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
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


def _ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def _shape(shape):
    return "x".join(map(str, shape))


def layer_table(rows):
    head = [f"{n} (ms)" for n in LAYER_CANDIDATES] + ["floor (ms)"]
    ratios = ["stock / kbn", "stock_xla / kbn", "fused / kbn", "kbn / floor"]
    lines = [
        "| mode | dtype | shape | " + " | ".join(head + ratios) + " |",
        "|---" * (3 + len(head) + len(ratios)) + "|",
    ]
    for row in rows:
        ms = [_ms(row["ms"].get(n)) for n in LAYER_CANDIDATES] + [_ms(row["floor_ms"])]
        speed = [_ratio(row["speedup_vs"].get(n)) for n in LAYER_CANDIDATES[1:]]
        cells = [row["mode"], row["dtype"], _shape(row["shape"])]
        cells += ms + speed + [_ratio(row["kbn_over_floor"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def memory_table(rows):
    lines = [
        "| shape | tensor (MiB) | "
        + " | ".join(f"{n} (MiB)" for n in LAYER_CANDIDATES)
        + " | kbn / stock |",
        "|---" * (3 + len(LAYER_CANDIDATES)) + "|",
    ]
    for row in rows:
        mib = row["mib"]
        cells = [_shape(row["shape"]), f"{row['tensor_mib']:.1f}"]
        cells += [_ms(mib.get(n)) for n in LAYER_CANDIDATES]
        cells.append(_ratio(mib["kbn"] / mib["stock"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_table(rows):
    lines = [
        "| model | compile | kbn (ms/step) | stock (ms/step) | stock / kbn |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        ms = row["ms"]
        lines.append(
            f"| {row['model']} | {row['compile']} | {_ms(ms['kbn'])} | "
            f"{_ms(ms['stock'])} | {_ratio(ms['stock'] / ms['kbn'])} |"
        )
    return "\n".join(lines)


def _row(rows, shape, dtype="float32", mode="train"):
    key = (list(shape), dtype, mode)
    return next((r for r in rows if (r["shape"], r["dtype"], r["mode"]) == key), None)


def targets(report):
    """The performance issue's targets, each with what was measured.

    Returns:
        A list of `{"target", "measured", "required", "met"}`; `measured` is a
        ratio (> 1: kbn faster or leaner), `required` the bound it must meet.
    """
    out = []

    def add(target, measured, required, at_least=True):
        met = measured >= required if at_least else measured <= required
        out.append(
            {"target": target, "measured": measured, "required": required, "met": met}
        )

    layer = report["layer"]["rows"]
    conv = _row(layer, CONV)
    if conv:
        add("conv fwd+bwd: stock / kbn >= 3", conv["speedup_vs"]["stock"], 3.0)
        add("conv fwd+bwd: fused / kbn >= 1.3", conv["speedup_vs"]["fused"], 1.3)
        add("conv fwd+bwd: stock_xla / kbn >= 1", conv["speedup_vs"]["stock_xla"], 1.0)
        add("conv fwd+bwd: kbn / floor <= 3", conv["kbn_over_floor"], 3.0, False)
    for row in layer:
        if row["mode"] == "train" and len(row["shape"]) == 2:
            add(
                f"dense {_shape(row['shape'])} {row['dtype']} fwd+bwd: "
                "stock / kbn >= 1.5",
                row["speedup_vs"]["stock"],
                1.5,
            )
        if row["mode"] == "infer":
            add(
                f"inference {_shape(row['shape'])} {row['dtype']}: stock / kbn >= 1",
                row["speedup_vs"]["stock"],
                1.0,
            )
    for row in report.get("memory", []):
        add(
            f"peak step memory {_shape(row['shape'])}: stock / kbn >= 1",
            row["mib"]["stock"] / row["mib"]["kbn"],
            1.0,
        )
    for row in report.get("model", []):
        required = 1.3 if row["compile"] == "default" else 1.0
        add(
            f"model step, {row['compile']}: stock / kbn >= {required:g}",
            row["ms"]["stock"] / row["ms"]["kbn"],
            required,
        )
    return out


def targets_table(rows):
    lines = ["| target | measured | met |", "|---|---|---|"]
    for row in rows:
        met = "yes" if row["met"] else "**no**"
        lines.append(f"| {row['target']} | {row['measured']:.2f} | {met} |")
    return "\n".join(lines)
