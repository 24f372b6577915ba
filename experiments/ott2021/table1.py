"""The paper's table: grid search over step sizes (or tolerances) against adaptation.

For each data set and solver, the **grid search** row is the sweep's run at the critical
step size `h*` (or tolerance `tol*`): the coarsest grid value whose models keep their
accuracy under more accurate solvers, i.e. the cheapest training the grid search found
to be an ODE. Its training cost is that of the run at `h*` alone; the cost of the whole
grid (every grid value trained) is given beside it. The **adapted** row is
`experiments.ott2021.adaptation`'s summary. Both are mean ± std over seeds.
"""

from pathlib import Path

import numpy as np

from odeness import io
from odeness.config import TrainConfig
from odeness.runs import CONFIG, METRICS


def _ms(values, fmt: str) -> str:
    return f"{np.mean(values):{fmt}} ± {np.std(values):{fmt}}"


def _label(config: TrainConfig) -> str:
    # As `experiments.ott2021.sweep` names its run folders.
    if config.steps is not None:
        return f"{config.solver}-n{config.steps:04d}"
    return f"{config.solver}-tol{config.tol:.0e}"


def _training_nfe(run_dir: Path, config: TrainConfig) -> dict[int, int]:
    """Total forward NFE of training, per seed (exact for fixed steps)."""
    rows = io.read_jsonl(run_dir / METRICS)
    if config.steps is not None:
        return {s: config.steps * config.iterations for s in config.seeds}
    if all("train_nfe_total" in r for r in rows):
        return {r["seed"]: r["train_nfe_total"] for r in rows}
    raise ValueError(
        f"{run_dir / METRICS} has no train_nfe_total (written by an older odeness); "
        "re-run the sweep to count adaptive training NFE"
    )


def grid_row(sweep_dir: str | Path) -> dict:
    """The grid-search entry of a sweep folder written by `run_sweep`.

    **Raises:** `FileNotFoundError` if the sweep is not finished.
    """
    folder = Path(sweep_dir)
    for name in ("sweep.json", "results.jsonl", "critical_step.json"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} does not exist; run the sweep first")
    spec = io.read_json(folder / "sweep.json")
    rows = io.read_jsonl(folder / "results.jsonl")
    critical = io.read_json(folder / "critical_step.json")
    fixed = spec["steps"] is not None
    base = {k: v for k, v in spec["base"].items()}
    grid = spec["steps"] if fixed else spec["tols"]
    star = critical["steps_star"] if fixed else critical["tol_star"]
    key = "train_steps" if fixed else "train_tol"
    totals = []
    for g in grid:
        config = TrainConfig.from_dict(
            {**base, "steps": g if fixed else None, "tol": None if fixed else g}
        )
        totals.append(_training_nfe(folder / "runs" / _label(config), config))
    grid_total = [sum(t[s] for t in totals) for s in base["seeds"]]
    out = {
        "dataset": base["dataset"],
        "solver": base["solver"],
        "iterations": base["iterations"],
        "fixed": fixed,
        "star": star,
        "grid": grid,
        "grid_training_nfe": grid_total,
    }
    if star is None:
        return out
    chosen = {
        r["seed"]: r
        for r in rows
        if r[key] == star and r["test_solver"] == base["solver"] and r["factor"] == 1.0
    }
    seeds = sorted(chosen)
    star_total = totals[grid.index(star)]
    out.update(
        test_accuracy=[chosen[s]["train_accuracy"] for s in seeds],
        nfe_per_forward=[chosen[s]["train_nfe"] for s in seeds],
        training_nfe=[star_total[s] for s in seeds],
    )
    return out


def _start(config: TrainConfig) -> str:
    if config.tol is not None:
        return f"tol {config.tol:g}"
    return "Hairer's h0" if config.steps is None else f"h 1/{config.steps}"


