"""The command line: the one place that parses flags.

Every script of `experiments/` is `main([its name, *its arguments])`. A kind of study
(`sweep`, `adapt`, `figure1`, ...) turns its options record (`experiments.lab.options`)
into flags, each with the record's default, and runs it; `study` runs a study or a
group of the catalogue by name (`experiments._catalogue`), the options given after the
name overriding the study's own. Every outcome but success is one line on stderr.
"""

import argparse
import dataclasses
import functools
import inspect
import re
import shlex
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import odeness
from experiments import _catalogue as catalogue
from experiments.lab.options import AbstractOptions, TrainingOptions, choices
from experiments.lab.runner import EXPECTED, Group, run_group

# Negative numbers in any notation (-1, -1.5, -1e-3, -inf) are values, never options.
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$", re.I)


class Parser(argparse.ArgumentParser):
    """`argparse` with whole option names only (no abbreviations), negative numbers read
    as values, and errors as one line with exit status 2."""

    def __init__(self, doc: str | None, **kwargs):
        super().__init__(
            description=inspect.cleandoc(doc or ""),
            allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kwargs,
        )
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str):  # pyright: ignore[reportIncompatibleMethodOverride]
        self.exit(2, f"error: {message} (see --help)\n")


def report(error: BaseException) -> int:
    """Print `error: ...` as one line on stderr; return the exit status, 2."""
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"error: {message}", file=sys.stderr)
    return 2


def run(main: Callable[[], int]) -> int:
    """Call `main` with SIGINT and SIGTERM turned into a clean stop
    (`odeness.stop_on_signals`); every outcome but success is one line on stderr:

    - an expected failure (`EXPECTED`: bad input, a folder in use, a run that diverged):
      exit status 2;
    - a stop (`odeness.Interrupted`: the chunk in flight finished and was saved):
      128 + the signal's number, 130 for SIGINT and 143 for SIGTERM;
    - a second Ctrl-C (`KeyboardInterrupt`: stopped at once): 130.
    """
    with odeness.stop_on_signals():
        try:
            return main()
        except EXPECTED as e:
            return report(e)
        except odeness.Interrupted as e:
            print(str(e), file=sys.stderr)
            return e.exit_status
        except KeyboardInterrupt:
            print(
                "interrupted by SIGINT twice: stopped at once; every folder keeps its "
                "last checkpoint, and the same command resumes",
                file=sys.stderr,
            )
            return 130


# --- Options records as flags.


def _without_none(annotation):
    """`X` of `X | None` (or `annotation` itself)."""
    if get_origin(annotation) in (Union, types.UnionType):
        kept = [a for a in get_args(annotation) if a is not type(None)]
        return kept[0] if len(kept) == 1 else annotation
    return annotation


def _pair(text: str) -> tuple[str, float]:
    """`NAME:VALUE` as `(name, value)` (the value is checked where it is used)."""
    name, sep, value = text.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or not name or number is None:
        raise argparse.ArgumentTypeError(
            f"must be NAME:VALUE (e.g. kinetic:0.01), got {text!r}"
        )
    return name, number


def _flag(f: dataclasses.Field) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def _argument(f: dataclasses.Field, annotation, default) -> tuple[list[str], dict]:
    """The `add_argument` call of the option `f` with the default `default`."""
    meta, kind = f.metadata, _without_none(annotation)
    kwargs: dict[str, Any] = dict(help=meta["help"], default=default)
    if meta["metavar"]:
        kwargs["metavar"] = meta["metavar"]
    if kind is bool:
        kwargs["action"] = "store_false" if default else "store_true"
        return [_flag(f)], {**kwargs, "dest": f.name}
    allowed = meta["choices"] or choices(annotation)
    if allowed:
        kwargs.update(choices=allowed, type=str)
    elif get_origin(kind) is tuple:
        args = get_args(kind)
        inner = args[0]
        if args[-1] is not Ellipsis:  # a fixed number of values
            kwargs.update(nargs=len(args), type=inner)
        elif get_origin(inner) is tuple:  # a repeated option: pairs, or lists
            pairs = get_args(inner)[-1] is not Ellipsis
            kwargs.update(action="append", default=[list(v) for v in default or ()])
            kwargs.update(type=_pair) if pairs else kwargs.update(nargs="+")
        else:
            kwargs.update(nargs="*" if meta["positional"] else "+", type=inner)
    else:
        kwargs["type"] = kind
    if meta["positional"]:
        if default is not None:
            kwargs.setdefault("nargs", "?")
        else:
            kwargs.pop("default")
        return [f.name], kwargs
    return [_flag(f)], {**kwargs, "dest": f.name}


def _tupled(value):
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value


def parser_for(cls: type[AbstractOptions], defaults: AbstractOptions, doc: str) -> Parser:
    """The parser of `cls`'s options, each defaulting to its value in `defaults`."""
    parser = Parser(doc)
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "help" in f.metadata:
            names, kwargs = _argument(f, hints[f.name], getattr(defaults, f.name))
            parser.add_argument(*names, **kwargs)
    return parser


