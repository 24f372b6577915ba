"""The command line, the one place that parses flags: every script of `experiments/` is
`main([its name, *its arguments])`. A kind of study (`sweep`, `adapt`, ...) takes its
options record's fields as flags; `study` runs a study or a group of the catalogue by
name, the flags given after the name overriding the study's own options. Every outcome
but success is one line on stderr."""

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
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import odeness
from experiments import _catalogue as catalogue
from experiments.lab.options import AbstractOptions, TrainingOptions, flag
from experiments.lab.runner import EXPECTED, Group, one_line, run_group


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
        # Negative numbers in any notation (-1, -1.5, -1e-3, -inf) are values.
        self._negative_number_matcher = re.compile(
            r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$", re.I
        )

    def error(self, message: str):  # pyright: ignore[reportIncompatibleMethodOverride]
        self.exit(2, f"error: {message} (see --help)\n")


def report(error: BaseException) -> int:
    """Print `error: ...` as one line on stderr; return the exit status, 2."""
    print(f"error: {one_line(error)}", file=sys.stderr)
    return 2


def run(main: Callable[[], str | None]) -> int:
    """Call `main` with SIGINT and SIGTERM turned into a clean stop
    (`odeness.stop_on_signals`) and print the line it returns: exit status 0. An expected
    failure (`EXPECTED`) exits with status 2; a stop (`odeness.Interrupted`, the chunk in
    flight saved) with 128 + the signal's number; a second Ctrl-C (stopped at once), 130."""
    with odeness.stop_on_signals():
        try:
            line = main()
            if line:
                print(line)
            return 0
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
        if sep and name:
            return name, float(value)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"must be NAME:VALUE (e.g. kinetic:0.01), got {text!r}"
    )


def _argument(f: dataclasses.Field, annotation, default) -> tuple[str, dict[str, Any]]:
    """The name and `add_argument` keywords of the option `f`, defaulting to `default`."""
    how, kind = f.metadata["option"], _without_none(annotation)
    if kind is bool:
        action = "store_false" if default else "store_true"
        return flag(f), dict(action=action, default=default, help=how.help, dest=f.name)
    origin, args = get_origin(kind), get_args(kind)
    if origin is Literal:
        more = dict(choices=args, type=str)
    elif origin is not tuple:
        more = dict(type=kind)
    elif args[-1] is not Ellipsis:  # a fixed number of values
        more = dict(nargs=len(args), type=args[0])
    elif get_origin(args[0]) is tuple:  # a repeated option: pairs, or lists
        each = dict(nargs="+") if get_args(args[0])[-1] is Ellipsis else dict(type=_pair)
        more = dict(action="append", default=[list(v) for v in default or ()], **each)
    else:
        more = dict(nargs="*" if how.positional else "+", type=args[0])
    kwargs = {"help": how.help, "default": default, "metavar": how.metavar, **more}
    if not how.positional:
        return flag(f), {**kwargs, "dest": f.name}
    if default is not None:
        kwargs.setdefault("nargs", "?")
    return f.name, kwargs


def _tupled(value):
    return tuple(map(_tupled, value)) if isinstance(value, list) else value


def parse(
    cls: type[AbstractOptions], argv: Sequence[str], defaults: AbstractOptions | None = None
) -> AbstractOptions:
    """`cls`'s options from `argv`, the others as in `defaults` (default: `cls()`).
    **Raises:** `SystemExit(2)` for a bad flag; `ValueError` for options `cls` refuses."""
    defaults = cls() if defaults is None else defaults
    parser, hints = Parser(cls.__doc__), get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "option" in f.metadata:
            name, kwargs = _argument(f, hints[f.name], getattr(defaults, f.name))
            parser.add_argument(name, **kwargs)
    args = parser.parse_args(argv)
    return dataclasses.replace(defaults, **{k: _tupled(v) for k, v in vars(args).items()})


def _run_study(
    cls: type[AbstractOptions], argv: Sequence[str], defaults: AbstractOptions | None = None
) -> int:
    """Run the study of `parse(cls, argv, defaults)`."""
    return run(lambda: parse(cls, argv, defaults).run())


STUDY = """Run a study or a group of studies of the papers by name: what each `make` target
of a figure, table or sweep runs (`make sweep-euler` is `python experiments/study.py
sweep-euler`).

    python experiments/study.py NAME [--results DIR] [OPTIONS ...]
    python experiments/study.py --list

A study runs with its own options (`experiments._catalogue`) in --results (default
results), into results/NAME; the OPTIONS given override them (`--quick`, `--seeds 0 1`,
`--out DIR`, ...: its script's, see `experiments/<script>.py --help`). A group
(`ott2021`, `regularisation`, `certification`, `cnf`, `table1`, `sweep-spheres`) runs its
studies in order and takes these options instead: --results, --docs (where the tables and
figures go), --seeds K (seeds 0 ... K-1 in every study that trains, into
results/NAME-seedsK), --quick (into results/NAME-quick), --args "OPTIONS" (for every
study that trains) and --publish-only (run nothing: copy what exists into --docs).
"""


def _study(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(STUDY)
        return 0 if argv else 2
    if argv[0] == "--list":
        print("\n".join(f"{n}: {t.what}" for n, t in catalogue.CATALOGUE.items()))
        return 0
    try:
        target = catalogue.find(argv[0])
    except ValueError as e:
        return report(e)
    if isinstance(target, Group):
        return _run_group(target, argv[1:])
    where = Parser(STUDY, add_help=False)
    where.add_argument("--results", default="results")
    known, rest = where.parse_known_args(argv[1:])
    options = target.resolved(known.results)
    return _run_study(type(options), rest, options)


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
    log, only = functools.partial(print, flush=True), args.publish_only

    def main() -> None:
        run_group(group, results, docs=docs, adjust=adjust, publish_only=only, log=log)

    return run(main)


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
    **{kind.command: functools.partial(_run_study, kind) for kind in catalogue.KINDS},
    "study": _study,
    **{
        f"reproduce_{group}": lambda argv, group=group: _study([group, *argv])
        for group in ("ott2021", "regularisation", "certification", "cnf")
    },
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
