"""Figure 3 of Ott et al.: the XOR points under Euler at a coarse and a fine step.

    python experiments/figure3.py [--out results/figure3] [--points 41]

Writes `figure3.png`, `figure3.json` and `figure3.md` (see `experiments.ott2021.xor_fan`).
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._cli import Parser, run
from experiments.ott2021.xor_fan import run_figure3


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("--out", default="results/figure3")
    p.add_argument("--points", type=int, default=41, help="step sizes in the sweep of h")
    args = p.parse_args(argv)
    return run(lambda: figure3(args))


def figure3(args) -> int:
    if args.points < 2:
        raise ValueError(f"--points must be an integer >= 2, got {args.points}")
    n = run_figure3(args.out, sweep_points=args.points)
    coarse, fine = n["panels"]
    print(
        f"h = {coarse['h']:.3g}: separable {coarse['separable']}; h = {fine['h']:.3g}: "
        f"separable {fine['separable']}; exact: separable {n['exact']['separable']}; "
        f"largest h not separable: {n['largest_h_not_separable']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
