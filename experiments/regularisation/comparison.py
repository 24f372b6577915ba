"""The comparison of the regularisation study: which cure makes a Neural ODE an ODE, at
what step size, and at what cost. Reads the folders of `experiments.regularisation`'s
studies (those that exist) and writes `comparison.md`, `comparison.json` and
`max_gap.png`.

For each Euler sweep: the critical step size h* (the coarsest training step whose
models, and those of every finer step, keep their accuracy under more accurate solvers;
`critical_step.json`), the mean max gap and the test accuracy with the training solver
at each step count, and the training time per iteration at 16 steps beside that of the
sweep without a regulariser (one process, the seeds together, the same machine). The
cheapest way to an ODE puts each sweep's run at h* next to the step-size adaptation, by
the vector-field evaluations per training iteration (the penalty's own passes and the
adaptation's checks included). The dopri5 tables test the papers' own claim: fewer
evaluations per forward pass at a similar accuracy.
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from experiments.lab.adapted_runs import AdaptedSummary
from experiments.lab.figures import pyplot, save_figure
from experiments.lab.markdown import markdown_table, mean_std, write_results
from experiments.lab.options import AbstractOptions, option
from experiments.ott2021.grid_vs_adaptation import read_sweep_folder
from odeness import files

SIMILAR = 0.01
"""The accuracy drop (absolute) that still counts as "a similar accuracy"."""
TIMED_STEPS = 16
"""The step count at which the sweeps' training time per iteration is compared."""


class SweepEntry(NamedTuple):
    """One sweep folder: its regulariser and what it measured, per grid value (training
    step count or tolerance) and seed."""

    regulariser: str
    """`none`, or the regulariser's name."""
    weight: float | None
    iterations: int
    grid: list[float]
    h_star: float | None
    """Fixed steps: the critical step size; None where no grid value is an ODE."""
    max_gap: dict[float, list[float]]
    accuracy: dict[float, list[float]]
    """Test accuracy with the training solver."""
    nfe: dict[float, list[float]]
    """Evaluations of one forward pass on the test set."""
    penalty_nfe: dict[float, float]
    """The penalty's extra evaluations per forward pass during training."""
    seconds_per_iteration: dict[float, float]
    """Training seconds per iteration, the seeds together."""

    @property
    def label(self) -> str:
        return "none" if self.weight is None else f"{self.regulariser} {self.weight:g}"


def read_sweep(folder: str | Path) -> SweepEntry:
    """The entry of a finished sweep folder (`experiments/sweep.py`).

    **Raises:** `FileNotFoundError` if the sweep is not finished.
    """
    sweep = read_sweep_folder(folder)
    regularise = sweep.base.get("regularise", [])
    if len(regularise) > 1:
        raise ValueError(
            f"{folder} trains with {len(regularise)} regularisers; expected one"
        )
    name, weight = regularise[0] if regularise else ("none", None)
    grid = [float(g) for g in sweep.runs]
    last = {
        float(g): files.read_jsonl(run / "metrics.jsonl")[-1]
        for g, (run, _) in sweep.runs.items()
    }
    measured = {
        field: {g: [getattr(r, field) for r in sweep.own if r.value == g] for g in grid}
        for field in ("max_gap", "accuracy", "nfe")
    }
    return SweepEntry(
        name,
        weight,
        sweep.base["iterations"],
        grid,
        sweep.critical.get("h_star"),
        **measured,
        penalty_nfe={g: float(r.get("penalty_nfe", 0)) for g, r in last.items()},
        seconds_per_iteration={g: r["seconds"] / r["step"] for g, r in last.items()},
    )


Columns = dict[str, Callable[[SweepEntry], str]]
"""A table's columns: heading → its cell of an entry."""


def _rows(entries: list[SweepEntry], columns: Columns) -> list[list[str]]:
    return [[cell(e) for cell in columns.values()] for e in entries]


def _table(entries: list[SweepEntry], columns: Columns) -> list[str]:
    return markdown_table(list(columns), _rows(entries, columns))


def _cell(values: list[float], fmt: str = ".3f") -> str:
    return "–" if not values else mean_std(values, fmt)


def _time(e: SweepEntry, none: SweepEntry, n: float) -> str:
    """The training time per iteration at `n` steps, and its ratio to that of `none`."""
    if n not in e.seconds_per_iteration or n not in none.seconds_per_iteration:
        return "–"
    seconds = e.seconds_per_iteration[n]
    return f"{1e3 * seconds:.2f} ({seconds / none.seconds_per_iteration[n]:.2f}×)"


def search_table(entries: list[SweepEntry]) -> list[str]:
    """Each weight the search tried: accuracy and max gap at its one step count."""
    columns: Columns = {
        "regulariser": lambda e: e.label,
        "test accuracy": lambda e: f"{e.accuracy[e.grid[0]][0]:.3f}",
        "max gap": lambda e: f"{e.max_gap[e.grid[0]][0]:.3f}",
        "ms per iteration (÷ none)": lambda e: _time(e, entries[0], e.grid[0]),
    }
    return _table(entries, columns)


