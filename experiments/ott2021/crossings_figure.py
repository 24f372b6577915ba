"""Figure 1 of Ott et al.: spheres 2-D trained with Euler at 2 and at 256 steps (the
trajectories and their crossings, test accuracy against Euler test steps, and Lady
Windermere's fan; see `Figure1Options`). The fan and the diagnosis are
`experiments.lab.ode_reports.diagnose`, which the ODE-ness report shares.
"""

import dataclasses
from pathlib import Path
from typing import NamedTuple

import odeness
from experiments.lab.figures import (
    draw_accuracy_vs_steps,
    draw_fan,
    draw_trajectories,
    pyplot,
    save_figure,
)
from experiments.lab.markdown import markdown_table, write_results
from experiments.lab.ode_reports import Diagnosis, diagnose
from experiments.lab.options import QUICK_ITERATIONS, AbstractOptions, option
from odeness import files

TEST_STEPS = [2**k for k in range(12)]  # 1 ... 2048


class Measured(NamedTuple):
    """What Figure 1 shows of one trained model (`figure1.json`, one entry per model)."""

    train_accuracy: float
    accuracy_by_euler_steps: dict[str, float]
    """Test accuracy with Euler at each of `TEST_STEPS` steps."""
    crossing_pairs: int
    fraction_of_inputs_crossing: float
    nonpositive_det: dict[str, float]
    """The fractions of inputs with a folding step and of folding (input, step) pairs."""
    global_error_mean: float
    round_trip_error_mean: float
    fan_input: int
    """The test input of the fan figure (the median global error)."""


def train_config(steps: int, *, iterations: int, seed: int) -> odeness.TrainConfig:
    """One of Figure 1's models: spheres 2-D, Euler at `steps` steps, the paper's
    settings otherwise."""
    return odeness.TrainConfig(
        dataset="sphere2", solver="euler", steps=steps, seeds=(seed,), iterations=iterations
    )


def measure(model, integ: odeness.Integrator, x, y) -> tuple[Measured, Diagnosis]:
    """The numbers of one model, and the diagnosis its panels draw."""
    euler = odeness.solver("euler")
    # One static max_steps: the step size is traced, so one compiled program.
    accs = [
        odeness.score(
            model, odeness.Integrator(euler, dt=1 / m, max_steps=TEST_STEPS[-1]), x, y
        )[0]
        for m in TEST_STEPS
    ]
    found = diagnose(model, integ, x, det_points=len(x))
    n, dets = integ.steps, found.determinants
    measured = Measured(
        accs[TEST_STEPS.index(n)]
        if n in TEST_STEPS
        else odeness.score(model, integ, x, y)[0],
        dict(zip(map(str, TEST_STEPS), accs, strict=True)),
        found.crossings.num_pairs,
        found.crossings.fraction_involved,
        {"inputs": dets.input_fraction, "steps": dets.step_fraction},
        float(found.global_error.mean()),
        float(found.round_trip_error.mean()),
        found.fan_input,
    )
    return measured, found


@dataclasses.dataclass(frozen=True)
class Figure1Options(AbstractOptions):
    """The paper's Figure 1: spheres 2-D trained with Euler at 2 and at 256 steps.

        python experiments/figure1.py            # paper hyper-parameters, seed 0
        python experiments/figure1.py --quick    # 200 iterations: a smoke test

    Side by side: the trajectories of test points coloured by class with crossings
    marked, and test accuracy against the number of Euler test steps (1 ... 2048) with
    the training configuration starred; plus Lady Windermere's fan for one input of
    each model. Writes figure1.png, fan.png, figure1.md and figure1.json into --out; the
    two training runs live in --out/runs/ and resume if interrupted (see
    `experiments.ott2021.crossings_figure`).
    """

    command = "figure1"
    published = ("figure1.md", "figure1.png", "fan.png")

    steps: tuple[int, int] = option(
        (2, 256), "the coarse and the fine training step counts"
    )
    seed: int = option(0, "the training seed")
    iterations: int = option(10_000, "training iterations")
    points: int = option(1000, "test points to diagnose")
    out: str | None = option(None, "output folder (default results/figure1)")
    quick: bool = option(False, "200 iterations, 300 points")
    progress: bool = option(True, "no progress bars", flag="--no-progress")

    @property
    def folder(self) -> Path:
        return Path(self.out or "results/figure1")

    def run(self) -> str:
        out = self.folder
        run_figure1(self, log=lambda line: print(line, flush=True))
        return f"wrote {out / 'figure1.png'}, {out / 'fan.png'}, {out / 'figure1.md'}"


