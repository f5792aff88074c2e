"""The report's sections on how a study's numbers were obtained: the
learning-rate tuning phase, the seeds' noise against the evaluation set's,
the batch-size study's noise per batch size, and the batch normalization
statistics the cells were scored with (`reporting.markdown` places them)."""

from studies.science import findings


def tuning(summary):
    """The tuning phase: each variant's mean validation score per rate, the
    rate chosen in bold."""
    found = summary.get("tuning")
    if not found:
        return []
    rates = found["lrs"]
    lines = [
        "## Learning rate, tuned per variant",
        "",
        f"Before the grid, each variant trained at {len(rates)} rates with "
        f"{found['seeds']} seed(s) each (the `phase` `tune` rows of "
        "`results.csv`), at the study's reference point (init scale 1"
        + (f", depth {found['depth']}" if found.get("depth") else "")
        + ") and "
        "without instruments; every cell of the grid then ran at its "
        "variant's best rate on validation (mean over the tuning seeds; a "
        "diverged cell counts as chance, an errored one is left out)"
        + (
            ", tuned at one batch size and scaled in proportion to the batch "
            "(the linear scaling rule)"
            if found["lr_scaling"] == "linear"
            else ""
        )
        + f". {found['cells_finished']} of {found['cells_total']} tuning cells "
        "finished.",
        "",
        "| variant | " + " | ".join(f"lr {r:g}" for r in rates) + " |",
        "|---" * (len(rates) + 1) + "|",
    ]
    for variant, table in found["scores"].items():
        by_size = table and isinstance(next(iter(table.values())), dict)
        for size, scores in table.items() if by_size else [(None, table)]:
            best = found["tuned_lr"][variant]
            best = best.get(size) if isinstance(best, dict) else best
            cells = [
                _bold(findings.number(scores.get(f"{r:g}")), r == best) for r in rates
            ]
            name = variant if size is None else f"{variant}, batch {size}"
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    edges = [v for v, edge in found["at_edge"].items() if edge]
    if edges:
        lines += [
            "",
            f"**On the tuning grid's edge: {', '.join(edges)}** (the best rate "
            "may lie outside it; give `--lrs` a wider grid).",
        ]
    return lines + [""]


def _bold(text, bold):
    return f"**{text}**" if bold else text


def evaluation_noise(summary):
    """Each variant's seed standard error next to its evaluation split's."""
    rows = [
        (variant, numbers["evaluation_noise"])
        for variant, numbers in summary["variants"].items()
        if (numbers.get("evaluation_noise") or {}).get("test") is not None
    ]
    if not rows:
        return []
    sizes = rows[0][1]
    lines = [
        "## Seeds against the evaluation set",
        "",
        f"Every seed is scored on the same {sizes['val_examples']} validation "
        f"and {sizes['test_examples']} test examples, so the seed intervals "
        "above leave out the evaluation set's own noise: the binomial standard "
        "error sqrt(p (1 - p) / m) of an accuracy p on m examples (what "
        "another test set of that size would move it by).",
        "",
        "| variant | seed s.e. of test acc | binomial s.e., test | binomial "
        "s.e., val | larger |",
        "|---|---|---|---|---|",
    ]
    for variant, noise in rows:
        lines.append(
            f"| {variant} | {findings.number(noise.get('seed_se_test'))} | "
            f"{findings.number(noise['test'])} | {findings.number(noise['val'])} | "
            f"{noise.get('dominant') or '-'} |"
        )
    return lines + [""]


def batch_noise(summary):
    """Batch noise per variant and batch size, with intervals where the
    variant has them (batch-size studies), and what each slope is fitted on."""
    table = summary.get("batch_noise")
    if not table:
        return []
    sizes = sorted({int(b) for t in table.values() for b in t})
    lines = ["## Batch noise by batch size (seed mean)", ""]
    lines.append("| variant | " + " | ".join(str(b) for b in sizes) + " |")
    lines.append("|---" * (len(sizes) + 1) + "|")
    lines.append(
        "| 1/sqrt(batch) | " + " | ".join(f"{b**-0.5:.3f}" for b in sizes) + " |"
    )
    for variant, by_size in table.items():
        numbers = summary["variants"].get(variant) or {}
        cells = [
            findings.cell(numbers, f"batch_noise_b{b}", "{:.3f}")
            if f"batch_noise_b{b}" in numbers
            else (f"{by_size[str(b)]:.3f}" if str(b) in by_size else "-")
            for b in sizes
        ]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines + ["", _NOISE_TERMS + _slope_sizes(summary, sizes), ""]