def sweep_tables(entries: list[SweepEntry], threshold: float) -> list[str]:
    """The critical step size, and the max gap and accuracy at each step count."""
    none = entries[0]
    columns: Columns = {
        "regulariser": lambda e: e.label,
        "h*": lambda e: (
            "none on the grid" if e.h_star is None else f"1/{round(1 / e.h_star)}"
        ),
        "lowest test accuracy on the grid": lambda e: (
            f"{min(np.mean(e.accuracy[g]) for g in e.grid):.3f}"
        ),
        f"ms per iteration at {TIMED_STEPS} steps (÷ none)": lambda e: _time(
            e, none, float(TIMED_STEPS)
        ),
    }

    def by_steps(field: str, fmt: str) -> list[str]:
        head = ["regulariser", *(f"n = {int(g)}" for g in none.grid)]
        rows = [
            [e.label, *(_cell(getattr(e, field).get(g, []), fmt) for g in none.grid)]
            for e in entries
        ]
        return markdown_table(head, rows)

    return [
        *_table(entries, columns),
        "",
        f"Max gap (mean ± std over seeds; an ODE where ≤ {threshold:g}):",
        "",
        *by_steps("max_gap", ".2f"),
        "",
        "Test accuracy with the training solver (mean ± std over seeds):",
        "",
        *by_steps("accuracy", ".3f"),
    ]


def cheapest_table(entries: list[SweepEntry], adapted: AdaptedSummary | None) -> list[str]:
    """Each cure at the coarsest step that is an ODE, by evaluations per iteration."""
    body = []
    for e in entries:
        if e.h_star is None:
            body.append([e.label, "no ODE on the grid", "–", "–"])
            continue
        n = float(round(1 / e.h_star))
        extra = e.penalty_nfe[n]
        evaluations = f"{n + extra:g}" + (f" ({n:g} + {extra:g})" if extra else "")
        accuracy = mean_std(e.accuracy[n])
        body.append([f"grid, {e.label}", f"h* = 1/{n:g}", evaluations, accuracy])
    if adapted is not None:
        its = adapted.iterations
        nfe = ((s.train_nfe_total + s.check_nfe_total) / its for s in adapted.seeds)
        h = adapted.mean_std("dt").format(".3g")
        accuracy = adapted.mean_std("test_accuracy").format()
        body.append(
            ["step-size adaptation", f"final h = {h}", mean_std(nfe, ".1f"), accuracy]
        )
    head = ["cure", "step", "evaluations per iteration", "test accuracy"]
    return markdown_table(head, body)


def _claim_columns(entries: list[SweepEntry]) -> Columns:
    """dopri5 at one tolerance against `entries[0]`, without a regulariser."""
    none = entries[0]
    (tol,) = none.grid

    def verdict(e: SweepEntry) -> str:
        if e is none:
            return "–"
        if np.mean(e.nfe[tol]) >= np.mean(none.nfe[tol]):
            return "no"
        similar = np.mean(e.accuracy[tol]) >= np.mean(none.accuracy[tol]) - SIMILAR
        return "yes" if similar else "fewer evaluations, lower accuracy"

    return {
        "regulariser": lambda e: e.label,
        "evaluations per forward": lambda e: _cell(e.nfe[tol], ".1f"),
        "÷ none": lambda e: f"{np.mean(e.nfe[tol]) / np.mean(none.nfe[tol]):.2f}",
        "test accuracy": lambda e: _cell(e.accuracy[tol]),
        "max gap": lambda e: _cell(e.max_gap[tol], ".3f"),
        "fewer evaluations at a similar accuracy": verdict,
    }


def claim_rows(entries: list[SweepEntry]) -> list[list[str]]:
    """dopri5 at one tolerance: evaluations per forward pass, accuracy and whether the
    paper's claim (fewer evaluations at a similar accuracy) holds against `none`."""
    return _rows(entries, _claim_columns(entries))


def claim_table(entries: list[SweepEntry]) -> list[str]:
    return _table(entries, _claim_columns(entries))