def run_figure1(options: Figure1Options, *, log=print) -> dict[int, Measured]:
    """Train (or resume) both models in `options.folder/runs/`, then write
    `figure1.png`, `fan.png`, `figure1.md` and `figure1.json`.

    **Raises:** `ValueError` for equal step counts, `points < 1` or a run folder of
    another configuration, before anything is written.
    """
    steps, points = options.steps, options.points
    iterations = options.iterations
    if options.quick:
        iterations, points = min(iterations, QUICK_ITERATIONS), min(points, 300)
    if steps[0] == steps[1]:
        raise ValueError(f"--steps must be two different step counts, got {list(steps)}")
    if points < 1:
        raise ValueError(f"--points must be an integer >= 1, got {points}")
    out = files.check_folder(options.folder, "--out")
    configs = {n: train_config(n, iterations=iterations, seed=options.seed) for n in steps}
    for n, config in configs.items():  # both, before either trains
        odeness.check_run_folder(out / "runs" / f"euler-n{n:04d}", config)
    with files.folder_lock(out, "--out"):
        return _figure1(out, configs, points, options.progress, log)


def _figure1(out, configs, points, progress, log) -> dict[int, Measured]:
    data = odeness.load_dataset("sphere2")
    x, y = data.x_test[:points], data.y_test[:points]
    numbers, found = {}, {}
    for n, config in configs.items():
        run_dir = out / "runs" / f"euler-n{n:04d}"
        log(f"training Euler with {n} steps ({config.iterations} iterations) in {run_dir}")
        result = odeness.train(config, run_dir=run_dir, data=data, progress=progress)
        numbers[n], found[n] = measure(result.model(0), result.integrator, x, y)
        log(
            f"  n={n}: accuracy {numbers[n].train_accuracy:.3f}, "
            f"{numbers[n].crossing_pairs} crossing pairs, "
            f"{100 * numbers[n].nonpositive_det['steps']:.1f}% folding steps"
        )
    _draw(numbers, found, y, len(x), out)
    records = {str(n): v._asdict() for n, v in numbers.items()}
    write_results(
        out, "figure1", records, _markdown(numbers, next(iter(configs.values())), points)
    )
    return numbers


def _draw(numbers: dict[int, Measured], found: dict[int, Diagnosis], y, points, out):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    shown = min(points, 300)
    for ax, (n, d) in zip(axes[:2], found.items(), strict=True):
        c = d.crossings
        title = (
            f"Euler, {n} training steps ({shown} of {points} test inputs shown)\n"
            f"{c.num_pairs} crossing pairs, "
            f"{100 * c.fraction_involved:.0f}% of inputs cross"
        )
        draw_trajectories(
            ax, d.paths[:, :shown], y[:shown], c.points_among(shown), title=title
        )
    draw_accuracy_vs_steps(
        axes[2],
        {
            f"trained with {n} steps": (
                TEST_STEPS,
                list(v.accuracy_by_euler_steps.values()),
                n,
                v.train_accuracy,
            )
            for n, v in numbers.items()
        },
        title="test accuracy with Euler at other step counts",
    )
    save_figure(fig, out / "figure1.png")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, (n, d) in zip(axes, found.items(), strict=True):
        title = f"Euler {n} steps: Lady Windermere's fan, test input {d.fan_input}\n"
        draw_fan(ax, d.fan, 0, title=title + "(median global error)")
    save_figure(fig, out / "fan.png")


_COLUMNS = {  # of the summary table, after the training steps
    "accuracy (training solver)": lambda v: f"{v.train_accuracy:.3f}",
    "crossing pairs": lambda v: str(v.crossing_pairs),
    "inputs crossing": lambda v: f"{100 * v.fraction_of_inputs_crossing:.1f}%",
    "folding steps": lambda v: f"{100 * v.nonpositive_det['steps']:.2f}%",
    "inputs with a folding step": lambda v: f"{100 * v.nonpositive_det['inputs']:.1f}%",
    "global error": lambda v: f"{v.global_error_mean:.3g}",
    "round trip": lambda v: f"{v.round_trip_error_mean:.3g}",
}


def _markdown(numbers: dict[int, Measured], config: odeness.TrainConfig, points: int):
    body = [[str(n), *(cell(v) for cell in _COLUMNS.values())] for n, v in numbers.items()]
    by_steps = [
        [str(n), *(f"{a:.3f}" for a in v.accuracy_by_euler_steps.values())]
        for n, v in numbers.items()
    ]
    coarse, fine = numbers
    lines = [
        f"# Figure 1: Euler with {coarse} vs {fine} training steps",
        "",
        f"spheres 2-D, seed {config.seeds[0]}, {config.iterations} iterations, {points} "
        "test points.",
        "",
        *markdown_table(["training steps", *_COLUMNS], body),
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
