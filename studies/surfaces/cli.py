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
from studies.surfaces import option_table

DEFAULT_ADDRESS = option_table.BY_NAME["oracle_address"].default


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


# How the command line parses each kind of option (`option_table.KINDS`).
_TYPES = {"int": int, "number": float}
_LISTS = {
    "numbers": lambda text, flag: _numbers(text, flag),
    "ints": lambda text, flag: _numbers(text, flag, int),
    "names": lambda text, flag: _split(text),
}


def _add_study_options(parser):
    """Every option of the table with a flag, in the table's order."""
    groups = {}
    for option in option_table.OPTIONS:
        if option.flag is None:
            continue
        add = parser.add_argument
        if option.group is not None:
            if option.group not in groups:
                groups[option.group] = parser.add_mutually_exclusive_group()
            add = groups[option.group].add_argument
        settings = {"help": option.text()}
        if option.kind == "switch":
            settings["action"] = "store_true"
        elif option.kind == "choice":
            settings["choices"] = option.names()
        elif option.kind in _TYPES:
            settings["type"] = _TYPES[option.kind]
        if option.passed:
            settings["default"] = option.default
        if option.metavar is not None:
            settings["metavar"] = option.metavar
        add(option.flag, **settings)


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
    """Parses the options' text and checks them.

    Returns:
        `(spec, (model, data))`: the study, and its `resolved.ModelInput` and
        `resolved.DataInput`.
    """
    from studies.surfaces import api, options

    given = {}
    for name in option_table.STUDY_OPTIONS:
        if name in ("model", "dataset"):  # arguments of their own
            continue
        option, value = option_table.BY_NAME[name], getattr(args, name)
        if option.kind in _LISTS and value is not None:
            value = _LISTS[option.kind](value, option.flag)
        given[name] = value
    command = " ".join(["python -m studies", *map(shlex.quote, argv)])
    try:
        spec, model, data = api.prepare(
            args.study, args.preset, args.model, args.dataset, given, "cli", command
        )
    except options.OptionError as error:
        raise UsageError(str(error)) from None
    return spec, (model, data)


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
            options.check_run(lease_timeout, "cli", fuse=args.fuse)
        except options.OptionError as error:
            raise UsageError(str(error)) from None
        spec, (model, data) = prepare(args, argv)
        from studies.surfaces import api, runner

        out = args.out or api.default_out(spec, args.preset)
        runner.run(
            spec,
            out,
            role=role,
            model=model,
            data=data,
            lease_timeout=lease_timeout,
            retry_errors=args.retry_errors,
            force=args.force,
            fuse=args.fuse,
            style="cli",
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
    from studies.surfaces import console

    if not os.path.isfile(os.path.join(study_dir, folder.SPEC)):
        raise UsageError(f"{study_dir} is not a study folder (no {folder.SPEC})")
    try:
        summary = reporting.write(study_dir)
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"cannot rebuild the report of {study_dir}: {error}") from None
    console.print_summary(summary, study_dir, sys.stdout)
    return 0


def _fail(error):
    print(f"kbn-study: error: {error}", file=sys.stderr)
    return 2
