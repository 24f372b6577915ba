"""Figure 1 of Ott et al.: spheres 2-D trained with Euler at 2 and at 256 steps (the
trajectories and their crossings, test accuracy against Euler test steps, and Lady
Windermere's fan; see `Figure1Options`). The fan and the diagnosis are
`experiments.lab.ode_reports.diagnose`, which the ODE-ness report shares.
"""

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
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


def train_config(
    steps: int = 2, *, iterations: int = 10_000, seed: int = 0
) -> odeness.TrainConfig:
    """Spheres 2-D with Euler at `steps` steps, the paper's settings otherwise."""
    return odeness.TrainConfig(
        dataset="sphere2", solver="euler", steps=steps, seeds=(seed,), iterations=iterations
    )


Runs = dict[int, tuple[Path, odeness.TrainConfig]]  # n: (run folder, config)


@contextlib.contextmanager
def euler_runs(
    options, steps: Sequence[int]
) -> Iterator[tuple[Path, odeness.Dataset, Runs]]:
    """`options.folder`, locked, spheres 2-D, and `{n: (run folder, train_config(n))}` of
    each of `steps` (with the options' `iterations`, `quick` and `seed`), every run folder
    checked (`ValueError`) before the lock is taken."""
    out = files.check_folder(options.folder, "--out")
    quick = min(options.iterations, QUICK_ITERATIONS)
    kw = dict(iterations=quick if options.quick else options.iterations, seed=options.seed)
    runs = {n: (out / "runs" / f"euler-n{n:04d}", train_config(n, **kw)) for n in steps}
    for run_dir, config in runs.values():
        odeness.check_run_folder(run_dir, config)
    with files.folder_lock(out, "--out"):
        yield out, odeness.load_dataset("sphere2"), runs


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

    Draws the test trajectories with their crossings, test accuracy against Euler test
    steps (1 ... 2048) and Lady Windermere's fan of one input of each model; writes
    figure1.png, fan.png, figure1.md and figure1.json into --out, the training runs
    into --out/runs/ (they resume if interrupted).
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
        run_figure1(self, log=lambda line: print(line, flush=True))
        return "wrote " + ", ".join(
            str(self.folder / name) for name in ("figure1.png", "fan.png", "figure1.md")
        )


def run_figure1(options: Figure1Options, *, log=print) -> dict[int, Measured]:
    """Train (or resume) both models in `options.folder/runs/`, then write
    `figure1.png`, `fan.png`, `figure1.md` and `figure1.json`.

    **Raises:** `ValueError` for equal step counts, `points < 1` or a run folder of
    another configuration, before anything is written.
    """
    steps, points = options.steps, options.points
    if options.quick:
        points = min(points, 300)
    if steps[0] == steps[1]:
        raise ValueError(f"--steps must be two different step counts, got {list(steps)}")
    if points < 1:
        raise ValueError(f"--points must be an integer >= 1, got {points}")
    numbers, found = {}, {}
    with euler_runs(options, steps) as (out, data, runs):
        x, y = data.x_test[:points], data.y_test[:points]
        for n, (run_dir, config) in runs.items():
            log(
                f"training Euler with {n} steps ({config.iterations} iterations) in "
                f"{run_dir}"
            )
            run = odeness.train(
                config, run_dir=run_dir, data=data, progress=options.progress
            )
            numbers[n], found[n] = measure(run.model(0), run.integrator, x, y)
            log(
                f"  n={n}: accuracy {numbers[n].train_accuracy:.3f}, "
                f"{numbers[n].crossing_pairs} crossing pairs, "
                f"{100 * numbers[n].nonpositive_det['steps']:.1f}% folding steps"
            )
        _draw(numbers, found, y, len(x), out)
        records = {str(n): v._asdict() for n, v in numbers.items()}
        write_results(out, "figure1", records, _markdown(numbers, config, points))
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
    curves = {
        f"trained with {n} steps": (
            TEST_STEPS,
            list(v.accuracy_by_euler_steps.values()),
            n,
            v.train_accuracy,
        )
        for n, v in numbers.items()
    }
    title = "test accuracy with Euler at other step counts"
    draw_accuracy_vs_steps(axes[2], curves, title=title)
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
    return page(
        f"# Figure 1: Euler with {coarse} vs {fine} training steps",
        f"spheres 2-D, seed {config.seeds[0]}, {config.iterations} iterations, {points} "
        "test points.",
        markdown_table(["training steps", *_COLUMNS], body),
        "Test accuracy with Euler at m steps:",
        markdown_table(["training steps", *map(str, TEST_STEPS)], by_steps),
        "![figure 1](figure1.png)",
        "![fan](fan.png)",
    )


def page(*blocks: str | list[str]) -> str:
    """A Markdown page: `blocks` (a list: its lines), a blank line between."""
    return "\n\n".join(b if isinstance(b, str) else "\n".join(b) for b in blocks) + "\n"
