"""One ODE-ness report for a trained model: swap table, crossings, folding steps, global
error, round trip, and their figures (`experiments/ode_report.py`)."""

from pathlib import Path

import numpy as np
from matplotlib import pyplot as plt

from experiments.plots import (
    draw_accuracy_vs_steps,
    draw_fan,
    draw_trajectories,
    save_figure,
)
from odeness import io
from odeness.data import Dataset
from odeness.diagnostics import (
    count_crossings,
    global_error,
    lady_windermere_fan,
    round_trip_error,
    step_determinants,
    trajectories,
)
from odeness.integrate import Integrator
from odeness.models import ODEClassifier
from odeness.solvers import solver
from odeness.swap import evaluate_solver_swap


def _stats(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "max": float(np.max(values)),
    }


def ode_report(
    model: ODEClassifier,
    integ: Integrator,
    data: Dataset,
    out_dir: str | Path,
    *,
    title: str = "",
    max_points: int = 1000,
    det_points: int | None = None,
    reference_steps: int = 256,
) -> dict:
    """Diagnose `model` (solved with its training integrator `integ`) on the test set.

    Writes `report.md`, `report.json`, `swap.png`, `trajectories.png` and `fan.png` into
    `out_dir`, atomically, and returns the numbers. Crossings are counted in the first
    two coordinates (a projection when d > 2, which the report says). Step determinants
    use the first `det_points` test inputs (one Jacobian of size d × d per input and
    step; by default 200 inputs for small d, down to 10 at d = 900); everything else uses
    the first `max_points`.
    """
    if det_points is None:
        dim = int(np.prod(data.x_test.shape[1:]))
        det_points = int(np.clip(8_000_000 // dim**2, 10, 200))
    if max_points < 2 or det_points < 1:
        raise ValueError(
            f"need max_points >= 2 and det_points >= 1, got {max_points}, {det_points}"
        )
    out = Path(out_dir)
    x, y = data.x_test[:max_points], data.y_test[:max_points]
    flat = x.reshape(len(x), -1)
    dim = flat.shape[1]
    reference = Integrator(solver("rk4"), steps=reference_steps)
    swap = evaluate_solver_swap(model, integ, x, y, reference=reference)
    _, paths = trajectories(model, integ, x)
    paths2 = paths.reshape(paths.shape[0], paths.shape[1], -1)
    crossings = count_crossings(paths2)
    dets = step_determinants(model, integ, x[:det_points])
    gerr = global_error(model, integ, x, reference)
    rt = round_trip_error(model, integ, x, reference)
    worst = int(np.argsort(gerr)[len(gerr) // 2])  # the median global error
    fan = lady_windermere_fan(model, integ, x[worst : worst + 1], reference_steps)
    numbers = {
        "integrator": integ.describe(),
        "test_points": len(x),
        "dim": dim,
        "train_accuracy": swap.train_accuracy,
        "max_gap": swap.max_gap,
        "swap": [r.to_json() for r in swap.rows],
        "crossings": {
            "pairs": crossings.num_pairs,
            "fraction_of_inputs": crossings.fraction_involved,
            "projection": dim > 2,
        },
        "nonpositive_det": {
            "inputs": dets.input_fraction,
            "steps": dets.step_fraction,
            "points": len(dets.sign[0]),
        },
        "global_error": _stats(gerr),
        "round_trip_error": _stats(rt),
        "fan_input": worst,
    }
    # Figures.
    fig, ax = plt.subplots(figsize=(5, 4.2))
    curves = {}
    for name in dict.fromkeys(r.solver for r in swap.rows if r.factor is not None):
        rows = [
            r
            for r in swap.rows
            if r.solver == name and not r.adaptive and r.factor is not None
        ]
        if rows:
            curves[name] = (
                [r.steps for r in rows],
                [r.accuracy for r in rows],
                integ.steps if not integ.adaptive else np.nan,
                swap.train_accuracy,
            )
    if curves:
        draw_accuracy_vs_steps(
            ax, curves, xlabel="test steps", title=f"solver swap ({title})"
        )
        save_figure(fig, out / "swap.png")
    else:
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 5))
    shown = min(len(x), 300)
    projection = " (projection on x0, x1)" if dim > 2 else ""
    draw_trajectories(
        ax,
        paths2[:, :shown],
        y[:shown],
        crossings.points_among(shown),
        title=f"{title}: {crossings.num_pairs} crossing pairs{projection}\n"
        f"({shown} of {len(x)} test inputs shown)",
    )
    save_figure(fig, out / "trajectories.png")
    fig, ax = plt.subplots(figsize=(5, 5))
    draw_fan(
        ax,
        fan,
        0,
        title=f"Lady Windermere's fan, test input {worst} (median global error)"
        f"{projection}",
    )
    save_figure(fig, out / "fan.png")
    io.write_json(out / "report.json", numbers)
    io.atomic_write_text(out / "report.md", _markdown(numbers, title))
    return numbers


def _markdown(n: dict, title: str) -> str:
    desc = n["integrator"]
    train = (
        f"{desc['solver']}, {desc['steps']} steps"
        if "steps" in desc
        else f"{desc['solver']}, rtol {desc['rtol']:g}, atol {desc['atol']:g}"
    )
    lines = [
        f"# ODE-ness report: {title}",
        "",
        f"Training solver: {train}. Test set: {n['test_points']} inputs of dimension "
        f"{n['dim']}.",
        "",
        f"- accuracy with the training solver: {n['train_accuracy']:.4f}",
        f"- max gap under at least as accurate solvers: {n['max_gap']:.4f}",
        f"- crossing trajectory pairs: {n['crossings']['pairs']} "
        f"({100 * n['crossings']['fraction_of_inputs']:.1f}% of inputs involved)"
        + (
            " — in the projection on (x0, x1), which an ODE may show"
            if n["crossings"]["projection"]
            else ""
        ),
        f"- steps with det(∂Φ_h/∂x) ≤ 0: {100 * n['nonpositive_det']['steps']:.2f}% of "
        f"(input, step) pairs; {100 * n['nonpositive_det']['inputs']:.1f}% of inputs "
        f"have one (first {n['nonpositive_det']['points']} inputs)",
        "- global error against RK4 (256 steps): mean {mean:.3g}, median {median:.3g}, "
        "max {max:.3g}".format(**n["global_error"]),
        "- round-trip relative error (back with RK4, 256 steps): mean {mean:.3g}, "
        "median {median:.3g}, max {max:.3g}".format(**n["round_trip_error"]),
        "",
        "## Solver swap",
        "",
        "| test solver | steps / tol | factor | accuracy | NFE | at least as accurate |",
        "|---|---|---|---|---|---|",
    ]
    for r in n["swap"]:
        setting = str(r["steps"]) if "steps" in r else f"{r['rtol']:g}"
        factor = "reference" if r["factor"] is None else f"{r['factor']:g}"
        lines.append(
            f"| {r['solver']} | {setting} | {factor} | {r['accuracy']:.4f} | "
            f"{r['nfe']:.0f} | {'yes' if r['at_least_as_accurate'] else 'no'} |"
        )
    lines += [
        "",
        "![solver swap](swap.png)",
        "",
        "![trajectories](trajectories.png)",
        "",
        f"![fan](fan.png) (test input {n['fan_input']}, the median global error)",
        "",
    ]
    return "\n".join(lines)
