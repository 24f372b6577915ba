"""Figure 2 of Ott et al.: the Euler-2 model's ODE outputs over its decision regions.

    python experiments/figure2.py [--out results/figure2] [--quick]

Trains spheres 2-D with Euler at 2 steps (the paper's settings, resumable run folder in
--out/runs/), then draws the test set's ODE-block outputs over the classifier's decision
regions at h = 1/2 and h = 1/4; writes `figure2.png`, `figure2.json` and `figure2.md`
(see `experiments.ott2021.decision_regions`).
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._cli import Parser, run
from experiments.lab.catalogue import QUICK_ITERATIONS
from experiments.ott2021.decision_regions import run_figure2


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("--out", default="results/figure2")
    p.add_argument("--iterations", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a smoke test: 200 iterations")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.iterations = min(args.iterations, QUICK_ITERATIONS)
    return run(lambda: figure2(args))


def figure2(args) -> int:
    n = run_figure2(
        args.out, iterations=args.iterations, seed=args.seed, progress=not args.no_progress
    )
    for p in n["panels"]:
        m = p["misplaced"]
        print(
            f"h = 1/{p['test_steps']}: accuracy {p['accuracy']:.3f}, class 0 in class 1's "
            f"region {100 * m['0']:.1f}%, class 1 in class 0's {100 * m['1']:.1f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
