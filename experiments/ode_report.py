"""Write an ODE-ness report for a trained run folder.

    python experiments/ode_report.py results/sweep-euler/runs/euler-n0002

Loads the run's checkpoint and writes report.md (swap table, crossings, folding steps,
global error, round trip) with its figures into RUN_FOLDER/report/ (or --out).
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import odeness
from experiments._cli import Parser, run
from experiments.lab.ode_reports import ode_report
from odeness import files


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("run_dir", help="a run folder written by odeness.train")
    p.add_argument(
        "--seed-index",
        type=int,
        default=0,
        help="which of the run's seeds (position in config.seeds)",
    )
    p.add_argument("--points", type=int, default=1000, help="test inputs to diagnose")
    p.add_argument(
        "--det-points",
        type=int,
        default=None,
        help="test inputs whose step Jacobians are computed "
        "(default: 200 for small d, down to 10 at d = 900)",
    )
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/report)")
    args = p.parse_args(argv)
    return run(lambda: ode_report_of(args))


def ode_report_of(args) -> int:
    run = odeness.load_run(args.run_dir)
    seeds = run.config.seeds
    if not 0 <= args.seed_index < len(seeds):
        raise ValueError(
            f"--seed-index must be in 0..{len(seeds) - 1} for seeds "
            f"{seeds}, got {args.seed_index}"
        )
    data = run.config.load_dataset()
    out = files.check_folder(args.out or Path(args.run_dir) / "report", "--out")
    if args.points < 1:
        raise ValueError(f"--points must be an integer >= 1, got {args.points}")
    title = (
        f"{run.config.dataset}, {run.config.solver} "
        f"{run.config.label}, seed {seeds[args.seed_index]}"
    )
    with files.folder_lock(out, "--out"):
        numbers = ode_report(
            run.model(args.seed_index),
            run.integrator,
            data,
            out,
            title=title,
            max_points=args.points,
            det_points=args.det_points,
        )
    print(
        f"wrote {out / 'report.md'}: accuracy {numbers.swap.train_score:.3f}, "
        f"max gap {numbers.swap.max_gap:.3f}, {numbers.crossing_pairs} crossing "
        f"pairs, {100 * numbers.folding_steps:.1f}% folding steps"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
