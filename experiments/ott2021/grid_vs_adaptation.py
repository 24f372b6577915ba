"""The paper's Table 1: grid search over step sizes (or tolerances), the sweep's run at
the critical `h*` (`tol*`), against adaptation (`run_adaptation`'s summaries).
"""

import dataclasses
from pathlib import Path
from typing import NamedTuple

import numpy as np

import odeness
from experiments.lab.adapted_runs import AdaptedSummary
from experiments.lab.axes import Axis, of_spec
from experiments.lab.markdown import markdown_table, mean_std
from experiments.lab.options import AbstractOptions, option
from experiments.lab.sweep_runs import SweepRow, read_rows, run_label
from odeness import files

CONFIG, METRICS = "config.json", "metrics.jsonl"  # of a run folder (`odeness.train`)


class FinishedSweep(NamedTuple):
    """A finished sweep folder (`experiments/sweep.py`): `sweep.json`'s training
    configuration (`base`), `critical_step.json`, the rows tested with the training
    solver at × 1 (`own`), and each grid value's run folder and configuration."""

    along: Axis
    base: dict
    critical: dict
    own: list[SweepRow]
    runs: dict[float, tuple[Path, odeness.TrainConfig]]


def read_sweep_folder(folder: str | Path) -> FinishedSweep:
    """**Raises:** `FileNotFoundError` if the sweep in `folder` is not finished."""
    folder = Path(folder)
    for name in ("sweep.json", "results.jsonl", "critical_step.json"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} does not exist; run the sweep first")
    spec = files.read_json(folder / "sweep.json")
    along, base = of_spec(spec), spec["base"]
    config = odeness.TrainConfig.from_dict({**base, "steps": 1, "tol": None})
    trained = {g: config.controlled(along.control(g)) for g in spec[along.key]}
    runs = {g: (folder / "runs" / run_label(c), c) for g, c in trained.items()}
    rows = read_rows(folder / "results.jsonl")
    own = [
        r for r in rows if r.test.setting.solver == base["solver"] and r.test.factor == 1.0
    ]
    critical = files.read_json(folder / "critical_step.json")
    return FinishedSweep(along, base, critical, own, runs)


def _training_nfe(run_dir: Path, config: odeness.TrainConfig) -> dict[int, int]:
    """Total forward NFE of training, per seed (exact for fixed steps)."""
    rows = files.read_jsonl(run_dir / METRICS)
    if isinstance(config.control, odeness.Steps):
        return {s: config.control.n * config.iterations for s in config.seeds}
    if all("train_nfe_total" in r for r in rows):
        return {r["seed"]: r["train_nfe_total"] for r in rows}
    raise ValueError(
        f"{run_dir / METRICS} has no train_nfe_total (written by an older odeness); "
        "re-run the sweep to count adaptive training NFE"
    )


class GridEntry(NamedTuple):
    """The grid search of one sweep folder: `star` (`steps*` or `tol*`, None if no grid
    value is an ODE), the whole grid's training NFE per seed, and the run at `star` per
    seed (empty lists without a `star`)."""

    dataset: str
    solver: str
    iterations: int
    along: Axis
    star: float | None
    grid: list[float]
    grid_training_nfe: list[int]
    test_accuracy: list[float]
    nfe_per_forward: list[float]
    training_nfe: list[int]


def grid_row(sweep_dir: str | Path) -> GridEntry:
    """The grid-search entry of a finished sweep folder (`read_sweep_folder`)."""
    sweep = read_sweep_folder(sweep_dir)
    base, along = sweep.base, sweep.along
    star = sweep.critical[along.star_key]
    totals = {g: _training_nfe(*run) for g, run in sweep.runs.items()}
    chosen = {r.seed: r for r in sweep.own if r.value == star}  # none without a star
    seeds = sorted(chosen)
    return GridEntry(
        base["dataset"],
        base["solver"],
        base["iterations"],
        along,
        star,
        list(sweep.runs),
        [sum(t[s] for t in totals.values()) for s in base["seeds"]],
        [chosen[s].accuracy for s in seeds],
        [chosen[s].nfe for s in seeds],
        [totals[star][s] for s in seeds],
    )


def _start(config: odeness.TrainConfig) -> str:
    control = config.control
    if isinstance(control, odeness.Tolerances):
        return f"tol {control.size():g}"
    return "Hairer's h0" if control is None else f"h 1/{config.steps}"


class AdaptedEntry(NamedTuple):
    """One adapted run of the table: where it started, and its summary."""

    start: str
    summary: AdaptedSummary


def adapted_row(adapt_dir: str | Path) -> AdaptedEntry:
    """The adaptation entry of a run folder written by `run_adaptation`."""
    folder = Path(adapt_dir)
    for name in ("summary.json", CONFIG):
        if not (folder / name).exists():
            raise FileNotFoundError(
                f"{folder / name} does not exist; run experiments/adapt.py first"
            )
    summary = AdaptedSummary.from_json(files.read_json(folder / "summary.json"))
    config = odeness.TrainConfig.from_dict(files.read_json(folder / CONFIG))
    return AdaptedEntry(_start(config), summary)


