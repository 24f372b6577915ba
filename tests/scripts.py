"""The project's command-line scripts, run as a user runs them (in a subprocess) or, where
a test needs only what they do, through `experiments.cli.main` in the test's process
(which has JAX imported and many programs traced already)."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from experiments import _cli as cli

REPO = Path(__file__).resolve().parents[1]


def run_script(
    script: str | Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python experiments/<script> ARGS` from the repository root (`script` relative to
    `experiments/`, or a path), with its output captured as text; `env` adds to the
    environment."""
    return subprocess.run(
        [sys.executable, str(REPO / "experiments" / script), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


class Ran(NamedTuple):
    """What a script's `main` returned and printed (the fields of a finished process)."""

    returncode: int
    stdout: str
    stderr: str


def call_main(main: Callable[[list[str]], int], args: list[str], capsys) -> Ran:
    """A script's `main(args)` in this process: its exit status (argparse's too) and what
    it printed, read from pytest's `capsys`."""
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as e:  # argparse: --help, or a bad option
        code = e.code
    out, err = capsys.readouterr()
    return Ran(int(code or 0), out, err)


def main_of(script: str) -> Callable[[list[str]], int]:
    """The `main(argv)` of the script `experiments/<script>.py`: `cli.main`, named."""
    name = script.removesuffix(".py")
    return lambda argv: cli.main([name, *argv])


class Script(NamedTuple):
    """A script of `experiments/` as the tests call it: `Script("sweep").main(argv)`."""

    name: str

    def main(self, argv: list[str]) -> int:
        return main_of(self.name)(argv)


def run_main(script: str, *args: str, capsys) -> Ran:
    """`call_main` of `experiments/<script>.py`."""
    return call_main(main_of(script), list(args), capsys)