def parse(
    cls: type[AbstractOptions],
    argv: Sequence[str],
    defaults: AbstractOptions | None = None,
    doc: str | None = None,
) -> AbstractOptions:
    """`cls`'s options from `argv`, the others as in `defaults` (default: `cls()`).

    **Raises:** `SystemExit(2)` for a flag argparse refuses; `ValueError` for options
    the record refuses."""
    defaults = cls() if defaults is None else defaults
    args = parser_for(cls, defaults, doc or cls.__doc__ or "").parse_args(argv)
    return dataclasses.replace(defaults, **{k: _tupled(v) for k, v in vars(args).items()})


# --- The commands.


def kind_main(cls: type[AbstractOptions], argv: Sequence[str]) -> int:
    """A kind of study from the command line: parse its options, run it."""
    return run(lambda: _printed(parse(cls, argv).run()))


def _printed(line: str) -> int:
    if line:
        print(line)
    return 0


STUDY = """Run a study or a group of studies of the papers by name: what each `make` target
of a figure, table or sweep runs (`make sweep-euler` is `python experiments/study.py
sweep-euler`).

    python experiments/study.py NAME [--results DIR] [OPTIONS ...]
    python experiments/study.py --list

A study runs with its own options (`experiments._catalogue`) in --results (default
results), into results/NAME; the OPTIONS given override them (`--quick`, `--seeds 0 1`,
`--out DIR`, ...: its script's, see `experiments/<script>.py --help`). A group (`ott2021`,
`regularisation`, `certification`, `table1`, `sweep-spheres`) runs its studies in order
and takes these options instead: --results, --docs (where the tables and figures go),
--seeds K (seeds 0 ... K-1 in every study that trains, into results/NAME-seedsK),
--quick (into results/NAME-quick), --args "OPTIONS" (for every study that trains)
and --publish-only (run nothing: copy what exists into --docs).
"""


def _study(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(STUDY)
        return 0 if argv else 2
    if argv[0] == "--list":
        print(catalogue.listing())
        return 0
    name, rest = argv[0], argv[1:]
    try:
        target = catalogue.find(name)
    except ValueError as e:
        return report(e)
    if isinstance(target, Group):
        return _run_group(target, rest)
    where = Parser(STUDY, add_help=False)
    where.add_argument("--results", default="results")
    known, rest = where.parse_known_args(rest)
    options = target.resolved(known.results)
    return run(lambda: _printed(parse(type(options), rest, options).run()))


def _run_group(group: Group, argv: list[str]) -> int:
    p = Parser(STUDY)
    p.add_argument("--results", help=f"folder of the runs (default {group.results})")
    p.add_argument("--docs", help=f"where the tables and figures go (default {group.docs})")
    p.add_argument("--seeds", type=int, help="seeds 0 ... K-1 in every study that trains")
    p.add_argument("--quick", action="store_true", help="every study as a smoke test")
    p.add_argument("--args", default="", help="options for every study that trains")
    p.add_argument(
        "--publish-only", action="store_true", help="run nothing: copy into --docs"
    )
    args = p.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        p.error(f"--seeds must be an integer >= 1, got {args.seeds}")
    variant = (
        f"seeds{args.seeds}" if args.seeds is not None else "quick" if args.quick else ""
    )
    if variant:  # not the documented run: its own folder, published only when asked
        results, docs = args.results or f"results/{group.name}-{variant}", args.docs
    else:
        results, docs = args.results or group.results, args.docs or group.docs
    adjust = group_changes(args.seeds, args.quick, args.args)

    def run_it() -> int:
        log = functools.partial(print, flush=True)
        only = args.publish_only
        run_group(group, results, docs=docs, adjust=adjust, publish_only=only, log=log)
        return 0

    return run(run_it)


def group_changes(
    seeds: int | None, quick: bool, args: str
) -> Callable[[AbstractOptions], AbstractOptions]:
    """What a group's options change in each of its studies: no progress bars, `seeds`
    0 ... K-1 and `quick` where a study has them, and `args` for every study that trains,
    parsed by its own options."""
    extra = shlex.split(args)
    changes: dict[str, Any] = {"progress": False}
    if seeds is not None:
        changes["seeds"] = tuple(range(seeds))
    if quick:
        changes["quick"] = True

    def adjust(options: AbstractOptions) -> AbstractOptions:
        options = options.replaced(**changes)
        trains = isinstance(options, TrainingOptions)
        return parse(type(options), extra, options) if extra and trains else options

    return adjust


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    **{kind.command: functools.partial(kind_main, kind) for kind in catalogue.KINDS},
    "study": _study,
    "reproduce_ott2021": lambda argv: _study(["ott2021", *argv]),
    "reproduce_regularisation": lambda argv: _study(["regularisation", *argv]),
    "reproduce_certification": lambda argv: _study(["certification", *argv]),
    "reproduce_table1": lambda argv: _study(  # --mnist: the group `table1-mnist`
        ["table1-mnist" if "--mnist" in argv else "table1"]
        + [a for a in argv if a != "--mnist"]
    ),
}
"""Each script of `experiments/` by name (`sweep` is `experiments/sweep.py`)."""


def main(argv: Sequence[str] | None = None) -> int:
    """`main([command, *arguments])`: the script `experiments/<command>.py`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"error: give a command, one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


def script(path: str) -> int:
    """What the script at `path` runs: `main([its name, *sys.argv[1:]])`."""
    return main([Path(path).stem, *sys.argv[1:]])
