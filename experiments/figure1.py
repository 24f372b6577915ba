"""The paper's Figure 1: spheres 2-D trained with Euler at 2 and at 256 steps.

    python experiments/figure1.py            # paper hyper-parameters, seed 0
    python experiments/figure1.py --quick    # 200 iterations: a smoke test

Side by side: the trajectories of test points coloured by class with crossings marked,
and test accuracy against the number of Euler test steps (1 ... 2048) with the training
configuration starred; plus Lady Windermere's fan for one input of each model. Writes
figure1.png, fan.png, figure1.md and figure1.json into --out; the two training runs live
in --out/runs/ and resume if interrupted (see `experiments.ott2021.crossings_figure`).
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._cli import Parser, run
from experiments.lab.catalogue import QUICK_ITERATIONS
from experiments.ott2021.crossings_figure import run_figure1


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument(
        "--steps",
        type=int,
        nargs=2,
        default=[2, 256],
        help="the coarse and the fine training step counts",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=10_000)
    p.add_argument("--points", type=int, default=1000, help="test points to diagnose")
    p.add_argument("--out", default="results/figure1")
    p.add_argument("--quick", action="store_true", help="200 iterations, 300 points")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.iterations = min(args.iterations, QUICK_ITERATIONS)
        args.points = min(args.points, 300)
    return run(lambda: figure1(args))


def figure1(args) -> int:
    out = Path(args.out)
    run_figure1(
        out,
        steps=tuple(args.steps),
        seed=args.seed,
        iterations=args.iterations,
        points=args.points,
        progress=not args.no_progress,
        log=lambda line: print(line, flush=True),
    )
    print(f"wrote {out / 'figure1.png'}, {out / 'fan.png'}, {out / 'figure1.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
