"""Certify trained models three ways and choose their deployment solver.

    python experiments/certify.py results/sweep-euler/runs/* --out results/certify-euler
    python experiments/certify.py RUN_FOLDER ... [--points 1000] [--within 0.01]

For every seed of every run folder (written by `odeness.train`, e.g. a sweep's
`runs/*`): the solver swap's threshold verdict and the inputs that change their
prediction, self-convergence and convergence against the targets
(`odeness.self_convergence`, `odeness.convergence_test`), and for the models that are
ODEs the cheapest faithful solver (`odeness.cheapest_solver`) with its measured speed-up
against the training integrator and against dopri5 at tol 1e-6. Writes
`models/*.json` (one per model; a stopped run resumes with the next model),
`certify.jsonl` and `summary.md` into --out. Nothing is trained.
"""

import math
import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._cli import Parser, run
from experiments.lab.certification import certify, summary_markdown
from odeness import files


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("runs", nargs="+", help="run folders written by odeness.train")
    p.add_argument("--out", default="results/certify")
    p.add_argument("--points", type=int, default=1000, help="test inputs (the first N)")
    p.add_argument("--within", type=float, default=1e-2, help="the deployment solver's "
                   "largest relative RMS distance from the converged outputs")  # fmt: skip
    p.add_argument("--title", default=None, help="the summary's title")
    args = p.parse_args(argv)
    if args.points < 1:
        p.error(f"--points must be an integer >= 1, got {args.points}")
    if not (math.isfinite(args.within) and args.within > 0):
        p.error(f"--within must be a finite number > 0, got {args.within}")
    return run(lambda: _certify(args))


def _certify(args) -> int:
    runs = [Path(r) for r in args.runs]
    for r in runs:
        if not (r / "config.json").is_file():
            raise ValueError(f"{r} is not a run folder (no config.json); give folders "
                             "written by odeness.train")  # fmt: skip
    out = files.check_folder(Path(args.out), "--out")
    with files.folder_lock(out, "--out"):
        rows = certify(
            sorted(runs), out, points=args.points, within=args.within,
            progress=lambda line: print(line, flush=True),
        )  # fmt: skip
        title = args.title or ", ".join(dict.fromkeys(r.parent.parent.name for r in runs))
        text = summary_markdown(rows, points=args.points, within=args.within, title=title)
        files.atomic_write_text(out / "summary.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
