"""The study's findings in words: one line per variant, one per difference.

Shared by the console summary at the end of a run and by `report.md`, so the
two always say the same thing. Every number comes with its interval where the
summary has one: `value [low, high]` for a Student t interval, `value
(seeds low to high)` for the per-seed spread of a range width, `value (n=2:
no interval)` where there are too few seeds; a range the grid cuts off says
so (`<=0.01`, `>=30`).
"""

from studies.science import definitions
from studies.science.analysis import swept_axes
from studies.science.stats import SPREAD_METHOD


def number(value, fmt="{:.3f}", signed=False):
    if value is None:
        return "-"
    return (fmt.replace("{:", "{:+") if signed else fmt).format(value)


def with_interval(value, interval, fmt="{:.3f}", signed=False):
    """`0.967 [0.960, 0.972]` (see the module docstring for the other forms),
    or the value alone when there is no interval entry."""
    text = number(value, fmt, signed)
    if not interval or value is None:
        return text
    if interval.get("low") is None:
        return f"{text} (n={interval.get('n', 0)}: no interval)"
    low, high = number(interval["low"], fmt), number(interval["high"], fmt)
    if interval.get("method") == SPREAD_METHOD:
        return f"{text} (seeds {low} to {high})"
    return f"{text} [{low}, {high}]"


def cell(numbers, key, fmt):
    """A summary number with its interval, `>=` if the grid cut it off."""
    value = numbers.get(key)
    if isinstance(value, float) and value != value:  # NaN
        value = None
    interval = (numbers.get("intervals") or {}).get(key)
    censored = ">=" if numbers.get(f"{key}_censored") else ""
    return censored + with_interval(value, interval, fmt)


def ratio_lines(study, summary):
    """The no BN / BN ratios a study exists to show (its definition's findings)."""
    numbers = summary["variants"]
    none, bn = numbers.get("none", {}), numbers.get("bn", {})
    return [
        f"{what}, no BN / BN: {none[key] / bn[key]:.1f}x "
        f"({cell(none, key, '{:.4g}')} vs {cell(bn, key, '{:.4g}')})"
        for key, what in definitions.get(study).findings
        if none.get(key) and bn.get(key)
    ]


def _range(entry):
    if entry["low"] is None:
        return "none"
    low = f"{'<=' if entry['censored_low'] else ''}{entry['low']:g}"
    high = f"{'>=' if entry['censored_high'] else ''}{entry['high']:g}"
    return low if entry["low"] == entry["high"] else f"{low}-{high}"


def _where(entry):
    where = entry.get("where") or {}
    return ", ".join(f"{k}={v}" for k, v in where.items())


def variant_line(axes, variant, numbers, reference, metric="accuracy"):
    """One line: trained or not, best and test score, ranges, stability."""
    if f"best_val_{metric}" not in numbers:
        return f"{variant}: no finished cells"
    intervals = numbers.get("intervals") or {}
    point = ", ".join(
        f"{k}={v:g}" if _num(v) else f"{k}={v}"
        for k, v in numbers["best_point"].items()
    )
    best, test = (
        with_interval(numbers[k], intervals.get(k))
        for k in (f"best_val_{metric}", f"test_{metric}")
    )
    parts = [
        "trained" if numbers["trained"] else "DID NOT TRAIN (not above chance)",
        f"best val {_SHORT[metric]} {best}"
        + (f" at {point}" if point else "")
        + (" (grid edge)" if numbers.get("best_at_edge") else ""),
        f"test {test}",
    ]
    noise = _noise_at_sizes(numbers)
    if noise:
        ends = sorted({noise[0], noise[-1]})  # the smallest and largest batch
        parts.append(
            "batch noise "
            + ", ".join(
                f"{with_interval(numbers[k], intervals.get(k))} at batch {b}"
                for b, k in ends
            )
            + ", slope vs batch size "
            + with_interval(
                numbers.get("batch_noise_slope"),
                intervals.get("batch_noise_slope"),
                "{:.2f}",
            )
        )
    for along in swept_axes(axes):
        parts += _axis_parts(numbers, along, reference)
    return f"{variant}: " + "; ".join(parts)


def _axis_parts(numbers, along, reference):
    """A variant's usable range (5 and 1 points), trainable range and max
    stable value along one swept axis, as parts of its line."""
    intervals = numbers.get("intervals") or {}
    parts = []
    ranges = numbers.get(f"usable_{along}_ranges_5pt") or []
    shown = "; ".join(
        (f"{_where(e)}: " if _where(e) else "") + _range(e) for e in ranges
    )
    width = with_interval(
        numbers.get(f"usable_{along}_decades_5pt"),
        intervals.get(f"usable_{along}_decades_5pt"),
        "{:.2f}",
    )
    strict = number(numbers.get(f"usable_{along}_decades_1pt"), "{:.2f}")
    parts.append(
        f"usable {along} (within 5 pt of {number(reference)}) {shown}, "
        f"{width} decades (within 1 pt: {strict})"
    )
    trains = "; ".join(
        (f"{_where(e)}: " if _where(e) else "") + _range(e)
        for e in numbers.get(f"trainable_{along}_ranges") or []
    )
    parts.append(f"trains at {along} {trains}")
    top = numbers.get(f"max_stable_{along}")
    censored = numbers.get(f"max_stable_{along}_censored")
    parts.append(f"max stable {along} {'>=' if censored else ''}{number(top, '{:g}')}")
    return parts


