"""Every table and figure of Ott et al. that odeness regenerates, in one command.

    python experiments/reproduce_ott2021.py [--results results] [--docs docs/results]
    python experiments/reproduce_ott2021.py --seeds 1     # one seed per run

Runs, into --results, the studies of `experiments.ott2021.STUDIES` one after another
(each resumes; finished runs are reused): Figures 1, 2 and 3; the Euler sweep (Fig. 4a)
and the ODE-ness report of its 8-step model; Table 1's runs (the Euler adaptation, Fig.
5; the dopri5 sweep, Fig. 4d, and its adapted runs; the table); the paper's RK4 (the 3/8
rule) sweep, tested with it and with classic RK4 (Fig. 4b); the Fehlberg2 sweep, tested
with Fehlberg2 and dopri5 (Fig. 4c); the Euler sweep trained with the continuous adjoint;
and the Euler sweeps on the 3-, 10- and 900-dimensional spheres (the supplement).

--seeds K trains seeds 0 … K-1 in every sweep and adapted run instead of the studies'
counts (5 unless stated), into results/ott2021-seedsK, and copies nothing into the
documentation unless --docs is given.

Each stage prints one progress line and its wall time; a stage that fails is reported and
the others still run (exit status 2 at the end). Then the tables and figures that exist
are copied into --docs (for the documentation, independent of one machine's results
folder).
"""

import shlex
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._cli import Parser, run, script_main
from experiments.lab.catalogue import AbstractStudy, published_files
from experiments.ott2021 import STUDIES
from odeness import files


def plan(results: Path, seeds: int | None = None) -> list[tuple[AbstractStudy, list[str]]]:
    """Each study with its script's command line, in order; with `seeds`, every study
    that trains uses seeds 0 … seeds-1."""
    stages = []
    for study in STUDIES:
        extra = list(study.quiet)
        if seeds is not None and study.trains:
            extra += ["--seeds", *map(str, range(seeds))]  # the last --seeds given wins
        stages.append((study, study.argv(results, extra)))
    return stages


def publish(results: Path, docs: Path) -> list[Path]:
    """Copy the published files that exist from `results` into `docs` (one folder per
    study, the same names), atomically; return the copies."""
    copied = []
    for study in STUDIES:
        for source, name in published_files(study, results):
            if source.is_file():
                target = docs / name
                files.copy(source, target)
                copied.append(target)
    return copied


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("--results", help="folder of the runs (default results, with --seeds "
                   "K results/ott2021-seedsK)")  # fmt: skip
    p.add_argument("--docs", help="where the tables and figures go (default docs/results; "
                   "with --seeds none)")  # fmt: skip
    p.add_argument("--seeds", type=int, help="seeds per sweep and adapted run (default: "
                   "the studies' own)")  # fmt: skip
    p.add_argument(
        "--publish-only",
        action="store_true",
        help="run nothing: copy the tables and figures that exist into --docs",
    )
    args = p.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        p.error(f"--seeds must be an integer >= 1, got {args.seeds}")
    if args.seeds is None:
        results, docs = Path(args.results or "results"), args.docs or "docs/results"
    else:  # not the documented counts: its own folder, published only when asked
        results = Path(args.results or f"results/ott2021-seeds{args.seeds}")
        docs = args.docs
    stages = [] if args.publish_only else plan(results, args.seeds)
    return run(lambda: reproduce(results, stages, docs))


def reproduce(results: Path, stages, docs: str | None) -> int:
    """Run the stages in order (`results` locked for the whole run), then publish."""
    with files.folder_lock(results, "--results"):
        start, failed = time.perf_counter(), []
        for i, (study, script_argv) in enumerate(stages, start=1):
            began = time.perf_counter()
            script = f"{study.script}.py"
            print(
                f"[ott2021 {i}/{len(stages)}] {script} {shlex.join(script_argv)}",
                flush=True,
            )
            code = script_main(study.script)(script_argv)
            if code > 128:  # interrupted (SIGINT, SIGTERM): the stage said so; stop here
                return code
            if code != 0:
                failed.append(f"{i} ({script}, exit status {code})")
            now = time.perf_counter()
            print(
                f"[ott2021 {i}/{len(stages)}] {'done' if code == 0 else 'FAILED'} in "
                f"{now - began:.0f} s (total {now - start:.0f} s)",
                flush=True,
            )
        if docs is not None:
            copied = publish(results, Path(docs))
            print(
                f"[ott2021] {len(copied)} tables and figures copied into {docs}", flush=True
            )
    if failed:
        print(f"error: stages that failed: {', '.join(failed)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
