"""The paper's Figure 1: spheres 2-D trained with Euler at 2 and at 256 steps.

    python experiments/figure1.py            # paper hyper-parameters, seed 0
    python experiments/figure1.py --quick    # 200 iterations: a smoke test

Side by side: the trajectories of test points coloured by class with crossings marked,
and test accuracy against the number of Euler test steps (1 ... 2048) with the training
configuration starred; plus Lady Windermere's fan for one input of each model. Writes
figure1.png, fan.png, figure1.md and figure1.json into --out; the two training runs live
in --out/runs/ and resume if interrupted.
"""

import sys
from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np

import odeness
from experiments._cli import EXPECTED, Parser, report
from experiments.plots import (
    draw_accuracy_vs_steps,
    draw_fan,
    draw_trajectories,
    save_figure,
)
from experiments.tables import markdown_table
from odeness import io

TEST_STEPS = [2**k for k in range(12)]  # 1 ... 2048


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
        args.iterations, args.points = min(args.iterations, 200), min(args.points, 300)
    try:
        return run(args)
    except EXPECTED as e:
        return report(e)


def run(args) -> int:
    out = Path(args.out)
    data = odeness.load_dataset("sphere2")
    x, y = data.x_test[: args.points], data.y_test[: args.points]
    configs = {
        n: odeness.TrainConfig(
            dataset="sphere2",
            solver="euler",
            steps=n,
            seeds=(args.seed,),
            iterations=args.iterations,
        )
        for n in args.steps
    }
    if args.steps[0] == args.steps[1]:
        raise ValueError(f"--steps must be two different step counts, got {args.steps}")
    if args.points < 1:
        raise ValueError(f"--points must be an integer >= 1, got {args.points}")
    io.check_folder(out, "--out")
    for n, config in configs.items():  # both, before either trains
        odeness.check_run_folder(out / "runs" / f"euler-n{n:04d}", config)
    models, numbers = {}, {}
    for n, config in configs.items():
        run_dir = out / "runs" / f"euler-n{n:04d}"
        print(
            f"training Euler with {n} steps ({args.iterations} iterations) in {run_dir}",
            flush=True,
        )
        result = odeness.train(
            config, run_dir=run_dir, data=data, progress=not args.no_progress
        )
        numbers[n], models[n] = _measure(result.model(0), result.integrator, x, y)
        print(
            f"  n={n}: accuracy {numbers[n].train_accuracy:.3f}, "
            f"{numbers[n].crossing_pairs} crossing pairs, "
            f"{100 * numbers[n].nonpositive_det['steps']:.1f}% folding steps",
            flush=True,
        )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for ax, n in zip(axes[:2], args.steps, strict=True):
        paths, crossings, _, _ = models[n]
        shown = min(len(x), 300)
        draw_trajectories(
            ax,
            paths[:, :shown],
            y[:shown],
            crossings.points_among(shown),
            title=f"Euler, {n} training steps ({shown} of {len(x)} test inputs shown)\n"
            f"{crossings.num_pairs} crossing pairs, "
            f"{100 * crossings.fraction_involved:.0f}% of inputs cross",
        )
    draw_accuracy_vs_steps(
        axes[2],
        {
            f"trained with {n} steps": (
                TEST_STEPS,
                list(numbers[n].accuracy_by_euler_steps.values()),
                n,
                numbers[n].train_accuracy,
            )
            for n in args.steps
        },
        title="test accuracy with Euler at other step counts",
    )
    save_figure(fig, out / "figure1.png")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, n in zip(axes, args.steps, strict=True):
        _, _, fan, fan_input = models[n]
        draw_fan(
            ax,
            fan,
            0,
            title=f"Euler {n} steps: Lady Windermere's fan, test input {fan_input}\n"
            "(median global error)",
        )
    save_figure(fig, out / "fan.png")
    io.write_json(out / "figure1.json", {str(n): v._asdict() for n, v in numbers.items()})
    io.atomic_write_text(out / "figure1.md", _markdown(numbers, args))
    print(f"wrote {out / 'figure1.png'}, {out / 'fan.png'}, {out / 'figure1.md'}")
    return 0


class Measured(NamedTuple):
    """What Figure 1 shows of one trained model (`figure1.json`, one entry per model)."""

    train_accuracy: float
    accuracy_by_euler_steps: dict[str, float]
    """Test accuracy with Euler at each of `TEST_STEPS` steps."""
    crossing_pairs: int
    fraction_of_inputs_crossing: float
    nonpositive_det: dict[str, float]
    """`odeness.nonpositive_det_fraction`: the folding steps and inputs."""
    global_error_mean: float
    round_trip_error_mean: float
    fan_input: int
    """The test input of the fan figure (the median global error)."""


def _measure(model, integ, x, y):
    """The numbers of one model, and what its panels draw."""
    euler = odeness.solver("euler")
    # One static max_steps: the step size is traced, so one compiled program.
    accs = [
        odeness.accuracy(
            model, odeness.Integrator(euler, dt=1 / m, max_steps=TEST_STEPS[-1]), x, y
        )[0]
        for m in TEST_STEPS
    ]
    _, paths = odeness.trajectories(model, integ, x)
    crossings = odeness.count_crossings(paths)
    gerr = odeness.global_error(model, integ, x)
    fan_input = int(np.argsort(gerr)[len(gerr) // 2])  # the median global error
    fan = odeness.lady_windermere_fan(model, integ, x[fan_input : fan_input + 1])
    n = integ.steps
    measured = Measured(
        accs[TEST_STEPS.index(n)]
        if n in TEST_STEPS
        else odeness.accuracy(model, integ, x, y)[0],
        dict(zip(map(str, TEST_STEPS), accs, strict=True)),
        crossings.num_pairs,
        crossings.fraction_involved,
        odeness.nonpositive_det_fraction(model, integ, x),
        float(np.mean(gerr)),
        float(np.mean(odeness.round_trip_error(model, integ, x))),
        fan_input,
    )
    return measured, (paths, crossings, fan, fan_input)


def _markdown(numbers: dict[int, Measured], args) -> str:
    head = [
        "training steps",
        "accuracy (training solver)",
        "crossing pairs",
        "inputs crossing",
        "folding steps",
        "inputs with a folding step",
        "global error",
        "round trip",
    ]
    body = [
        [
            str(n),
            f"{v.train_accuracy:.3f}",
            str(v.crossing_pairs),
            f"{100 * v.fraction_of_inputs_crossing:.1f}%",
            f"{100 * v.nonpositive_det['steps']:.2f}%",
            f"{100 * v.nonpositive_det['inputs']:.1f}%",
            f"{v.global_error_mean:.3g}",
            f"{v.round_trip_error_mean:.3g}",
        ]
        for n, v in numbers.items()
    ]
    by_steps = [
        [str(n), *(f"{a:.3f}" for a in v.accuracy_by_euler_steps.values())]
        for n, v in numbers.items()
    ]
    lines = [
        f"# Figure 1: Euler with {args.steps[0]} vs {args.steps[1]} training steps",
        "",
        f"spheres 2-D, seed {args.seed}, {args.iterations} iterations, "
        f"{args.points} test points.",
        "",
        *markdown_table(head, body),
        "",
        "Test accuracy with Euler at m steps:",
        "",
        *markdown_table(["training steps", *map(str, TEST_STEPS)], by_steps),
        "",
        "![figure 1](figure1.png)",
        "",
        "![fan](fan.png)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