def _noise_at_sizes(numbers):
    """`[(batch size, key)]` of a variant's `batch_noise_b<size>` numbers,
    smallest batch first."""
    found = []
    for key, value in numbers.items():
        size = key.removeprefix("batch_noise_b")
        if key.startswith("batch_noise_b") and size.isdigit() and value is not None:
            found.append((int(size), key))
    return sorted(found)


def difference_line(axes, variant, entry, baseline="none", metric="accuracy"):
    """`bn - none: usable lr decades +1.00 [0.50, 1.50]; best val +0.014 [...]`."""
    keys = [
        key
        for a in swept_axes(axes)
        for key in (f"usable_{a}_decades_5pt", f"trainable_{a}_decades")
    ] + [f"best_val_{metric}", f"test_{metric}"]
    parts = []
    for key in keys:
        if key in entry:
            fmt = "{:.2f}" if "decades" in key else "{:.3f}"
            label = key.replace("_5pt", "").replace("_", " ")
            parts.append(
                f"{label} "
                + with_interval(
                    entry[key]["value"], entry[key]["interval"], fmt, signed=True
                )
            )
    return f"{variant} - {baseline}: " + "; ".join(parts)


def lines(spec, summary):
    """The findings of a study: per variant, then each variant minus `none`."""
    metric = summary.get("metric", "accuracy")
    reference = summary.get(f"reference_{metric}")
    result = [
        variant_line(spec.axes, variant, numbers, reference, metric)
        for variant, numbers in summary["variants"].items()
    ]
    result += [
        difference_line(spec.axes, variant, entry, metric=metric)
        for variant, entry in (summary.get("differences") or {}).items()
    ]
    result += ratio_lines(spec.study, summary) + convergence_lines(summary)
    return result + depth_lines(summary) + effective_step_lines(summary)


def growth_text(entry):
    """A growth per layer with its interval (`depth.add`'s entries)."""
    return with_interval(entry.get("value"), entry.get("interval"), "{:.3f}")


def depth_lines(summary):
    """The depth study's findings: per variant, the gradient norm growth per
    layer at init at the deepest depth against Yang et al.'s prediction, and
    the deepest depth that trained."""
    found = summary.get("depth")
    if not found:
        return []
    deepest = str(max(found["depths"]))
    result = []
    for variant, numbers in summary["variants"].items():
        growth = (numbers.get("init_grad_growth") or {}).get(deepest) or {}
        trained = numbers.get("deepest_trained")
        result.append(
            f"{variant}: gradient norm growth per layer at init, depth {deepest}: "
            f"{growth_text(growth)}x (predicted for BN without skips: "
            f"{found['predicted_growth']:.3f}x); deepest depth that trained: "
            f"{'none' if trained is None else trained}"
        )
    return result


def effective_step_lines(summary):
    """Per variant, decay and rate: the final angular update per step
    against sqrt(2 lr wd), the final norm and effective rate, the score."""
    found = summary.get("weight_decay")
    if not found:
        return []
    metric = summary.get("metric", "accuracy")
    result = []
    for variant, numbers in summary["variants"].items():
        for decay, by_lr in (numbers.get("effective_step") or {}).items():
            for lr, entry in by_lr.items():
                versus = "no decay: no equilibrium"
                if entry["predicted"]:
                    versus = (
                        f"vs sqrt(2 lr wd) {number(entry['predicted'], '{:.4f}')}"
                        f", ratio {cell(entry, 'ratio', '{:.2f}')}, lr wd steps "
                        f"{number(entry.get('lr_wd_steps'), '{:.2g}')}"
                    )
                result.append(
                    f"{variant} wd={decay} lr={lr}: angular update per step "
                    f"{cell(entry, 'angular_update', '{:.4f}')} ({versus}); "
                    f"||W|| {cell(entry, 'weight_norm', '{:.2f}')}, lr/||W||^2 "
                    f"{cell(entry, 'effective_lr', '{:.3g}')}; val "
                    f"{_SHORT[metric]} {cell(entry, f'val_{metric}', '{:.3f}')} "
                    f"({entry['seeds']} stable, {entry['diverged']} diverged)"
                )
    return result


def convergence_lines(summary):
    """The convergence study's ratios (none/bn, keras/bn) of steps and
    seconds to the target and of seconds per step, and its censored seeds."""
    found = summary.get("convergence")
    if not found:
        return []
    result = []
    variants = summary["variants"]
    for variant, counts in found["variants"].items():
        numbers = variants.get(variant) or {}
        result.append(
            f"{variant}: steps to target {cell(numbers, 'steps_to_target', '{:.0f}')}"
            f" ({counts['reached']} of {counts['seeds']} seeds reached it: "
            "their mean), "
            f"seconds per step {cell(numbers, 'seconds_per_step', '{:.2e}')}, "
            f"seconds to target {cell(numbers, 'seconds_to_target', '{:.3g}')}"
        )
    for name, ratio in found["ratios"].items():
        parts = []
        for key, label in (
            ("steps", "steps to target"),
            ("seconds", "seconds to target"),
            ("seconds_per_step", "seconds per step"),
        ):
            entry = ratio.get(key)
            if entry and entry["value"] is not None:
                parts.append(
                    f"{label} "
                    + with_interval(entry["value"], entry["interval"], "{:.2f}")
                    + "x"
                )
        if parts:
            result.append(f"{name}: " + "; ".join(parts))
    censored = [
        f"{v} {c['seeds'] - c['reached']} of {c['seeds']}"
        for v, c in found["variants"].items()
        if c["reached"] < c["seeds"]
    ]
    if censored:
        result.append("target not reached (censored): " + ", ".join(censored))
    return result


_SHORT = {"accuracy": "acc", "r2": "R²"}


def _num(value):
    return isinstance(value, int | float)
