"""What the command-line scripts share: the parser, the error path, training options."""

import argparse
import importlib
import re
import sys
from collections.abc import Callable
from typing import get_args

import odeness

# Negative numbers in any notation (-1, -1.5, -1e-3, -inf) are values, never options.
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$", re.I)


class Parser(argparse.ArgumentParser):
    """`argparse` with whole option names only (no abbreviations), negative numbers read
    as values, and errors as one line with exit status 2."""

    def __init__(self, doc: str | None, **kwargs):
        super().__init__(
            description=(doc or "").split("\n\n")[0], allow_abbrev=False, **kwargs
        )
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str):  # pyright: ignore[reportIncompatibleMethodOverride]
        self.exit(2, f"error: {message} (see --help)\n")


EXPECTED = (ValueError, OSError, odeness.RunFailed)
"""Failures a script reports as one line: bad input, a file it cannot use, a run that
diverged or a solve that failed."""


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


def check_solver(option: str, name: str) -> None:
    """**Raises:** `ValueError` naming `option` if `name` is not a solver."""
    try:
        odeness.solver(name)
    except ValueError as e:
        raise ValueError(f"{option}: {e}") from None


DATASETS = (
    "sphere2, sphere3, sphere10, sphere900, three_minima, mnist, fashion_mnist or cifar10"
)


def add_training_args(p: argparse.ArgumentParser) -> None:
    """Add the dataset, seed and optimisation options every training script takes."""
    p.add_argument("--dataset", default="sphere2", help=DATASETS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--iterations", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    p.add_argument("--field", default="conv", help="vector field: conv or mlp")
    p.add_argument(
        "--channels",
        type=int,
        default=None,
        help="hidden channels C of the field (default: the paper's, 128 for cifar10, "
        "else 32)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with the official archives of mnist, fashion_mnist or cifar10 "
        "(default: $ODENESS_MNIST_DIR, ...; see docs/guides/datasets.md)",
    )
    p.add_argument(
        "--regularise",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a regulariser of the training solves and its weight, repeatable: "
        "kinetic, jacobian, taylorK (K >= 1), error, or steer (VALUE: the spread of the "
        "end time), e.g. --regularise kinetic:0.01",
    )
    p.add_argument(
        "--adjoint",
        default="backprop",
        help="how gradients go through the solve: backprop (through the solver's "
        "operations, the default) or backsolve (the continuous adjoint)",
    )


def training_fields(args: argparse.Namespace) -> dict:
    """The `TrainConfig` fields set by `add_training_args`'s options."""
    return dict(
        dataset=args.dataset,
        seeds=tuple(args.seeds),
        iterations=args.iterations,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        field=args.field,
        channels=args.channels,  # None: the paper's for the data set
        data_dir=args.data_dir,
        adjoint=args.adjoint,
        regularise=tuple(parse_regularise(text) for text in args.regularise),
    )


def parse_regularise(text: str) -> tuple[str, float]:
    """`NAME:VALUE` as `(name, value)`; the name and value are checked by `TrainConfig`.

    **Raises:** `ValueError` for another form.
    """
    name, sep, value = text.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or not name or number is None:
        raise ValueError(
            f"--regularise must be NAME:VALUE (e.g. kinetic:0.01), got {text!r}"
        )
    return name, number


def add_parallel_args(p: argparse.ArgumentParser) -> None:
    """--parallel and the multi-process options (see `odeness.initialize_distributed`)."""
    p.add_argument(
        "--parallel",
        default="seeds",
        choices=get_args(odeness.Layout),
        help="use the devices for the seeds (default), for data parallelism within "
        "each run (every batch split), or use one device",
    )
    p.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 "
                   "(multi-process runs; default $ODENESS_COORDINATOR)")  # fmt: skip
    p.add_argument("--num-processes", type=int, default=None,
                   help="processes in the run (default $ODENESS_NUM_PROCESSES)"
                   )  # fmt: skip
    p.add_argument("--process-id", type=int, default=None,
                   help="this process's rank (default $ODENESS_PROCESS_ID)")  # fmt: skip


def start_processes(args: argparse.Namespace) -> None:
    """Join a multi-process run if the options or the environment ask for one."""
    odeness.initialize_distributed(args.coordinator, args.num_processes, args.process_id)


def script_main(script: str) -> Callable[[list[str]], int]:
    """The `main(argv)` of the command-line script `experiments/<script>.py`."""
    return importlib.import_module(f"experiments.{script}").main
