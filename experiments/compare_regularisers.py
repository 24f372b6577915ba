"""Write the regularisation study's comparison from the folders of its studies.

    python experiments/compare_regularisers.py --out results/regularisation/comparison

Reads the studies of `experiments.regularisation` that are finished from --results (by
default the folder above --out) and writes `comparison.md`, `comparison.json` and
`max_gap.png` into --out; a study not run yet is listed as such. `make regularisation`
runs it last.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._cli import Parser, run
from experiments.regularisation.comparison import compare
from odeness import files


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("--out", default="results/regularisation/comparison")
    p.add_argument(
        "--results", help="the studies' folders (default: the folder above --out)"
    )
    p.add_argument("--threshold", type=float, default=0.1, help="max gap of an ODE")
    args = p.parse_args(argv)
    if not 0 < args.threshold < 1:
        p.error(f"--threshold must be in (0, 1), got {args.threshold}")
    out = Path(args.out)
    results = Path(args.results) if args.results else out.parent
    return run(lambda: _compare(results, out, args.threshold))


def _compare(results: Path, out: Path, threshold: float) -> int:
    if not results.is_dir():
        raise ValueError(f"--results {results} is not a folder; run the studies first")
    with files.folder_lock(out, "--out"):
        print(compare(results, out, threshold=threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
