"""The table of a study's options: the one place each option is described.
Long because it is a table (one entry per option, then the code that reads it).

`OPTIONS` lists every option of `python -m studies STUDY` and of
`studies.run(study, ...)`: its name, what it takes, its default, which
studies it applies to and its help. The command line's parser
(`cli.build_parser`), the checks (`options.check`) and the options reference
(`docs/options.md`, `markdown()`; regenerate it with `python -c "from
studies.surfaces import option_table; option_table.write()"`) are built
from it, so they cannot disagree.

A few options exist on one surface only, each with its reason in the table
(`cli_only`, `api_only`): the roles of a process in a distributed study are
command-line options, and where progress goes is a Python stream.

No Keras here (the command line reads this before any backend loads).
"""

import dataclasses

from studies.engine import leases
from studies.inputs import data as datasets
from studies.inputs import models, variants
from studies.science import definitions, spec, tasks

COMMON = definitions.COMMON

# What an option takes: how the command line parses it and what the API gets.
KINDS = {
    "int": "an integer >= 1",
    "number": "a number",
    "choice": "one name",
    "numbers": "comma-separated numbers (API: a list)",
    "ints": "comma-separated integers (API: a list)",
    "names": "comma-separated names (API: a list)",
    "text": "text",
    "switch": "a switch (API: True or False)",
    "stream": "a file-like object",
}


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a study.

    Attributes:
        name: The option's name in the spec and the checks (`batch_size`).
        kind: What it takes, one of `KINDS`.
        help: One line or two for `--help` and the reference; `{default}`
            stands for the default and `{choices}` for the choices.
        default: The value a study gets when the caller gives none; None
            where the preset (or, see `default_note`, something else) decides.
        default_note: What decides when `default` is None, for the reference.
        choices: The allowed names (kinds `choice` and `names`): a tuple, or
            a function returning the names of a registry that can grow.
        keyword: The `studies.run` keyword, when it is not `name` (`data`).
        cli_only: Why `studies.run` has no such keyword ("" if it has).
        api_only: Why the command line has no such flag ("" if it has).
        metavar: The command line's placeholder for the value.
        group: Options of one group exclude each other on the command line.
        passed: Whether the surfaces pass `default` itself when the option
            is not given (else None, "not given").
        range: Where a `number` must lie: `positive`, `>= 0`, `in [0, 1)` or
            `in (0, 1]`.
        applies: `applies(spec) -> bool`: whether the option means anything
            for that study; an option given where it does not is refused.
        refusal: The end of that refusal's message; `{schedule}` and the
            like stand for those options, as the caller spells them.
        applies_to: Where it applies, in words, for the reference.
        study: Whether it says what the study is (`options.check` checks it,
            `make_spec` takes it) rather than how or where it runs.
        renamed_from: Its old name, still taken with a deprecation message
            (`--force` for `--resume-changed`).
    """

    name: str
    kind: str
    help: str
    default: object = None
    default_note: str = ""
    choices: object = ()
    keyword: str | None = None
    cli_only: str = ""
    api_only: str = ""
    metavar: str | None = None
    group: str | None = None
    passed: bool = False
    range: str = ""
    applies: object = None
    refusal: str = ""
    applies_to: str = ""
    study: bool = True
    renamed_from: str = ""

    @property
    def flag(self):
        """The command-line flag (`--batch-size`), or None (API only)."""
        return None if self.api_only else "--" + self.name.replace("_", "-")

    @property
    def api(self):
        """The `studies.run` keyword, or None (command line only)."""
        return None if self.cli_only else (self.keyword or self.name)

    def names(self):
        """The allowed names (a registry's, read now)."""
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def text(self):
        """The help text, with its default and choices filled in."""
        default = self.default
        shown = f"{default:g}" if isinstance(default, float) else default
        return self.help.format(default=shown, choices=", ".join(self.names()))


def studies_with(axis):
    """The studies that sweep `axis`."""
    return tuple(d.name for d in definitions.DEFINITIONS.values() if axis in d.axes)


def studies_without(axis):
    """The studies that do not sweep `axis`."""
    return tuple(d.name for d in definitions.DEFINITIONS.values() if axis not in d.axes)


def _and(names):
    names = list(names)
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def _tuning_studies():
    return [
        d.name for d in definitions.DEFINITIONS.values() if definitions.tunes_lr(d.name)
    ]


def _variants_of(study_spec):
    return study_spec.axes.get("variant", (study_spec.fixed.get("variant"),))


_ROLE = (
    "how this process takes part in a distributed study (Keras Tuner's chief "
    "or a worker), set per process in Keras Tuner's environment variables: "
    "studies.run runs a study in the calling process"
)

OPTIONS = (
    Option(
        "preset",
        "choice",
        "grid size: quick (minutes on 2 cores) or full (the publishable grid); "
        "the options below override it",
        default="quick",
        choices=definitions.PRESETS,
        passed=True,
        study=False,
    ),
    Option(
        "out",
        "text",
        "study folder (default runs/STUDY-DATASET-PRESET); re-running "
        "with the same folder resumes an interrupted study",
        default_note="runs/STUDY-DATASET-PRESET",
        study=False,
    ),
    Option(
        "dataset",
        "text",
        "digits (default), mnist1d, synthetic (offline); mnist, fashion_mnist, "
        "cifar10 (downloaded by keras.datasets); a .npz file with x_train, "
        "y_train, x_test, y_test; or MODULE:FUNCTION returning those arrays "
        "(studies.run also takes the arrays, a dict of them, or a (train, test) "
        "pair of tf.data.Datasets)",
        default=COMMON["dataset"],
        choices=datasets.NAMES,
        keyword="data",
    ),
    Option(
        "model",
        "text",
        "mlp-relu (6x100 ReLU, He init; the default), mlp-sigmoid (3x100 "
        "sigmoid, the BN paper's; covariate-shift's default), cnn (small "
        "VGG-style), or MODULE:FUNCTION, a builder build(normalization, "
        "kernel_initializer, input_shape, outputs) -> keras.Model, with a depth "
        "parameter for the depth study (studies.run also takes the builder "
        "itself)",
        default_note="the preset's (mlp-relu; covariate-shift: mlp-sigmoid)",
        choices=models.NAMES,
    ),
    Option(
        "task",
        "choice",
        "default: from the targets (integer labels or one-hot rows: "
        "classification; floats: regression, scored by R² and MSE)",
        default_note="from the targets",
        choices=tasks.NAMES,
    ),
    Option(
        "feature_scaling",
        "choice",
        "auto (default: built-in datasets their own scaling, other data as "
        "given), none, or standardize (per feature, training split's mean/std)",
        default=COMMON["feature_scaling"],
        choices=definitions.FEATURE_SCALINGS,
    ),
    Option(
        "target_scaling",
        "choice",
        "regression targets: auto/standardize (default; training split's "
        "mean/std: R² is unchanged and the learning-rate grids fit) or none",
        default=COMMON["target_scaling"],
        choices=definitions.FEATURE_SCALINGS,
        applies_to="regression (refused with --task classification, or once "
        "the data says classification)",
        # an explicit task is refused here, before any data loads; a task the
        # data decides is checked once it has (`runner.load_data`)
        applies=lambda s: s.fixed.get("task") != "classification",
        refusal="applies to regression targets, and the task is classification",
    ),
    Option(
        "variants",
        "names",
        "comma-separated normalization variants: {choices}",
        default_note="the preset's",
        choices=variants.names,
    ),
    Option(
        "lrs",
        "numbers",
        "comma-separated learning rates, used as given: the grid of lr and "
        "lr-init; for the studies that tune the rate per variant, several "
        "rates are the tuning grid and one rate is every variant's, without "
        "tuning; without --lrs or --lr the preset's rates, sized for plain "
        "SGD, are scaled for the optimizer (see --optimizer)",
        default_note="the preset's",
    ),
    Option(
        "lr",
        "number",
        "one fixed learning rate, used as given, for a study without a "
        "learning-rate axis, for every variant (no tuning; the same as --lrs "
        "with one value)",
        default_note="the preset's, scaled for the optimizer",
        range="positive",
    ),
    Option(
        "tune_seeds",
        "int",
        "seeds of the tuning phase, the short sweep that picks each "
        "variant's learning rate on validation (default {default})",
        default=COMMON["tune_seeds"],
        applies=lambda s: bool(s.fixed.get("tune_lrs")),
        refusal="sets the seeds of the learning-rate tuning phase, and this "
        "study runs none (it sweeps the rate, or was given one rate)",
        applies_to=_and(_tuning_studies()) + ", unless given one rate",
    ),
    Option(
        "lr_scaling",
        "choice",
        "how the tuned rate follows the batch size: tuned (default; tuned "
        "at every batch size) or linear (tuned at the batch size closest to "
        "--batch-size, scaled in proportion to the batch: Goyal et al.'s "
        "linear scaling rule)",
        default=COMMON["lr_scaling"],
        choices=definitions.LR_SCALINGS,
        applies=lambda s: "batch_size" in s.axes and bool(s.fixed.get("tune_lrs")),
        refusal="sets how the tuned learning rate follows the batch size, "
        "which this study does not sweep (or does not tune)",
        applies_to="batch-size, unless given one rate",
    ),
    Option(
        "inits",
        "names",
        "comma-separated init families: {choices} (the grid "
        "of init; one fixed family elsewhere; default: the model's "
        "standard init, He for ReLU, 4x Glorot for sigmoid)",
        default_note="the model's standard init",
        choices=definitions.INITS,
    ),
    Option(
        "init_scales",
        "numbers",
        "comma-separated multipliers of the initial weights' "
        "std, e.g. 0.01,0.1,1,10 (one fixed scale for studies without that axis)",
        default_note="the preset's (1 without an init-scale axis)",
    ),
    Option(
        "scale_output",
        "switch",
        "let the init scale multiply the output layer's kernel too (default: "
        "only the hidden layers, those a variant normalizes, are scaled; the "
        "output layer keeps its family at scale 1)",
        default=COMMON["scale_output"],
        applies=spec.scales,
        refusal="scales the output layer with the init scale, and this study's "
        "init scale is 1 (give {init_scales}, or run init or lr-init)",
        applies_to="studies whose init scale is not 1: init, lr-init, and any "
        "given --init-scales other than 1",
    ),
    Option("seeds", "int", "number of seeds (an axis of its own)"),
    Option(
        "epochs",
        "int",
        "epochs per cell (>= 1)",
        default_note="the preset's",
        group="budget",
    ),
    Option(
        "steps",
        "int",
        "budget per cell in optimizer steps instead of epochs (fair across "
        "batch sizes)",
        default_note="the preset's (batch-size: steps; the others: epochs)",
        group="budget",
    ),
    Option(
        "batch_size",
        "int",
        "batch size (default {default}, as the BN paper)",
        default=COMMON["batch_size"],
    ),
    Option(
        "batch_sizes",
        "ints",
        "comma-separated batch sizes (the grid of batch-size; one fixed "
        "size elsewhere)",
        default_note="the preset's",
    ),
    Option(
        "depths",
        "ints",
        "comma-separated numbers of hidden layers (the grid of depth; one "
        "fixed depth elsewhere); the model builder must take a depth argument "
        "(mlp-relu and mlp-sigmoid do, cnn does not)",
        default_note="the preset's (elsewhere the model's own: mlp-relu 6, "
        "mlp-sigmoid 3)",
    ),
    Option(
        "virtual_batch_size",
        "int",
        "ghost batch of the ghost-bn variant (default {default})",
        default=COMMON["virtual_batch_size"],
        applies=lambda s: "ghost-bn" in _variants_of(s),
        refusal="sets the ghost batch of the ghost-bn variant, which this study "
        "does not run (add ghost-bn to the variants)",
        applies_to="the ghost-bn variant",
    ),
    Option(
        "optimizer",
        "choice",
        "sgd (plain, default), momentum (SGD, momentum 0.9) or adam; without "
        "--lrs or --lr the preset's learning rates are scaled to suit it: "
        "x(1 - momentum) for SGD with momentum (x0.1 at 0.9), x0.01 for adam",
        default=COMMON["optimizer"],
        choices=definitions.OPTIMIZERS,
    ),
    Option(
        "momentum",
        "number",
        "momentum of sgd or momentum (default 0 for sgd, 0.9 for momentum)",
        default_note="0 for sgd, 0.9 for momentum",
        range="in [0, 1)",
    ),
    Option(
        "weight_decay",
        "number",
        "decoupled weight decay on kernels (not on normalization "
        "parameters or biases; default {default})",
        default=COMMON["weight_decay"],
        range=">= 0",
    ),
    Option(
        "weight_decays",
        "numbers",
        "comma-separated weight decays (>= 0; 0: none), each applied as "
        "--weight-decay is (the grid of weight-decay; one fixed value elsewhere)",
        default_note="the preset's (0 without a weight-decay axis)",
        range=">= 0",
    ),
    Option(
        "schedule",
        "choice",
        "constant (default) or warmup-cosine (linear warmup, then cosine "
        "decay to 0 at the end of the budget; the rate is its peak)",
        default=COMMON["schedule"],
        choices=definitions.SCHEDULES,
    ),
    Option(
        "warmup_fraction",
        "number",
        "warmup-cosine's warmup, as a fraction of the budget (default {default})",
        default=COMMON["warmup_fraction"],
        range="in [0, 1)",
        applies=lambda s: s.fixed.get("schedule") == "warmup-cosine",
        refusal="applies to the warmup-cosine schedule (give {schedule} warmup-cosine)",
        applies_to="the warmup-cosine schedule",
    ),
    Option(
        "train_size",
        "int",
        "train on a random subset of this size",
        default_note="all (noise: the preset's 300)",
    ),
    Option(
        "divergence_threshold",
        "number",
        "a batch loss above this times the first batch's loss (for "
        "classification at least this), or NaN/inf, ends a cell as diverged "
        "(default {default})",
        default=COMMON["divergence_threshold"],
        range="positive",
    ),
    Option(
        "instruments",
        "names",
        "comma-separated kbn.callbacks each cell runs and logs to TensorBoard: "
        "{choices} ("
        + _and(d.name for d in definitions.DEFINITIONS.values() if d.instruments)
        + " turn on theirs)",
        default_note="the study's own",
        choices=definitions.INSTRUMENTS,
    ),
    Option(
        "probe_every",
        "int",
        "optimizer steps between instrument readings (default {default})",
        default=COMMON["probe_every"],
        applies=lambda s: bool(s.fixed.get("instruments")),
        refusal="sets how often instruments read, and this study runs none "
        "(give {instruments})",
        applies_to="studies that run instruments",
    ),
    Option(
        "eval_statistics",
        "choice",
        "the batch normalization statistics a cell is scored with after "
        "training: moving (the moving averages training left), recomputed "
        "(exact ones over the training split, kbn.recompute_statistics: "
        "the score is the recomputed one) or both (the moving one is the "
        "score, the recomputed one is recorded beside it and the report "
        "gives the gap); a variant without batch normalization has no "
        "moving statistics and scores the same either way",
        default_note="moving (batch-size: both)",
        choices=definitions.EVAL_STATISTICS,
    ),
    Option(
        "target",
        "number",
        "the validation score the convergence study counts steps and seconds "
        "to: above chance and at most 1 (R²: above 0); default: the lowest of "
        "the variants' best seed-mean validation scores minus 0.02",
        default_note="the lowest best seed-mean score minus 0.02",
        range="in (0, 1]",
        applies=lambda s: "convergence" in definitions.get(s.study).metrics,
        refusal="is the convergence study's target score, and this study "
        "counts no steps to a target (run convergence)",
        applies_to="the convergence study",
    ),
    Option(
        "chief",
        "switch",
        "serve this study to workers (Keras Tuner's chief); "
        "writes the report when they are done",
        default=False,
        cli_only=_ROLE,
        group="role",
        study=False,
    ),
    Option(
        "worker",
        "text",
        "run cells handed out by the chief, as worker ID",
        cli_only=_ROLE,
        metavar="ID",
        group="role",
        study=False,
    ),
    Option(
        "oracle_address",
        "text",
        "with --chief or --worker: the chief's address (default "
        "{default}). The protocol has no authentication: bind beyond "
        "loopback only on a trusted network",
        default="127.0.0.1:8000",
        cli_only=_ROLE,
        metavar="HOST:PORT",
        study=False,
    ),
    Option(
        "lease_timeout",
        "number",
        "a running cell whose process stops heartbeating (killed, machine "
        "gone) for this long is handed out again (default "
        "{default}; at once for a dead process on this machine)",
        default=leases.DEFAULT_TIMEOUT,
        metavar="SECONDS",
        study=False,
    ),
    Option(
        "fuse",
        "int",
        "train up to N cells together in one compiled step (cells that "
        "share the data, seed, batch size and budget; 1: one at a time); "
        "default: chosen from the model's size and the memory available",
        default=None,
        metavar="N",
        study=False,
    ),
    Option(
        "retry_errors",
        "switch",
        "run again the cells whose record is an error (e.g. out of memory)",
        default=False,
        study=False,
    ),
    Option(
        "resume_changed",
        "switch",
        "resume although the folder's grid, settings or data differ from "
        "these (the report records it); --force is its old name",
        default=False,
        group="folder",
        renamed_from="force",
        study=False,
    ),
    Option(
        "overwrite",
        "switch",
        "start fresh: delete the study already in the folder (its results, "
        "logs and report; other files stay) once every check has passed",
        default=False,
        group="folder",
        study=False,
    ),
    Option(
        "dry_run",
        "switch",
        "print the grid, the cell count and a rough ETA, then stop: checks "
        "the options and the folder, loads no data, writes nothing",
        default=False,
        study=False,
    ),
    Option(
        "stream",
        "stream",
        "where progress lines go (default: standard output)",
        default_note="sys.stdout",
        api_only="a Python file object; the command line prints to standard "
        "output (redirect it)",
        study=False,
    ),
)

BY_NAME = {option.name: option for option in OPTIONS}
# The options `studies.surfaces.options.check` checks and `make_spec` takes.
STUDY_OPTIONS = tuple(option.name for option in OPTIONS if option.study)


def applies_to(option):
    """Which studies take `option`, in words (the reference's column)."""
    if option.name in spec.AXES:  # one value of an axis: where it is not swept
        return ", ".join(studies_without(option.name))
    for axis, (list_option, _) in spec.AXES.items():
        if list_option == option.name and axis != "variant":
            return f"grid of {', '.join(studies_with(axis))}; one value elsewhere"
    return option.applies_to or "all"


def markdown():
    """The options reference (`docs/options.md`) as Markdown."""
    lines = [
        "# Study options",
        "",
        "Generated from `studies/surfaces/option_table.py` by `python -c",
        '"from studies.surfaces import option_table; option_table.write()"`;',
        "a test checks that this file is what the table renders. `python -m studies",
        "STUDY --flag` and `studies.run(STUDY, keyword=...)` take the same",
        "options, but for those marked as one surface's own. A default of",
        '"the preset\'s" comes from `--preset` (`quick` or `full`).',
        "",
        "| Flag | Keyword | Takes | Default | Applies to | What it does |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for option in OPTIONS:
        takes = KINDS[option.kind]
        if option.kind == "choice":
            takes = " or ".join(f"`{name}`" for name in option.names())
        if option.default is None:
            default = option.default_note or "the preset's"
        else:
            default = f"`{_shown(option.default)}`"
        cells = [
            f"`{option.flag}`" if option.flag else "(none)",
            f"`{option.api}`" if option.api else "(none)",
            takes,
            default,
            applies_to(option),
            option.text(),
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "## One surface's own", ""]
    for surface, field, spelled in (
        ("command line only", "cli_only", "flag"),
        ("Python only", "api_only", "api"),
    ):
        reasons = {}
        for option in OPTIONS:
            if getattr(option, field):
                reasons.setdefault(getattr(option, field), []).append(option)
        for reason, owners in reasons.items():
            names = ", ".join(f"`{getattr(o, spelled)}`" for o in owners)
            lines.append(f"- {names} ({surface}): {reason}.")
    return "\n".join(lines) + "\n"


def _shown(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def write(path="docs/options.md"):
    """Writes the options reference (`markdown()`) to `path`."""
    with open(path, "w") as f:
        f.write(markdown())
