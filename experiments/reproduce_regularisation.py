"""The regularisation study in one command: which cure makes a Neural ODE an ODE, at
what step size and at what cost.

    python experiments/reproduce_regularisation.py [--results results/regularisation]
                                                   [--docs docs/results/regularisation]
    python experiments/reproduce_regularisation.py --quick   # a smoke test

Runs, into --results, the studies of `experiments.regularisation.STUDIES` one after
another (each resumes; finished runs are reused): the weight search, the Euler sweeps
with and without each regulariser, dopri5 at one tolerance on spheres 2-D and on MNIST,
the Euler step-size adaptation, and last the comparison (`comparison.md`,
`max_gap.png`), which is copied into --docs. MNIST needs its files: ODENESS_MNIST_DIR
or the tfds data folder (see the data sets guide).

--quick trains every run for 200 iterations with its first two seeds, into
results/regularisation-quick, and publishes nothing unless --docs is given.

Each stage prints one progress line and its wall time; a stage that fails is reported and
the others still run (exit status 2 at the end).
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._cli import Parser, run
from experiments.lab import stages
from experiments.regularisation import COMPARISON, STUDIES


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("--results", help="folder of the runs (default results/regularisation, "
                   "with --quick results/regularisation-quick)")  # fmt: skip
    p.add_argument("--docs", help="where the comparison goes (default "
                   "docs/results/regularisation; with --quick none)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="200 iterations, two seeds")
    stages.add_publish_only(p, "the comparison, if it exists,")
    args = p.parse_args(argv)
    if args.quick:
        results = Path(args.results or "results/regularisation-quick")
        docs = args.docs
    else:
        results = Path(args.results or "results/regularisation")
        docs = args.docs or "docs/results/regularisation"
    extra = ["--quick"] if args.quick else []
    planned = [] if args.publish_only else stages.plan(STUDIES, results, extra=extra)
    return run(
        lambda: stages.reproduce("regularisation", (COMPARISON,), results, planned, docs)
    )


if __name__ == "__main__":
    sys.exit(main())