def _slope_sizes(summary, sizes):
    """Which variants' slopes are fitted over fewer than all the sizes."""
    fitted = summary.get("batch_noise_slope_sizes") or {}
    fewer = [
        f"{variant} over {', '.join(map(str, own)) or 'none'}"
        for variant, own in fitted.items()
        if list(own) != sizes
    ]
    return (
        (" Fitted over every size except: " + "; ".join(fewer) + ".") if fewer else ""
    )


_NOISE_TERMS = (
    "Batch noise: for 8 training examples, each put in 16 batches of the "
    "cell's size with random companions, the std of its output from the first "
    "normalization layer (training mode) across those batches, RMS over "
    "examples and features, relative to the spread of outputs across a "
    "batch's examples. BN's theory: about sqrt((1 + z^2 (kappa + 2) / 4) / M) "
    "for M examples per normalization group (batch-mean noise sigma^2 / M plus "
    "batch-std noise), so a slope of -0.5 against batch size; Ghost BN's M "
    "is its ghost batch; a per-example normalizer (LayerNorm) has none. Noise "
    "is reported per batch size only: a mean over sizes would depend on the "
    "grid. Slope: least-squares slope of log noise against log batch size, "
    "per seed; Ghost BN's only over the sizes up to its ghost batch (above "
    "it its noise is the ghost batch's, so one line through both parts fits "
    "neither)."
)


def eval_statistics(summary):
    """How the cells were scored when not with the moving statistics alone
    (`--eval-statistics`): with `both`, each variant's gap between its
    validation score with recomputed statistics and with the moving ones,
    overall and per batch size, with intervals."""
    mode = summary.get("eval_statistics", "moving")
    if mode == "recomputed":
        return [
            "## Scored with recomputed statistics",
            "",
            _RECOMPUTED + " Every score above is the one with recomputed "
            "statistics (`--eval-statistics recomputed`); the moving averages "
            "were not scored (`--eval-statistics both` scores both).",
            "",
        ]
    variants = {
        variant: numbers
        for variant, numbers in summary["variants"].items()
        if numbers.get("recomputed_gap") is not None
    }
    if mode != "both" or not variants:
        return []
    table = summary.get("recomputed_gap") or {}
    intervals = summary.get("recomputed_gap_intervals") or {}
    sizes = sorted({int(b) for t in table.values() for b in t})
    lines = [
        "## Moving against recomputed statistics",
        "",
        _RECOMPUTED + " The scores above are the moving statistics' "
        "(`--eval-statistics both`); here is recomputed - moving on validation "
        "(seed mean over the variant's stable cells, 95% t interval over "
        "seeds): positive where the moving averages lag the weights.",
        "",
        "| variant | all cells | " + " | ".join(f"batch {b}" for b in sizes) + " |",
        "|---" * (len(sizes) + 2) + "|",
    ]
    for variant, numbers in variants.items():
        interval = (numbers.get("intervals") or {}).get("recomputed_gap")
        cells = [_gap(numbers["recomputed_gap"], interval)] + [
            _gap(
                table.get(variant, {}).get(str(b)),
                intervals.get(variant, {}).get(str(b)),
            )
            for b in sizes
        ]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines + [""]


def _gap(value, interval):
    return findings.with_interval(value, interval, signed=True)


_RECOMPUTED = (
    "After training, each cell with batch normalization was scored again "
    "with its statistics recomputed exactly over the training split "
    "(`kbn.recompute_statistics`, inference mode), its moving averages put "
    "back afterwards; variants without batch normalization have no moving "
    "statistics and score the same either way (left out here)."
)
