"""Command line: `python -m studies STUDY [options]`, `python -m studies report DIR`.

Input is validated before TensorFlow is imported, so a mistake costs a
second and one line on stderr (exit code 2), and nothing in an existing
study folder is touched.
"""

import argparse
import os
import shlex
import sys

from studies.engine import leases
from studies.science import definitions

DEFAULT_ADDRESS = "127.0.0.1:8000"


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _split(text):
    return [v.strip() for v in text.split(",") if v.strip()]


def _numbers(text, option, kind=float):
    """A comma-separated list of numbers as Python numbers (checked later)."""
    try:
        return [kind(v) for v in _split(text)]
    except ValueError:
        raise UsageError(
            f"{option} takes comma-separated numbers, got {text!r}"
        ) from None


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
        help="digits (default), mnist1d, synthetic (offline); mnist, fashion_mnist, "
        "cifar10 (downloaded by keras.datasets); a .npz file with x_train, "
        "y_train, x_test, y_test; or MODULE:FUNCTION returning those arrays",
    )
    add(
        "--model",
        help="mlp-relu (6x100 ReLU, He init; the default), mlp-sigmoid (3x100 "
        "sigmoid, the BN paper's; covariate-shift's default), cnn (small "
        "VGG-style), or MODULE:FUNCTION, a builder build(normalization, "
        "kernel_initializer, input_shape, outputs) -> keras.Model",
    )
    add(
        "--task",
        choices=definitions.TASKS,
        help="default: from the targets (integer labels or one-hot rows: "
        "classification; floats: regression, scored by R² and MSE)",
    )
    add(
        "--feature-scaling",
        choices=definitions.FEATURE_SCALINGS,
        help="auto (default: built-in datasets their own scaling, other data as "
        "given), none, or standardize (per feature, training split's mean/std)",
    )
    add(
        "--target-scaling",
        choices=definitions.FEATURE_SCALINGS,
        help="regression targets: auto/standardize (default; training split's "
        "mean/std: R² is unchanged and the learning-rate grids fit) or none",
    )
    add(
        "--variants",
        help="comma-separated normalization variants: "
        f"{', '.join(definitions.VARIANTS)}",
    )
    add(
        "--lrs",
        help="comma-separated learning rates (the grid for lr and "
        "lr-init; one fixed rate for init and noise)",
    )
    add(
        "--inits",
        help=f"comma-separated init families: {', '.join(definitions.INITS)} (the grid "
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
        "--batch-sizes",
        help="comma-separated batch sizes (the grid of batch-size; one fixed "
        "size elsewhere)",
    )
    add(
        "--virtual-batch-size",
        type=int,
        help="ghost batch of the ghost-bn variant (default 16)",
    )
    add(
        "--optimizer",
        choices=definitions.OPTIMIZERS,
        help="sgd (plain, default), momentum (SGD 0.9) or adam; without --lrs "
        "the preset's learning rates are scaled to suit it (x0.1, x0.01)",
    )
    add(
        "--momentum",
        type=float,
        help="momentum of sgd or momentum (default 0 for sgd, 0.9 for momentum)",
    )
    add(
        "--weight-decay",
        type=float,
        help="decoupled weight decay on kernels (not on normalization "
        "parameters or biases; default 0)",
    )
    add(
        "--schedule",
        choices=definitions.SCHEDULES,
        help="constant (default) or warmup-cosine (linear warmup, then cosine "
        "decay to 0 at the end of the budget; the rate is its peak)",
    )
    add(
        "--warmup-fraction",
        type=float,
        help="warmup-cosine's warmup, as a fraction of the budget (default 0.05)",
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
        f"{', '.join(definitions.INSTRUMENTS)} (covariate-shift and landscape turn "
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
        metavar="HOST:PORT",
        help="with --chief or --worker: the chief's address (default "
        f"{DEFAULT_ADDRESS}). The protocol has no authentication: bind beyond "
        "loopback only on a trusted network",
    )
    add(
        "--lease-timeout",
        type=float,
        metavar="SECONDS",
        help="a running cell whose process stops heartbeating (killed, machine "
        "gone) for this long is handed out again (default "
        f"{leases.DEFAULT_TIMEOUT:g}; at once for a dead process on this machine)",
    )
    add(
        "--retry-errors",
        action="store_true",
        help="run again the cells whose record is an error (e.g. out of memory)",
    )
    add(
        "--force",
        action="store_true",
        help="resume although the folder's grid, settings or data differ from "
        "these (the report records it)",
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


def prepare(args, argv):
    """Parses the options' text and checks them; returns `(spec, builder)`."""
    from studies.surfaces import api, options

    given = {
        "variants": _split(args.variants) if args.variants is not None else None,
        "lrs": _numbers(args.lrs, "--lrs") if args.lrs is not None else None,
        "inits": _split(args.inits) if args.inits is not None else None,
        "init_scales": _numbers(args.init_scales, "--init-scales")
        if args.init_scales is not None
        else None,
        "batch_sizes": _numbers(args.batch_sizes, "--batch-sizes", int)
        if args.batch_sizes is not None
        else None,
        "instruments": _split(args.instruments)
        if args.instruments is not None
        else None,
    }
    for name in options.SCALARS:
        given[name] = getattr(args, name)
    command = " ".join(["python -m studies", *map(shlex.quote, argv)])
    try:
        spec, builder, _ = api.prepare(
            args.study, args.preset, args.model, args.dataset, given, "cli", command
        )
    except options.OptionError as error:
        raise UsageError(str(error)) from None
    return spec, builder


def _role(args):
    """Sets Keras Tuner's distribution variables for --chief / --worker."""
    if not (args.chief or args.worker):
        if args.oracle_address is not None:
            raise UsageError("--oracle-address applies with --chief or --worker")
        if "KERASTUNER_TUNER_ID" in os.environ and "KERASTUNER_ORACLE_IP" in os.environ:
            role = "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"
            return _check_worker_options(args, role)
        return "single"
    address = args.oracle_address or DEFAULT_ADDRESS
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--oracle-address must be HOST:PORT, got {address!r}")
    if args.worker is not None and ("chief" in args.worker or not args.worker):
        raise UsageError(
            f"--worker ID must be non-empty without 'chief': {args.worker!r}"
        )
    _check_worker_options(args, "chief" if args.chief else "worker")
    os.environ["KERASTUNER_TUNER_ID"] = "chief" if args.chief else args.worker
    os.environ["KERASTUNER_ORACLE_IP"] = host
    os.environ["KERASTUNER_ORACLE_PORT"] = port
    return "chief" if args.chief else "worker"


def _check_worker_options(args, role):
    """A worker runs what the chief hands out: the chief decides these."""
    for given, option in (
        (args.retry_errors, "--retry-errors"),
        (args.force, "--force"),
    ):
        if given and role == "worker":
            raise UsageError(f"{option} goes to the chief, which hands out the cells")
    return role


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        if args.study == "report":
            return _report(args.dir)
        role = _role(args)
        lease_timeout = (
            leases.DEFAULT_TIMEOUT if args.lease_timeout is None else args.lease_timeout
        )
        from studies.surfaces import options

        try:
            options.check_run(lease_timeout, "cli")
        except options.OptionError as error:
            raise UsageError(str(error)) from None
        spec, builder = prepare(args, argv)
        from studies.surfaces import api, runner

        out = args.out or api.default_out(spec, args.preset)
        runner.run(
            spec,
            out,
            role=role,
            builder=builder,
            lease_timeout=lease_timeout,
            retry_errors=args.retry_errors,
            force=args.force,
        )
    except UsageError as error:
        return _fail(error)
    except Exception as error:
        from studies.surfaces.runner import StudyError

        if isinstance(error, StudyError):
            return _fail(error)
        raise
    return 0


def _report(study_dir):
    from studies import folder
    from studies.outputs import reporting
    from studies.surfaces import runner

    if not os.path.isfile(os.path.join(study_dir, folder.SPEC)):
        raise UsageError(f"{study_dir} is not a study folder (no {folder.SPEC})")
    try:
        summary = reporting.write(study_dir)
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"cannot rebuild the report of {study_dir}: {error}") from None
    runner.print_summary(summary, study_dir, sys.stdout)
    return 0


def _fail(error):
    print(f"kbn-study: error: {error}", file=sys.stderr)
    return 2
