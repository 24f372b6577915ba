"""The ODE-ness report of a trained model (swap table, crossings, folding steps, global
error, round trip, and their figures), and the diagnosis it shares with Figure 1."""

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

import odeness
from experiments.lab.axes import axis
from experiments.lab.figures import (
    draw_accuracy_vs_steps,
    draw_failing,
    draw_fan,
    draw_trajectories,
    pyplot,
    save_figure,
)
from experiments.lab.markdown import markdown_table, write_results
from experiments.lab.options import AbstractOptions, option
from odeness import diagnostics, files


class Diagnosis(NamedTuple):
    """Why a model is (not) an ODE on some inputs, as `diagnose` measured it: the
    numerical trajectories `(points, inputs, d)` (flattened states), their crossings in
    the first two coordinates (a projection when d > 2), the step determinants of the
    first `det_points` inputs, the global and round-trip errors, and the fan of input
    `fan_input` (the median global error)."""

    paths: np.ndarray
    crossings: diagnostics.Crossings
    determinants: diagnostics.StepDeterminants
    global_error: np.ndarray
    round_trip_error: np.ndarray
    fan_input: int
    fan: diagnostics.Fan


def diagnose(
    model: odeness.AbstractODEModel,
    integ: odeness.Integrator,
    x: np.ndarray,
    *,
    det_points: int,
    reference_steps: int = 256,
) -> Diagnosis:
    """Trajectories and their crossings, step determinants (first `det_points` inputs),
    global error and round trip against RK4 with `reference_steps` steps, and Lady
    Windermere's fan of the input with the median global error."""
    reference = odeness.Integrator(odeness.solver("rk4"), steps=reference_steps)
    _, paths = diagnostics.trajectories(model, integ, x)
    paths = paths.reshape(paths.shape[0], paths.shape[1], -1)
    gerr = diagnostics.global_error(model, integ, x, reference)
    fan_input = int(np.argsort(gerr)[len(gerr) // 2])  # the median global error
    return Diagnosis(
        paths,
        diagnostics.count_crossings(paths),
        diagnostics.step_determinants(model, integ, x[:det_points]),
        gerr,
        diagnostics.round_trip_error(model, integ, x, reference),
        fan_input,
        diagnostics.lady_windermere_fan(
            model, integ, x[fan_input : fan_input + 1], reference_steps
        ),
    )


def _error_stats(values: np.ndarray) -> dict[str, float]:
    stats = {"mean": np.mean, "median": np.median, "max": np.max}
    return {name: float(stat(values)) for name, stat in stats.items()}


def _format_stats(values: np.ndarray) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in _error_stats(values).items())


class Report(NamedTuple):
    """What `ode_report` measured on one trained model: the training integrator, its
    swap, the test inputs' `Diagnosis`, self-convergence (None for adaptive training: it
    needs a grid), convergence against the targets, and whether the inputs are 2-D
    points (then `failing.png` shows the failing ones)."""

    integrator: odeness.Integrator
    swap: odeness.SwapResult
    diagnosis: Diagnosis
    self_convergence: odeness.SelfConvergence | None
    convergence: odeness.ConvergenceTest
    planar_inputs: bool
    threshold: float = 0.1

    @property
    def test_points(self) -> int:
        return self.diagnosis.paths.shape[1]

    @property
    def dim(self) -> int:
        """The state's dimension, flattened."""
        return self.diagnosis.paths.shape[2]

    @property
    def projection(self) -> bool:
        """Whether crossings were counted in a 2-D projection of the state."""
        return self.dim > 2

    def to_json(self) -> dict:
        swap, d, t, sc = self.swap, self.diagnosis, self.threshold, self.self_convergence
        return {
            "integrator": self.integrator.setting.to_json(),
            "test_points": self.test_points,
            "dim": self.dim,
            "train_accuracy": swap.train_score,
            "max_gap": swap.max_gap,
            "swap": [r.to_json() for r in swap.rows],
            "crossings": {
                "pairs": d.crossings.num_pairs,
                "fraction_of_inputs": d.crossings.fraction_involved,
                "projection": self.projection,
            },
            "nonpositive_det": {
                "inputs": d.determinants.input_fraction,
                "steps": d.determinants.step_fraction,
                "points": len(d.determinants.sign[0]),
            },
            "global_error": _error_stats(d.global_error),
            "round_trip_error": _error_stats(d.round_trip_error),
            "fan_input": d.fan_input,
            "verdicts": {
                "threshold": t,
                "swap": swap.is_ode(t),
                "failing_fraction": swap.failing_fraction(t),
                "failing": swap.failing(t).tolist(),
                "self_convergence": None if sc is None else sc._asdict(),
                "convergence_test": self.convergence._asdict(),
            },
        }


def ode_report(
    model: odeness.AbstractODEModel,
    integ: odeness.Integrator,
    data: odeness.Dataset,
    out_dir: str | Path,
    *,
    title: str = "",
    max_points: int = 1000,
    det_points: int | None = None,
    reference_steps: int = 256,
) -> Report:
    """Diagnose `model` (solved with its training integrator `integ`) on the first
    `max_points` test inputs; step determinants on the first `det_points` (one d × d
    Jacobian per input and step; by default 200 inputs for small d, down to 10 at
    d = 900). Writes `report.md` (ending with the three verdicts), `report.json`,
    `swap.png`, `trajectories.png`, `fan.png` and, for 2-D inputs, `failing.png` into
    `out_dir`, atomically."""
    if det_points is None:
        dim = int(np.prod(data.x_test.shape[1:]))
        det_points = int(np.clip(8_000_000 // dim**2, 10, 200))
    if max_points < 2 or det_points < 1:
        raise ValueError(
            f"need max_points >= 2 and det_points >= 1, got {max_points}, {det_points}"
        )
    out = Path(out_dir)
    x, y = data.x_test[:max_points], data.y_test[:max_points]
    reference = odeness.Integrator(odeness.solver("rk4"), steps=reference_steps)
    grid = isinstance(integ.control, odeness.AbstractGrid)
    numbers = Report(
        integ,
        odeness.evaluate_solver_swap(model, integ, x, y, reference=reference),
        diagnose(model, integ, x, det_points=det_points, reference_steps=reference_steps),
        odeness.self_convergence(model, integ, x) if grid else None,
        odeness.convergence_test(model, integ, x, y),
        x.ndim == 2 and x.shape[1] == 2,
    )
    _draw(numbers, x, y, out, title)
    write_results(out, "report", numbers.to_json(), _markdown(numbers, title))
    return numbers


def _draw(n: Report, x, y, out: Path, title: str) -> None:
    """The report's figures; `swap.png` only if the swap tests step counts."""
    plt, found, shown = pyplot(), n.diagnosis, min(n.test_points, 300)
    grid = isinstance(n.integrator.control, odeness.AbstractGrid)
    star = (n.integrator.steps if grid else np.nan, n.swap.train_score)
    curves: dict[str, tuple] = {}  # per test solver: its steps and accuracies, the star
    for r in n.swap.rows:
        if r.factor is not None and isinstance(control := r.setting.control, odeness.Steps):
            steps, scores, *_ = curves.setdefault(r.setting.solver, ([], [], *star))
            steps.append(control.n)
            scores.append(r.score)
    if curves:
        fig, ax = plt.subplots(figsize=(5, 4.2))
        draw_accuracy_vs_steps(
            ax, curves, xlabel="test steps", title=f"solver swap ({title})"
        )
        save_figure(fig, out / "swap.png")
    projection = " (projection on x0, x1)" if n.projection else ""
    fig, ax = plt.subplots(figsize=(5, 5))
    draw_trajectories(
        ax,
        found.paths[:, :shown],
        y[:shown],
        found.crossings.points_among(shown),
        title=f"{title}: {found.crossings.num_pairs} crossing pairs{projection}\n"
        f"({shown} of {n.test_points} test inputs shown)",
    )
    save_figure(fig, out / "trajectories.png")
    fig, ax = plt.subplots(figsize=(5, 5))
    fan_title = f"Lady Windermere's fan, test input {found.fan_input} (median global error)"
    draw_fan(ax, found.fan, 0, title=fan_title + projection)
    save_figure(fig, out / "fan.png")
    if n.planar_inputs:
        failing = n.swap.failing(n.threshold)
        fig, ax = plt.subplots(figsize=(5, 5))
        draw_failing(
            ax,
            np.asarray(x),
            np.asarray(y),
            failing,
            title=f"{title}: {len(failing)} of {len(x)} test inputs change their "
            "prediction\nunder a solver at least as accurate",
        )
        save_figure(fig, out / "failing.png")


def _step_cell(control: odeness.AbstractControl) -> str:
    return axis(control).cell(axis(control).value(control))


_SWAP_COLUMNS = (
    ("test solver", lambda r: r.setting.solver),
    ("steps / tol", lambda r: _step_cell(r.setting.control)),
    ("factor", lambda r: "reference" if r.factor is None else f"{r.factor:g}"),
    ("accuracy", lambda r: f"{r.score:.4f}"),
    ("NFE", lambda r: f"{r.nfe:.0f}"),
    ("at least as accurate", lambda r: _yes(r.at_least_as_accurate)),
)
"""The swap table's columns: their titles and cells of a `odeness.SwapRow`."""


def _markdown(n: Report, title: str) -> str:
    setting, d = n.integrator.setting, n.diagnosis
    train = f"{setting.solver}, {axis(setting.control).words(setting.control)}"
    swap = [[cell(r) for _, cell in _SWAP_COLUMNS] for r in n.swap.rows]
    note = " — in the projection on (x0, x1), which an ODE may show" if n.projection else ""
    lines = [
        f"# ODE-ness report: {title}",
        "",
        f"Training solver: {train}. Test set: {n.test_points} inputs of dimension {n.dim}.",
        "",
        f"- accuracy with the training solver: {n.swap.train_score:.4f}",
        f"- max gap under at least as accurate solvers: {n.swap.max_gap:.4f}",
        f"- crossing trajectory pairs: {d.crossings.num_pairs} "
        f"({100 * d.crossings.fraction_involved:.1f}% of inputs involved){note}",
        f"- steps with det(∂Φ_h/∂x) ≤ 0: {100 * d.determinants.step_fraction:.2f}% of "
        f"(input, step) pairs; {100 * d.determinants.input_fraction:.1f}% of inputs "
        f"have one (first {len(d.determinants.sign[0])} inputs)",
        f"- global error against RK4 (256 steps): {_format_stats(d.global_error)}",
        f"- round-trip relative error (back with RK4, 256 steps): "
        f"{_format_stats(d.round_trip_error)}",
        "",
        "## Solver swap",
        "",
        *markdown_table([head for head, _ in _SWAP_COLUMNS], swap),
        "",
        "![solver swap](swap.png)",
        "",
        "![trajectories](trajectories.png)",
        "",
        f"![fan](fan.png) (test input {d.fan_input}, the median global error)",
        "",
        *_verdicts(n),
    ]
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _listed(fmt: str, *columns: Sequence) -> str:
    """`fmt` filled with each row of `columns`, the rows joined by commas."""
    return ", ".join(fmt.format(*row) for row in zip(*columns, strict=True))


def _verdict(test: str, failure: str | None, outcome: str) -> str:
    """One verdict's line: `outcome`, or "no" and why the test failed."""
    return f"- {test}: **no** ({failure})" if failure is not None else f"- {test} {outcome}"


def _verdicts(n: Report) -> list[str]:
    """The three verdicts: the swap's threshold, self-convergence and convergence
    against the targets, and the inputs that change their prediction."""
    swap, sc, ct = n.swap, n.self_convergence, n.convergence
    lines = [
        "## Three verdicts",
        "",
        f"- threshold (the swap's max gap ≤ {n.threshold:g}): "
        f"**{_yes(swap.is_ode(n.threshold))}** (max gap {swap.max_gap:.4f}); "
        f"{100 * swap.failing_fraction(n.threshold):.1f}% of the test inputs change "
        "their prediction under a solver at least as accurate",
    ]
    if sc is None:
        lines.append("- self-convergence: needs fixed-step training (not run)")
    else:
        outcome = (
            f"(asymptotic regime at order {sc.expected_order}): **{_yes(sc.asymptotic)}**; "
            f"relative errors against {sc.reference} at "
            + _listed("{} steps {:.3g}", sc.steps, sc.errors)
            + "; observed orders "
            + _listed("{:.2f}", sc.orders)
        )
        lines.append(_verdict("self-convergence", sc.failure, outcome))
    outcome = (
        f"(no drop > {ct.tolerance:g} as the solver is refined): "
        f"**{_yes(ct.converges)}**; {ct.metric} "
        + _listed("{} {:.4f}", ct.settings, ct.scores)
        + f"; trend {ct.trend:+.4f} per refinement by 2"
    )
    lines.append(_verdict("convergence against the targets", ct.failure, outcome))
    if n.planar_inputs:
        lines += ["", "![failing inputs](failing.png)"]
    return [*lines, ""]


@dataclasses.dataclass(frozen=True)
class ReportOptions(AbstractOptions):
    """Write an ODE-ness report for a trained run folder.

        python experiments/ode_report.py results/sweep-euler/runs/euler-n0002

    Loads the run's checkpoint and writes report.md (swap table, crossings, folding steps,
    global error, round trip) with its figures into RUN_FOLDER/report/ (or --out).
    """

    command = "ode_report"
    published = ("report.md", "swap.png", "trajectories.png", "fan.png", "failing.png")

    run_dir: str | None = option(
        None, "a run folder written by odeness.train", positional=True, under_results=True
    )
    seed_index: int = option(0, "which of the run's seeds (position in config.seeds)")
    points: int = option(1000, "test inputs to diagnose")
    det_points: int | None = option(
        None,
        "test inputs whose step Jacobians are computed (default: 200 for small d, down "
        "to 10 at d = 900)",
    )
    out: str | None = option(None, "output folder (default RUN_DIR/report)")

    def under(self, results: Path, name: str):
        resolved = super().under(results, name)
        return resolved if self.out is not None else dataclasses.replace(resolved, out=None)

    @property
    def folder(self) -> Path:
        return Path(self.out) if self.out else Path(self.run_dir or ".") / "report"

    def run(self) -> str:
        if self.run_dir is None:
            raise ValueError("give the run folder to report on (written by odeness.train)")
        run = odeness.load_run(self.run_dir)
        seeds = run.config.seeds
        if not 0 <= self.seed_index < len(seeds):
            raise ValueError(
                f"--seed-index must be in 0..{len(seeds) - 1} for seeds {seeds}, got "
                f"{self.seed_index}"
            )
        data = run.config.load_dataset()
        out = files.check_folder(self.folder, "--out")
        if self.points < 1:
            raise ValueError(f"--points must be an integer >= 1, got {self.points}")
        config, seed = run.config, seeds[self.seed_index]
        title = f"{config.dataset}, {config.solver} {config.label}, seed {seed}"
        with files.folder_lock(out, "--out"):
            numbers = ode_report(
                run.model(self.seed_index),
                run.integrator,
                data,
                out,
                title=title,
                max_points=self.points,
                det_points=self.det_points,
            )
        d = numbers.diagnosis
        return (
            f"wrote {out / 'report.md'}: accuracy {numbers.swap.train_score:.3f}, "
            f"max gap {numbers.swap.max_gap:.3f}, {d.crossings.num_pairs} crossing "
            f"pairs, {100 * d.determinants.step_fraction:.1f}% folding steps"
        )