def _grid_cells(grid: GridEntry) -> list[str]:
    first = [grid.dataset, grid.solver]
    if grid.star is None:
        no_ode = f"no ODE on the grid {grid.grid}"
        return [*first, "grid search", str(grid.iterations), no_ode, *["–"] * 6]
    whole = f"(whole grid {np.mean(grid.grid_training_nfe):,.0f})"
    return [
        *first,
        f"grid search ({grid.along.star_symbol}*)",
        str(grid.iterations),
        grid.along.star_cell(grid.star),
        mean_std(grid.nfe_per_forward, ".1f"),
        mean_std(grid.test_accuracy, ".3f"),
        f"{mean_std(grid.training_nfe, ',.0f')} {whole}",
        mean_std((t / grid.iterations for t in grid.training_nfe), ".1f"),
        "1",
        "–",
    ]


def _adapted_cells(entry: AdaptedEntry, star_nfe: float | None) -> list[str]:
    summary, ms = entry.summary, entry.summary.mean_std
    checked = (s.train_nfe_total + s.check_nfe_total for s in summary.seeds)
    return [
        summary.dataset,
        summary.solver,
        f"adapted from {entry.start}",
        str(summary.iterations),
        ms(summary.along.rule_value).format(summary.along.brief),
        ms("nfe_per_forward").format(".1f"),
        ms("test_accuracy").format(".3f"),
        ms("train_nfe_total").format(",.0f"),
        mean_std((n / summary.iterations for n in checked), ".1f"),
        "–" if star_nfe is None else f"{ms('train_nfe_total').mean / star_nfe:.2f}",
        ms("check_nfe_total").format(",.0f"),
    ]


def table_markdown(entries: list[tuple[GridEntry, list[AdaptedEntry]]]) -> str:
    """The table from `(grid_row, [adapted_row, ...])` pairs: each grid search followed
    by the adapted runs of the same data set and solver (e.g. from several starts)."""
    head = (
        "data set | solver | method | iterations | final h / tol | NFE per forward | "
        "test accuracy | training NFE | NFE per iteration, checks included | ÷ h* | "
        "checks' NFE"
    ).split(" | ")
    body = []
    for grid, adapteds in entries:
        star_nfe = None if grid.star is None else float(np.mean(grid.training_nfe))
        body += [_grid_cells(grid), *(_adapted_cells(a, star_nfe) for a in adapteds)]
    lines = [
        "# Grid search against step-size / tolerance adaptation",
        "",
        "Mean ± std over seeds. Grid search: the sweep's run at the critical step size "
        "h* (tolerance tol*), the coarsest grid value that stays an ODE under solver "
        "swap; 'whole grid' is the training NFE of every grid run together. Adapted: "
        "one run of the paper's rule (odeness.StepSizeRule, odeness.ToleranceRule) "
        "from the start given. NFE per forward: vector-field evaluations of one forward "
        "solve at the end of training (test set); training NFE: forward evaluations "
        "summed over all training iterations (the adapted runs' checks listed "
        "separately); NFE per iteration, checks included: every forward evaluation over "
        "the course of training (the training solves and the adaptation's checks) "
        "divided by the iterations, as the paper's Table 1 counts it; '÷ h*': the "
        "adapted run's training NFE over that of the run at h* (tol*).",
        "",
        *markdown_table(head, body),
    ]
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class TableOptions(AbstractOptions):
    """Write the grid-search-against-adaptation table from finished sweeps and adapted runs.

        python experiments/table1.py \\
            --row results/sweep-euler results/adapt-sphere2-euler \\
            --row results/sweep-dopri5 results/adapt-sphere2-dopri5 --out results/table1.md

    Each --row gives a sweep folder (`experiments/sweep.py`) and one or more adapted run
    folders (`experiments/adapt.py`, e.g. from several starting tolerances) of the same
    data set and solver. `make table1` runs them all.
    """

    command = "table1"
    published = ("",)  # the table itself

    row: tuple[tuple[str, ...], ...] = option(
        (), "SWEEP_DIR ADAPT_DIR [ADAPT_DIR ...]", metavar="DIR", under_results=True
    )
    out: str | None = option(None, "the table's file (default results/table1.md)")

    @property
    def folder(self) -> Path:
        return Path(self.out or "results/table1.md")

    def run(self) -> str:
        if not self.row:
            raise ValueError("give at least one --row SWEEP_DIR ADAPT_DIR [ADAPT_DIR ...]")
        entries = []
        for sweep_dir, *adapt_dirs in self.row:
            if not adapt_dirs:
                raise ValueError(
                    f"--row {sweep_dir} names no adapted run; expected SWEEP_DIR "
                    "ADAPT_DIR [ADAPT_DIR ...]"
                )
            grid = grid_row(sweep_dir)
            adapteds = [adapted_row(d) for d in adapt_dirs]
            for adapt_dir, (_, adapted) in zip(adapt_dirs, adapteds, strict=True):
                if (grid.dataset, grid.solver) != (adapted.dataset, adapted.solver):
                    raise ValueError(
                        f"{sweep_dir} ({grid.dataset}, {grid.solver}) and {adapt_dir} "
                        f"({adapted.dataset}, {adapted.solver}) are not the same task"
                    )
            entries.append((grid, adapteds))
        out = self.folder
        if out.is_dir():
            raise ValueError(f"--out {out} is a folder; give the path of a file")
        files.check_folder(out.parent, "the folder of --out")
        text = table_markdown(entries)
        files.atomic_write_text(out, text)
        return text
