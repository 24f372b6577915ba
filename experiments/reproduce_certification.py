"""The certification studies in one command: the three verdicts of trained models and
the cheapest faithful solver of those that are ODEs.

    python experiments/reproduce_certification.py [--results results] [--docs docs/results]

Runs, into --results, the studies of `experiments.certification.STUDIES` one after
another (each resumes with the next model): `certify-euler` (the 40 models of `make
sweep-euler`) and `certify-mnist` (the MNIST model of `make regularisation`). They train
nothing: run those first. Then each study's `summary.md` that exists is copied into
--docs.

Each stage prints one progress line and its wall time; a stage that fails (e.g. its
models are missing) is reported and the others still run (exit status 2 at the end).
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._cli import Parser, run
from experiments.certification import STUDIES
from experiments.lab import stages


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("--results", default="results", help="the folder holding the "
                   "trained studies, and where the certification goes")  # fmt: skip
    p.add_argument("--docs", default="docs/results", help="where the summaries go")
    stages.add_publish_only(p, "the summaries that exist")
    args = p.parse_args(argv)
    results = Path(args.results)
    planned = [] if args.publish_only else stages.plan(STUDIES, results)
    return run(
        lambda: stages.reproduce("certification", STUDIES, results, planned, args.docs)
    )


if __name__ == "__main__":
    sys.exit(main())
