"""Studies and groups, and the one runner of both: each figure, table and sweep of a paper
is a `Study` (its `make` target, its folder under `results/` and its typed options), from
which its stage of a reproduction, the tests' quick runs and the documentation's command
tables all derive; a `Group` runs studies (and groups) in order."""

import dataclasses
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import odeness
from experiments.lab.options import AbstractOptions, command_line
from odeness import files

EXPECTED = (ValueError, OSError, odeness.RunFailed)
"""A study's failures that are reported as one line: bad input, a file it cannot use, a
run that diverged or a solve that failed."""

Adjust = Callable[[AbstractOptions], AbstractOptions]


def one_line(error: BaseException) -> str:
    """The message of `error` on one line (its type's name if it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


@dataclasses.dataclass(frozen=True)
class Study:
    """One figure, table or sweep: its name, what it is (one line for the documentation's
    command table), and its options, whose paths are relative to the results folder
    (`out` defaults to the study's name)."""

    name: str
    what: str
    options: AbstractOptions

    def resolved(self, results: str | Path = "results") -> AbstractOptions:
        """The options as the study runs them in `results`."""
        return self.options.under(Path(results), self.name)

    def folder(self, results: str | Path = "results") -> Path:
        """Where the study writes in `results`."""
        return self.resolved(results).folder

    def published(self, results: str | Path = "results") -> list[Path]:
        """The files of the study that go into the documentation."""
        folder = self.folder(results)
        return [folder / name if name else folder for name in type(self.options).published]

    def command(self, results: str | Path = "results") -> str:
        """The command line a user would type to run it, as the documentation shows it."""
        options = self.resolved(results)
        return shlex.join(
            ["python", f"experiments/{options.command}.py", *command_line(options)]
        )


@dataclasses.dataclass(frozen=True)
class Group:
    """Studies (and groups) run in order into `results` (a run that is not the documented
    one, `--seeds` or `--quick`, into `results/<name>-seeds<K>` or `results/<name>-quick`);
    the files of the studies it `publishes` (None: every one) go into `docs` (None: not
    copied)."""

    name: str
    what: str
    members: tuple["Study | Group", ...]
    results: str = "results"
    docs: str | None = "docs/results"
    publishes: tuple[str, ...] | None = None

    def studies(self) -> list[Study]:
        """Every study of the group, in order, each once."""
        found: dict[str, Study] = {}
        for member in self.members:
            for study in member.studies() if isinstance(member, Group) else [member]:
                found.setdefault(study.name, study)
        return list(found.values())


def run_study(
    study: Study, results: str | Path = "results", adjust: Adjust = lambda o: o
) -> str:
    """Run `study` in `results` (options changed by `adjust`); return its closing line."""
    return adjust(study.resolved(results)).run()


def run_group(
    group: Group,
    results: str | Path,
    *,
    docs: str | Path | None,
    adjust: Adjust = lambda o: o,
    publish_only: bool = False,
    log: Callable[[str], None] = print,
) -> None:
    """Run every study of `group` in `results` (locked for the whole run), each with a
    progress line and its wall time, then copy what they publish into `docs` (unless
    None). Every study's options are checked before any study runs; a study that fails
    is reported and the rest still run; a stop ends the group after the study in flight.

    **Raises:** `ValueError` for a study's bad options, before anything is written;
    `odeness.RunFailed` naming the studies that failed, after the others ran;
    `odeness.Interrupted` on a stop request.
    """
    results, members = Path(results), group.studies()
    planned = [] if publish_only else [(s, _checked(s, results, adjust)) for s in members]
    failed, start = [], time.perf_counter()
    with files.folder_lock(results, "--results"):
        for i, (study, options) in enumerate(planned, start=1):
            head, began = f"[{group.name} {i}/{len(members)}]", time.perf_counter()
            log(f"{head} {study.name}: {study.what}")
            try:
                line = options.run()
            except EXPECTED as e:
                failed.append(f"{study.name} ({one_line(e)})")
                line = f"{head} FAILED: {one_line(e)}"
            if line:
                log(line)
            now = time.perf_counter()
            log(f"{head} done in {now - began:.0f} s (total {now - start:.0f} s)")
            odeness.raise_if_stopped(
                f"after {study.name}: {results} keeps what it finished"
            )
        if docs is not None:
            chosen = [
                s for s in members if group.publishes is None or s.name in group.publishes
            ]
            copied = publish(chosen, results, Path(docs))
            log(f"[{group.name}] {len(copied)} tables and figures copied into {docs}")
    if failed:
        raise odeness.RunFailed(
            f"{len(failed)} of {len(members)} studies failed: " + "; ".join(failed)
        )


def _checked(study: Study, results: Path, adjust: Adjust) -> AbstractOptions:
    """The options `study` runs with, checked; a `ValueError` names the study."""
    try:
        options = adjust(study.resolved(results))
        options.check()
    except ValueError as e:
        raise ValueError(f"{study.name}: {e}") from None
    return options


def publish(studies: Sequence[Study], results: Path, docs: Path) -> list[Path]:
    """Copy the published files that exist from `results` into `docs` (the same paths
    under it), atomically; return the copies."""
    copied = []
    for study in studies:
        for source in study.published(results):
            if source.is_file():
                target = docs / source.relative_to(results)
                files.copy(source, target)
                copied.append(target)
    return copied