def adapted_row(adapt_dir: str | Path) -> dict:
    """The adaptation entry of a run folder written by `run_adaptation`."""
    folder = Path(adapt_dir)
    for name in ("summary.json", CONFIG):
        if not (folder / name).exists():
            raise FileNotFoundError(
                f"{folder / name} does not exist; run experiments/adapt.py first"
            )
    summary = io.read_json(folder / "summary.json")
    config = TrainConfig.from_dict(io.read_json(folder / CONFIG))
    seeds = summary["seeds"]
    fixed = "dt" in seeds[0]
    return {
        "dataset": summary["dataset"],
        "solver": summary["solver"],
        "iterations": summary["iterations"],
        "fixed": fixed,
        "start": _start(config),
        "final": [s["dt"] if fixed else s["tol"] for s in seeds],
        "test_accuracy": [s["test_accuracy"] for s in seeds],
        "nfe_per_forward": [s["nfe_per_forward"] for s in seeds],
        "training_nfe": [s["train_nfe_total"] for s in seeds],
        "check_nfe": [s["check_nfe_total"] for s in seeds],
        "max_gap": [s["max_gap"] for s in seeds],
    }


def table_markdown(entries: list[tuple[dict, list[dict]]]) -> str:
    """The table from `(grid_row, [adapted_row, ...])` pairs: each grid search followed
    by the adapted runs of the same data set and solver (e.g. from several starts)."""
    lines = [
        "# Grid search against step-size / tolerance adaptation",
        "",
        "Mean ± std over seeds. Grid search: the sweep's run at the critical step size "
        "h* (tolerance tol*), the coarsest grid value that stays an ODE under solver "
        "swap; 'whole grid' is the training NFE of every grid run together. Adapted: "
        "one run of the paper's rule (odeness.adapt) from the start given. NFE per "
        "forward: vector-field evaluations of one forward solve at the end of training "
        "(test set); training NFE: forward evaluations summed over all training "
        "iterations (the adapted runs' checks listed separately); '÷ h*': the adapted "
        "run's training NFE over that of the run at h* (tol*).",
        "",
        "| data set | solver | method | iterations | final h / tol | NFE per forward | "
        "test accuracy | training NFE | ÷ h* | checks' NFE |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for grid, adapteds in entries:
        ds, solver = grid["dataset"], grid["solver"]
        name = "h" if grid["fixed"] else "tol"
        star_nfe = None
        if grid["star"] is None:
            lines.append(
                f"| {ds} | {solver} | grid search | {grid['iterations']} | no ODE on "
                f"the grid {grid['grid']} | – | – | – | – | – |"
            )
        else:
            star = f"1/{grid['star']}" if grid["fixed"] else f"{grid['star']:g}"
            star_nfe = float(np.mean(grid["training_nfe"]))
            lines.append(
                f"| {ds} | {solver} | grid search ({name}*) | {grid['iterations']} | "
                f"{star} | {_ms(grid['nfe_per_forward'], '.1f')} | "
                f"{_ms(grid['test_accuracy'], '.3f')} | "
                f"{_ms(grid['training_nfe'], ',.0f')} (whole grid "
                f"{np.mean(grid['grid_training_nfe']):,.0f}) | 1 | – |"
            )
        for adapted in adapteds:
            final = _ms(adapted["final"], ".3g" if adapted["fixed"] else ".2g")
            ratio = (
                "–"
                if star_nfe is None
                else f"{np.mean(adapted['training_nfe']) / star_nfe:.2f}"
            )
            lines.append(
                f"| {adapted['dataset']} | {adapted['solver']} | adapted from "
                f"{adapted['start']} | {adapted['iterations']} | {final} | "
                f"{_ms(adapted['nfe_per_forward'], '.1f')} | "
                f"{_ms(adapted['test_accuracy'], '.3f')} | "
                f"{_ms(adapted['training_nfe'], ',.0f')} | {ratio} | "
                f"{_ms(adapted['check_nfe'], ',.0f')} |"
            )
    return "\n".join(lines) + "\n"
