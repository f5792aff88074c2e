"""Command line: `python -m studies STUDY [options]`, `python -m studies report DIR`.

Input is validated before TensorFlow is imported, so a mistake costs a
second and one line on stderr (exit code 2), and nothing in an existing
study folder is touched.
"""

import argparse
import math
import os
import shlex
import sys

from studies import definitions
from studies import spec as specs


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _number_list(text, option, kind=float):
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"{option} takes comma-separated numbers, got {text!r}"
        ) from None
    if not values:
        raise UsageError(f"{option} is empty")
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise UsageError(f"{option} values must be positive, got {text!r}")
    if len(set(values)) != len(values):
        raise UsageError(f"{option} has repeated values: {text!r}")
    return values


def _name_list(text, option, allowed):
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise UsageError(f"{option} is empty")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise UsageError(
            f"unknown {option.lstrip('-').rstrip('s')} {', '.join(unknown)}: "
            f"choose from {', '.join(allowed)}"
        )
    if len(set(values)) != len(values):
        raise UsageError(f"{option} has repeated values: {text!r}")
    return values


def _add_study_options(parser):
    add = parser.add_argument
    add(
        "--preset",
        choices=("quick", "full"),
        default="quick",
        help="grid size: quick (minutes on 2 cores) or full (the publishable grid); "
        "the options below override it",
    )
    add(
        "--out",
        help="study folder (default runs/STUDY-DATASET-PRESET); re-running "
        "with the same folder resumes an interrupted study",
    )
    add(
        "--dataset",
        default="digits",
        help="digits (default), mnist1d, synthetic (offline); mnist, fashion_mnist, "
        "cifar10 (downloaded by keras.datasets); or a .npz file with x_train, "
        "y_train, x_test, y_test",
    )
    add(
        "--model",
        choices=specs.MODELS,
        help="mlp-relu (6x100 ReLU, He init; the default), mlp-sigmoid (3x100 "
        "sigmoid, the BN paper's; covariate-shift's default), cnn (small VGG-style)",
    )
    add(
        "--variants",
        help=f"comma-separated normalization variants: {', '.join(specs.VARIANTS)}",
    )
    add(
        "--lrs",
        help="comma-separated learning rates (the grid for lr and "
        "lr-init; one fixed rate for init and noise)",
    )
    add(
        "--inits",
        help=f"comma-separated init families: {', '.join(specs.INITS)} (the grid "
        "of init and lr-init; one fixed family elsewhere; default: the model's "
        "standard init, He for ReLU, 4x Glorot for sigmoid)",
    )
    add(
        "--init-scales",
        help="comma-separated multipliers of the initial weights' "
        "std, e.g. 0.01,0.1,1,10 (one fixed scale for studies without that axis)",
    )
    add("--seeds", type=int, help="number of seeds (an axis of its own)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="epochs per cell (>= 1)")
    budget.add_argument(
        "--steps",
        type=int,
        help="budget per cell in optimizer steps instead of epochs (fair across "
        "batch sizes)",
    )
    add("--batch-size", type=int, help="batch size (default 60, as the BN paper)")
    add(
        "--optimizer",
        choices=specs.OPTIMIZERS,
        help="sgd (plain, default), momentum (SGD 0.9) or adam",
    )
    add("--train-size", type=int, help="train on a random subset of this size")
    add(
        "--divergence-threshold",
        type=float,
        help="a loss above this (or NaN/inf) ends a cell as diverged (default 1e3)",
    )
    add(
        "--instruments",
        help="comma-separated kbn.callbacks each cell runs and logs to TensorBoard: "
        f"{', '.join(specs.INSTRUMENTS)} (covariate-shift and landscape turn "
        "on theirs)",
    )
    add(
        "--probe-every",
        type=int,
        help="optimizer steps between instrument readings (default 10)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--chief",
        action="store_true",
        help="serve this study to workers (Keras Tuner's chief); "
        "writes the report when they are done",
    )
    group.add_argument(
        "--worker", metavar="ID", help="run cells handed out by the chief, as worker ID"
    )
    add(
        "--oracle-address",
        default="127.0.0.1:8000",
        metavar="HOST:PORT",
        help="the chief's address (default 127.0.0.1:8000). The protocol has no "
        "authentication: bind beyond loopback only on a trusted network",
    )


def build_parser():
    parser = _Parser(
        prog="python -m studies",
        description="Keras Tuner studies of how batch normalization changes "
        "sensitivity to learning rate and initialization.",
    )
    sub = parser.add_subparsers(dest="study", metavar="STUDY", required=True)
    for definition in definitions.DEFINITIONS.values():
        _add_study_options(
            sub.add_parser(
                definition.name,
                help=definition.description,
                description=f"Study {definition.name}: {definition.description}.",
            )
        )
    report = sub.add_parser(
        "report", help="rebuild results, plots and report.md from a study folder"
    )
    report.add_argument("dir", help="the study folder")
    return parser


def _positive(args, name, option):
    value = getattr(args, name)
    if value is not None and value < 1:
        raise UsageError(f"{option} must be >= 1, got {value}")


def spec_from_args(args, argv):
    """Validates the parsed options and builds the `StudySpec`."""
    from studies import data  # no TensorFlow

    for name, option in (
        ("seeds", "--seeds"),
        ("epochs", "--epochs"),
        ("steps", "--steps"),
        ("batch_size", "--batch-size"),
        ("train_size", "--train-size"),
        ("probe_every", "--probe-every"),
    ):
        _positive(args, name, option)
    if args.divergence_threshold is not None and not args.divergence_threshold > 0:
        raise UsageError("--divergence-threshold must be positive")
    if not data.is_dataset_name(args.dataset):
        raise UsageError(
            f"unknown dataset {args.dataset!r}: choose one of {', '.join(data.NAMES)} "
            "or a .npz file"
        )
    lrs = _number_list(args.lrs, "--lrs") if args.lrs is not None else None
    inits = (
        _name_list(args.inits, "--inits", specs.INITS)
        if args.inits is not None
        else None
    )
    scales = (
        _number_list(args.init_scales, "--init-scales")
        if args.init_scales is not None
        else None
    )
    axes = definitions.get(args.study).axes
    for values, axis, what, option in (
        (lrs, "lr", "learning rate", "--lrs"),
        (inits, "init", "init family", "--inits"),
        (scales, "init_scale", "init scale", "--init-scales"),
    ):
        if values and len(values) > 1 and axis not in axes:
            sweeps = " or ".join(
                d.name for d in definitions.DEFINITIONS.values() if axis in d.axes
            )
            raise UsageError(
                f"study {args.study} trains at one fixed {what}: give {option} "
                f"one value (use {sweeps} to sweep it)"
            )
    return specs.make_spec(
        args.study,
        args.preset,
        command=" ".join(["python -m studies", *map(shlex.quote, argv)]),
        variants=_name_list(args.variants, "--variants", specs.VARIANTS)
        if args.variants is not None
        else None,
        lrs=lrs,
        inits=inits,
        init_scales=scales,
        seeds=args.seeds,
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        model=args.model,
        dataset=args.dataset,
        train_size=args.train_size,
        divergence_threshold=args.divergence_threshold,
        instruments=_name_list(args.instruments, "--instruments", specs.INSTRUMENTS)
        if args.instruments is not None
        else None,
        probe_every=args.probe_every,
    )


def _role(args):
    """Sets Keras Tuner's distribution variables for --chief / --worker."""
    if not (args.chief or args.worker):
        if "KERASTUNER_TUNER_ID" in os.environ and "KERASTUNER_ORACLE_IP" in os.environ:
            return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"
        return "single"
    host, sep, port = args.oracle_address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(
            f"--oracle-address must be HOST:PORT, got {args.oracle_address!r}"
        )
    if args.worker is not None and ("chief" in args.worker or not args.worker):
        raise UsageError(
            f"--worker ID must be non-empty without 'chief': {args.worker!r}"
        )
    os.environ["KERASTUNER_TUNER_ID"] = "chief" if args.chief else args.worker
    os.environ["KERASTUNER_ORACLE_IP"] = host
    os.environ["KERASTUNER_ORACLE_PORT"] = port
    return "chief" if args.chief else "worker"


def default_out(spec, preset):
    dataset = os.path.splitext(os.path.basename(str(spec.fixed["dataset"])))[0]
    return os.path.join("runs", f"{spec.study}-{dataset}-{preset}")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args = build_parser().parse_args(argv)
        if args.study == "report":
            return _report(args.dir)
        spec = spec_from_args(args, argv)
        role = _role(args)
        from studies import runner

        runner.run(spec, args.out or default_out(spec, args.preset), role=role)
    except UsageError as error:
        return _fail(error)
    except Exception as error:
        from studies.runner import StudyError

        if isinstance(error, StudyError):
            return _fail(error)
        raise
    return 0


def _report(study_dir):
    from studies import report, runner

    if not os.path.isfile(os.path.join(study_dir, report.SPEC)):
        raise UsageError(f"{study_dir} is not a study folder (no {report.SPEC})")
    try:
        summary = report.write(study_dir)
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"cannot rebuild the report of {study_dir}: {error}") from None
    runner.print_summary(summary, study_dir, sys.stdout)
    return 0


def _fail(error):
    print(f"kbn-study: error: {error}", file=sys.stderr)
    return 2
