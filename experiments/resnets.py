"""ResNets as discretised Neural ODEs (Sander et al., NeurIPS 2022): the five experiments.

    python experiments/resnets.py                      # all five, results/resnet-ode
    python experiments/resnets.py --only adjoint memory --quick

Writes <experiment>.jsonl, a figure per experiment and summary.md into --out; experiments
whose rows are already there are reused (delete the .jsonl to run one again). See
`odeness.resnet_ode` and `experiments.sander2022`.
"""

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._cli import Parser, run
from experiments.sander2022 import EXPERIMENTS, run_all


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(__doc__)
    p.add_argument("--only", nargs="+", default=list(EXPERIMENTS), metavar="EXPERIMENT",
                   help=f"some of: {', '.join(EXPERIMENTS)} (default: all)")  # fmt: skip
    p.add_argument("--out", default="results/resnet-ode", help="output folder")
    p.add_argument("--data-dir", default=None, help="folder with the official MNIST "
                   "archives, for fine-tuning (default: $ODENESS_MNIST_DIR)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="smoke test: few, shallow depths "
                   "and a tiny fine-tuning run")  # fmt: skip
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run(lambda: resnets(args))


def resnets(args) -> int:
    results = run_all(
        args.out, experiments=args.only, quick=args.quick, data_dir=args.data_dir
    )
    print(f"wrote {', '.join(results)} into {args.out} (summary.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
