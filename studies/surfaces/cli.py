"""Command line: `python -m studies STUDY [options]`, `python -m studies
report DIR`, `python -m studies list`; `kbn-study` is the same program.

Input is validated before TensorFlow is imported, so a mistake costs a
second and one line on stderr (exit code 2), and nothing in an existing
study folder is touched. Options are never abbreviated (`--seed` is not
`--seeds`); each study's `--help` lists the options it takes, with its
presets' values.
"""

import argparse
import json
import os
import shlex
import sys

from studies.engine import leases
from studies.science import definitions
from studies.surfaces import catalog, option_table

DEFAULT_ADDRESS = option_table.BY_NAME["oracle_address"].default
PROGRAM = "kbn-study"  # the console script; `python -m studies` passes its own


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


def _add_study_options(parser, study):
    """Every option of the table with a flag that `study` takes, in the
    table's order, with the study's preset values in its help."""
    groups = {}
    for option in option_table.OPTIONS:
        if option.flag is None:
            continue
        add = parser.add_argument
        if option.group is not None:
            if option.group not in groups:
                groups[option.group] = parser.add_mutually_exclusive_group()
            add = groups[option.group].add_argument
        text = option.text() + catalog.preset_text(option, study)
        settings = {"help": text.replace("%", "%%")}
        if not catalog.offered(option, study):  # taken, to say what to give
            settings["help"] = argparse.SUPPRESS
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
        if option.renamed_from:  # the old spelling, hidden: `_renamed` warns
            old = "--" + option.renamed_from.replace("_", "-")
            parser.add_argument(
                old,
                action="store_true",
                dest=option.renamed_from,
                help=argparse.SUPPRESS,
            )


def _version():
    """The version in kbn/_version.py, read without importing kbn (and Keras)."""
    import importlib.util

    found = importlib.util.find_spec("kbn")
    path = os.path.join(found.submodule_search_locations[0], "_version.py")
    scope = {}
    with open(path) as f:
        exec(f.read(), scope)  # one assignment, our own file
    return scope["__version__"]


def build_parser(prog=PROGRAM):
    parser = _Parser(
        prog=prog,
        allow_abbrev=False,
        description="Keras Tuner studies of how batch normalization changes "
        "sensitivity to learning rate and initialization.",
        epilog=f"`{prog} STUDY --help` lists a study's options with its presets' "
        f"values; `{prog} STUDY --dry-run` prints its grid, cell count and ETA.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s (kbn) {_version()}"
    )
    sub = parser.add_subparsers(dest="study", metavar="STUDY", required=True)
    for definition in definitions.DEFINITIONS.values():
        _add_study_options(
            sub.add_parser(
                definition.name,
                help=definition.description,
                description=f"Study {definition.name}: {definition.description}. "
                "[quick: ...; full: ...] are the presets' values.",
                allow_abbrev=False,
            ),
            definition.name,
        )
    report = sub.add_parser(
        "report",
        help="rebuild results, plots, report.md and report.html from a study folder",
        allow_abbrev=False,
    )
    report.add_argument("dir", help="the study folder")
    report.add_argument(
        "--format",
        choices=("md", "html", "both"),
        default="both",
        help="which report to write: report.md, report.html (one self-contained "
        "file, figures inline) or both (default); results.csv, summary.json and "
        "the plots are rebuilt either way",
    )
    listed = sub.add_parser(
        "list",
        help="the studies, variants (registered ones included), models and datasets",
        allow_abbrev=False,
    )
    listed.add_argument(
        "--model",
        metavar="MODULE:FUNCTION",
        help="import this builder's module first, with the variants it registers",
    )
    listed.add_argument("--format", choices=("text", "json"), default="text")
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
        option, value = option_table.BY_NAME[name], getattr(args, name, None)
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
        (args.resume_changed, "--resume-changed"),
        (args.overwrite, "--overwrite"),
    ):
        if given and role == "worker":
            raise UsageError(f"{option} goes to the chief, which hands out the cells")
    return role


def main(argv=None, prog=PROGRAM):
    """Runs the command line `argv` (default `sys.argv[1:]`); returns the
    exit code. `prog` names the program in help and errors."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    if not argv:  # usage with the list of studies, as for a bad command
        parser.print_help(sys.stderr)
        return 2
    try:
        return _main(parser.parse_args(argv), argv)
    except UsageError as error:
        return _fail(error, prog)
    except Exception as error:
        from studies.surfaces.runner import StudyError

        if isinstance(error, StudyError):
            return _fail(error, prog)
        raise


def _main(args, argv):
    if args.study == "report":
        return _report(args.dir, args.format)
    if args.study == "list":
        return _list(args)
    _renamed(args)
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
    if args.dry_run:
        return _dry_run(spec, out, data, args)
    runner.run(
        spec,
        out,
        role=role,
        model=model,
        data=data,
        lease_timeout=lease_timeout,
        retry_errors=args.retry_errors,
        force=args.resume_changed,
        style="cli",
        overwrite=args.overwrite,
        fuse=args.fuse,
    )
    return 0


def _renamed(args):
    """An option given by its old name: a deprecation message, then its value."""
    for option in option_table.OPTIONS:
        if option.renamed_from and getattr(args, option.renamed_from, False):
            print(
                f"--{option.renamed_from.replace('_', '-')} is deprecated; "
                f"use {option.flag}",
                file=sys.stderr,
            )
            setattr(args, option.name, True)
    if args.resume_changed and args.overwrite:
        raise UsageError("give --resume-changed or --overwrite, not both")


def _dry_run(spec, out, data, args):
    """`--dry-run`: the folder checked as a run would, then the plan."""
    from studies.surfaces import plan, runner

    runner.check_folder(spec, out, args.resume_changed, "cli", args.overwrite)
    plan.show(plan.make(spec, out, data), sys.stdout)
    return 0


def _list(args):
    """`list`: what there is to run, after importing a --model module."""
    if args.model is not None:
        from studies.inputs import plugins

        reference = plugins.parse(args.model)
        if reference is None:
            raise UsageError(f"--model takes MODULE:FUNCTION, got {args.model!r}")
        try:
            plugins.load(reference, "--model")
        except plugins.PluginError as error:
            raise UsageError(str(error)) from None
    found = catalog.listing()
    if args.format == "json":
        print(json.dumps(found, indent=2))
    else:
        print(catalog.text(found))
    return 0


def _report(study_dir, form="both"):
    from studies import folder
    from studies.outputs import reporting
    from studies.surfaces import console

    if not os.path.isfile(os.path.join(study_dir, folder.SPEC)):
        raise UsageError(f"{study_dir} is not a study folder (no {folder.SPEC})")
    try:
        summary = reporting.write(study_dir, reporting.FORMATS[form])
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"cannot rebuild the report of {study_dir}: {error}") from None
    console.print_summary(summary, study_dir, sys.stdout)
    return 0


def _fail(error, prog=PROGRAM):
    print(f"{prog}: error: {error}", file=sys.stderr)
    return 2
