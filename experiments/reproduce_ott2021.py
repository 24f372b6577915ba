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

import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._cli import Parser, run
from experiments.lab import stages
from experiments.ott2021 import STUDIES


def plan(results: Path, seeds: int | None = None) -> list[stages.Stage]:
    """Each study with its script's command line, in order; with `seeds`, every study
    that trains uses seeds 0 … seeds-1."""
    return stages.plan(STUDIES, results, seeds)


def publish(results: Path, docs: Path) -> list[Path]:
    """Copy the published files that exist from `results` into `docs`; return them."""
    return stages.publish(STUDIES, results, docs)


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("--results", help="folder of the runs (default results, with --seeds "
                   "K results/ott2021-seedsK)")  # fmt: skip
    p.add_argument("--docs", help="where the tables and figures go (default docs/results; "
                   "with --seeds none)")  # fmt: skip
    p.add_argument("--seeds", type=int, help="seeds per sweep and adapted run (default: "
                   "the studies' own)")  # fmt: skip
    stages.add_publish_only(p, "the tables and figures that exist")
    args = p.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        p.error(f"--seeds must be an integer >= 1, got {args.seeds}")
    if args.seeds is None:
        results, docs = Path(args.results or "results"), args.docs or "docs/results"
    else:  # not the documented counts: its own folder, published only when asked
        results = Path(args.results or f"results/ott2021-seeds{args.seeds}")
        docs = args.docs
    planned = [] if args.publish_only else plan(results, args.seeds)
    return run(lambda: stages.reproduce("ott2021", STUDIES, results, planned, docs))


if __name__ == "__main__":
    sys.exit(main())
