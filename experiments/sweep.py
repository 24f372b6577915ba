"""Train a Neural ODE at each step size (or tolerance) of a grid and swap solvers.

    python experiments/sweep.py --solver euler --steps 1 2 4 8 16 32 64 128 \
        --out results/sweep-euler

Writes results.jsonl, summary.md, critical_step.json and a figure into --out; an
interrupted sweep resumes from its checkpoints. See `experiments.lab.sweep_runs`.
"""

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import odeness
from experiments import _cli
from experiments.lab.catalogue import quick_config
from experiments.lab.sweep_runs import run_sweep


def parse_args(argv=None) -> argparse.Namespace:
    p = _cli.Parser(__doc__)
    _cli.add_training_args(p)
    p.add_argument("--solver", default="euler", help="training solver")
    grid = p.add_mutually_exclusive_group()
    grid.add_argument("--steps", type=int, nargs="+", help="training step counts on [0, 1]")
    grid.add_argument("--tols", type=float, nargs="+", help="training tolerances")
    p.add_argument("--test-solvers", nargs="+", default=None, help="the swap's solvers "
                   "(default: euler midpoint rk4 for steps, the training solver for "
                   "tols)")  # fmt: skip
    p.add_argument("--factors", type=float, nargs="+", default=None, help="the swap's "
                   "factors (default: 0.5 0.75 1 1.5 2 for steps, 0.1 1 10 for tols)"
                   )  # fmt: skip
    p.add_argument(
        "--reference",
        default="rk4:256",
        help="fine reference solve SOLVER:STEPS, or 'none'",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.1,
        help="accuracy drop that marks a model as not an ODE",
    )
    p.add_argument(
        "--out", default=None, help="output folder (default results/sweep-SOLVER)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 200 iterations, the first two seeds",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="training configurations run at once (threads; default 2)",
    )
    _cli.add_parallel_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def parse_reference(text: str) -> tuple[str, int] | None:
    if text.lower() == "none":
        return None
    name, sep, steps = text.partition(":")
    if not sep or not steps.isdigit() or int(steps) < 1:
        raise ValueError(
            f"--reference must be SOLVER:STEPS (e.g. rk4:256) or none, got {text!r}"
        )
    _cli.check_solver("--reference", name)
    return name, int(steps)


def main(argv=None) -> int:
    args = parse_args(argv)
    return _cli.run(lambda: sweep(args))


def sweep(args: argparse.Namespace) -> int:
    _cli.start_processes(args)
    for name in args.test_solvers or ():
        _cli.check_solver("--test-solvers", name)
    if args.steps is None and args.tols is None:
        args.steps = [1, 2, 4, 8, 16, 32, 64, 128]
    first = (
        {"steps": args.steps[0], "tol": None}
        if args.steps
        else {"steps": None, "tol": args.tols[0]}  # pyright: ignore[reportOptionalSubscript]
    )
    base = odeness.TrainConfig(
        solver=args.solver,
        **_cli.training_fields(args),
        **first,
    )
    if args.quick:
        base = quick_config(base)
    run_sweep(
        base,
        args.out or f"results/sweep-{args.solver}",
        steps=args.steps,
        tols=args.tols,
        test_solvers=args.test_solvers,
        factors=args.factors,
        reference=parse_reference(args.reference),
        threshold=args.threshold,
        jobs=args.jobs,
        progress=not args.no_progress,
        parallel=args.parallel,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