def plot_max_gap(entries: list[SweepEntry], path: Path, threshold: float) -> None:
    """The mean max gap against the training step count, one line per regulariser and
    weight (the larger weight solid, the smaller dashed), with the threshold."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {}
    for e in entries:
        colour = colours.setdefault(e.regulariser, f"C{len(colours)}")
        larger = e.weight is None or e.weight == max(
            x.weight for x in entries if x.regulariser == e.regulariser and x.weight
        )
        xs = [g for g in e.grid if e.max_gap[g]]
        ax.plot(
            xs,
            [np.mean(e.max_gap[g]) for g in xs],
            marker="o",
            ms=3,
            color="black" if e.weight is None else colour,
            linestyle="-" if larger else "--",
            label=e.label,
        )
    ax.axhline(
        threshold, color="grey", lw=0.8, linestyle=":", label=f"threshold {threshold:g}"
    )
    ax.set_xscale("log", base=2)
    ax.set(xlabel="training steps n (h = 1/n)", ylabel="max gap (mean over seeds)")
    ax.set_title("Euler on spheres 2-D: max gap by regulariser", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)


def _numbers(e: SweepEntry) -> dict:
    """An entry's means over seeds in `comparison.json`."""
    means = {
        key: {f"{g:g}": float(np.mean(v)) for g, v in getattr(e, key).items() if v}
        for key in ("max_gap", "accuracy", "nfe")
    }
    return {
        "regulariser": e.regulariser,
        "weight": e.weight,
        "h_star": e.h_star,
        **means,
        "seconds_per_iteration": {f"{g:g}": s for g, s in e.seconds_per_iteration.items()},
    }


def compare(results: str | Path, out: str | Path, *, threshold: float = 0.1) -> str:
    """Write `comparison.md`, `comparison.json` and `max_gap.png` into `out` from the
    studies' folders under `results`; return the Markdown."""
    from experiments.regularisation import ADAPT, DOPRI5, EULER, MNIST, SEARCH

    results, out = Path(results), Path(out)
    summary = ADAPT.folder(results) / "summary.json"
    adapted = (
        AdaptedSummary.from_json(files.read_json(summary)) if summary.exists() else None
    )
    sections, numbers, missing = [], {}, []
    parts = (
        ("search", SEARCH, "The weight search: Euler at 8 steps", search_table),
        ("euler", EULER, "The Euler sweeps", lambda e: sweep_tables(e, threshold)),
        ("dopri5", DOPRI5, "dopri5 at one tolerance, spheres 2-D", claim_table),
        ("mnist", MNIST, "dopri5 at one tolerance, MNIST (C = 16)", claim_table),
    )
    for key, studies, title, table in parts:
        entries = []
        for study in studies:
            try:
                entries.append(read_sweep(study.folder(results)))
            except FileNotFoundError:
                missing.append(study.name)
        if not entries or entries[0].weight is not None:  # no baseline: nothing to compare
            continue
        numbers[key] = [_numbers(e) for e in entries]
        if key == "euler":
            sections += [
                "## The cheapest way to an ODE",
                "",
                "Each cure at the coarsest training step that is an ODE: vector-field "
                "evaluations per training iteration (the penalty's extra passes, and the "
                "adaptation's checks, included).",
                "",
                *cheapest_table(entries, adapted),
                "",
            ]
            plot_max_gap(entries, out / "max_gap.png", threshold)
        k = len(entries[0].accuracy[entries[0].grid[0]])
        seeds = "one seed" if k == 1 else f"{k} seeds"
        sections += [
            f"## {title}",
            "",
            f"{seeds}, {entries[0].iterations:,} training iterations.",
            "",
            *table(entries),
            "",
        ]
    if adapted is None:
        missing.append(ADAPT.name)
    lines = [
        "# Regularisers and the critical step size",
        "",
        "Spheres 2-D unless stated; the solver swap of `experiments/sweep.py`; mean ± std "
        f"over seeds. A similar accuracy: at most {SIMILAR:g} below the run without. The "
        "times per iteration are the runs' own (`metrics.jsonl`), trained two at a time "
        "and beside other work: `make bench BENCH=penalty_cost` measures the penalties' "
        "cost alone.",
        "",
        *sections,
    ]
    if missing:
        lines += ["## Not run yet", "", ", ".join(missing), ""]
    text = "\n".join(lines)
    write_results(out, "comparison", numbers, text)
    return text


@dataclasses.dataclass(frozen=True)
class CompareOptions(AbstractOptions):
    """Write the regularisation study's comparison from the folders of its studies.

        python experiments/compare_regularisers.py --out results/regularisation/comparison

    Reads the studies of `experiments.regularisation` that are finished from --results
    (by default the folder above --out) and writes `comparison.md`, `comparison.json`
    and `max_gap.png` into --out; a study not run yet is listed as such. `make
    regularisation` runs it last.
    """

    command = "compare_regularisers"
    published = ("comparison.md", "max_gap.png")

    out: str | None = option(
        None, "output folder (default results/regularisation/comparison)"
    )
    results: str | None = option(
        None, "the studies' folders (default: the folder above --out)"
    )
    threshold: float = option(0.1, "max gap of an ODE")

    def __post_init__(self):
        if not 0 < self.threshold < 1:
            raise ValueError(f"--threshold must be in (0, 1), got {self.threshold}")

    @property
    def folder(self) -> Path:
        return Path(self.out or "results/regularisation/comparison")

    def run(self) -> str:
        out = self.folder
        results = Path(self.results) if self.results else out.parent
        if not results.is_dir():
            raise ValueError(f"--results {results} is not a folder; run the studies first")
        with files.folder_lock(out, "--out"):
            return compare(results, out, threshold=self.threshold)
