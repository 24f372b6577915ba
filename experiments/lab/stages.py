"""Run a paper's (or a study's) whole list of studies as stages, one after another, and
copy what they publish into the documentation: what `make ott2021` and `make
regularisation` run.
"""

import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from experiments._cli import script_main
from experiments.lab.catalogue import AbstractStudy, published_files
from odeness import files

Stage = tuple[AbstractStudy, list[str]]


def plan(
    studies: Sequence[AbstractStudy],
    results: Path,
    seeds: int | None = None,
    extra: Sequence[str] = (),
) -> list[Stage]:
    """Each study with its script's command line, in order; with `seeds`, every study
    that trains uses seeds 0 … seeds-1; `extra` options go to every study that trains."""
    stages = []
    for study in studies:
        options = list(study.quiet)
        if study.trains:
            options += extra
            if seeds is not None:  # the last --seeds given wins
                options += ["--seeds", *map(str, range(seeds))]
        stages.append((study, study.argv(results, options)))
    return stages


def add_publish_only(parser, what: str) -> None:
    """The `--publish-only` option of a reproduction script: copy `what` (the published
    files that exist) into --docs and run nothing."""
    parser.add_argument(
        "--publish-only", action="store_true", help=f"run nothing: copy {what} into --docs"
    )


def publish(studies: Sequence[AbstractStudy], results: Path, docs: Path) -> list[Path]:
    """Copy the published files that exist from `results` into `docs` (one folder per
    study, the same names), atomically; return the copies."""
    copied = []
    for study in studies:
        for source, name in published_files(study, results):
            if source.is_file():
                target = docs / name
                files.copy(source, target)
                copied.append(target)
    return copied


def reproduce(
    label: str,
    studies: Sequence[AbstractStudy],
    results: Path,
    stages: Sequence[Stage],
    docs: str | None,
) -> int:
    """Run the stages in order (`results` locked for the whole run), each with a
    progress line and its wall time; a stage that fails is reported and the rest still
    run (exit status 2 at the end); an interrupted one stops the run. Then publish the
    studies' files into `docs` (unless None)."""
    with files.folder_lock(results, "--results"):
        start, failed = time.perf_counter(), []
        for i, (study, script_argv) in enumerate(stages, start=1):
            began = time.perf_counter()
            script = f"{study.script}.py"
            print(
                f"[{label} {i}/{len(stages)}] {script} {shlex.join(script_argv)}",
                flush=True,
            )
            code = script_main(study.script)(script_argv)
            if code > 128:  # interrupted (SIGINT, SIGTERM): the stage said so; stop here
                return code
            if code != 0:
                failed.append(f"{i} ({script}, exit status {code})")
            now = time.perf_counter()
            print(
                f"[{label} {i}/{len(stages)}] {'done' if code == 0 else 'FAILED'} in "
                f"{now - began:.0f} s (total {now - start:.0f} s)",
                flush=True,
            )
        if docs is not None:
            copied = publish(studies, results, Path(docs))
            print(
                f"[{label}] {len(copied)} tables and figures copied into {docs}", flush=True
            )
    if failed:
        print(f"error: stages that failed: {', '.join(failed)}", file=sys.stderr)
        return 2
    return 0
