"""Train a Neural ODE with the paper's step-size (or tolerance) adaptation.

    python experiments/adapt.py --dataset sphere2 --solver euler
    python experiments/adapt.py --dataset cifar10 --solver euler --data-dir ~/data/cifar10

Fixed-step solvers adapt the step size (from Hairer's initial step, or --steps); adaptive
solvers adapt the tolerance (from --tol, the paper's 1e-6). Writes config.json,
metrics.jsonl, checkpoint.eqx, swap.jsonl, summary.{json,md} and adaptation.png into
--out; an interrupted run resumes. See `odeness.StepSizeRule`, `odeness.ToleranceRule`
and `experiments.lab.adapted_runs`.
"""

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import odeness
from experiments import _cli
from experiments.lab.adapted_runs import run_adaptation
from experiments.lab.catalogue import quick_config


def parse_args(argv=None) -> argparse.Namespace:
    p = _cli.Parser(__doc__)
    _cli.add_training_args(p)
    p.add_argument("--solver", default="euler", help="training solver (euler, midpoint, "
                   "dopri5, fehlberg2, ...)")  # fmt: skip
    start = p.add_mutually_exclusive_group()
    start.add_argument("--steps", type=int, help="initial steps (default: Hairer's rule)")
    start.add_argument("--tol", type=float, help="initial tolerance of adaptive solvers "
                       "(default 1e-6)")  # fmt: skip
    p.add_argument("--test-solver", default=None, help="default: the paper's (euler → "
                   "midpoint, midpoint → rk4, dopri5 → dopri5, fehlberg2 → dopri5)"
                   )  # fmt: skip
    p.add_argument("--threshold", type=float, default=0.1, help="accuracy gap that "
                   "marks the model as not an ODE")  # fmt: skip
    p.add_argument("--interval", type=int, default=50, help="iterations between checks")
    p.add_argument("--test-solvers", nargs="+", default=None, help="the final solver "
                   "swap's solvers (default: euler, midpoint, rk4 for fixed steps, the "
                   "training solver for tolerances)")  # fmt: skip
    p.add_argument("--factors", type=float, nargs="+", default=None, help="the final "
                   "swap's factors (default: 0.5 0.75 1 1.5 2 for fixed steps, 0.1 1 10 "
                   "for tolerances)")  # fmt: skip
    p.add_argument("--max-steps", type=int, default=None, help="cap on the steps "
                   "(default 500 for fixed steps, 4096 for adaptive solves)")  # fmt: skip
    p.add_argument("--out", default=None, help="run folder (default "
                   "results/adapt-DATASET-SOLVER)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="smoke test: 200 iterations, the "
                   "first two seeds")  # fmt: skip
    _cli.add_parallel_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return _cli.run(lambda: adapt(args))


def adapt(args: argparse.Namespace) -> int:
    _cli.start_processes(args)
    _cli.check_solver("--solver", args.solver)
    if args.test_solver is not None:
        _cli.check_solver("--test-solver", args.test_solver)
    for name in args.test_solvers or ():
        _cli.check_solver("--test-solvers", name)
    if args.interval < 1:
        raise ValueError(f"--interval must be an integer >= 1, got {args.interval}")
    adaptive = odeness.is_adaptive(odeness.solver(args.solver))
    if adaptive and args.steps is not None:
        raise ValueError(
            f"solver {args.solver!r} adapts its tolerance: give --tol, not --steps"
        )
    if not adaptive and args.tol is not None:
        raise ValueError(f"solver {args.solver!r} has fixed steps: give --steps, not --tol")
    config = odeness.TrainConfig(
        solver=args.solver,
        steps=args.steps,
        tol=(args.tol if args.tol is not None else 1e-6) if adaptive else None,
        adapt=True,
        test_solver=args.test_solver,
        threshold=args.threshold,
        interval=args.interval,
        max_steps=args.max_steps,
        **_cli.training_fields(args),
        log_every=args.interval,
        checkpoint_every=args.interval * max(1, 1000 // args.interval),
    )
    if args.quick:
        config = quick_config(config)
    summary = run_adaptation(
        config,
        args.out or f"results/adapt-{args.dataset}-{args.solver}",
        test_solvers=args.test_solvers,
        factors=args.factors,
        progress=not args.no_progress,
        parallel=args.parallel,
    )
    value = "steps" if summary.fixed else "tol"
    ms = summary.mean_std
    print(
        f"final {value} {ms(value).mean:.4g} ± {ms(value).std:.2g}, test accuracy "
        f"{ms('test_accuracy').format('.3f')}, max gap {ms('max_gap').mean:.3f}, "
        f"training NFE {ms('train_nfe_total').mean:,.0f} ({summary.train_seconds:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
