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
from pathlib import Path
from typing import NamedTuple

import numpy as np

import odeness
from experiments.lab.adapted_runs import AdaptedSummary
from experiments.lab.axes import of_spec
from experiments.lab.figures import pyplot, save_figure
from experiments.lab.markdown import markdown_table, mean_std, write_results
from experiments.lab.options import AbstractOptions, option
from experiments.lab.sweep_runs import read_rows, run_label
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
    folder = Path(folder)
    for name in ("sweep.json", "results.jsonl", "critical_step.json"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} does not exist; run the sweep first")
    spec = files.read_json(folder / "sweep.json")
    base = spec["base"]
    along = of_spec(spec)
    grid = [float(g) for g in spec[along.key]]
    regularise = base.get("regularise", [])
    if len(regularise) > 1:
        raise ValueError(
            f"{folder} trains with {len(regularise)} regularisers; expected one"
        )
    name, weight = regularise[0] if regularise else ("none", None)
    own = [
        r
        for r in read_rows(folder / "results.jsonl")
        if r.test.setting.solver == base["solver"] and r.test.factor == 1.0
    ]
    by_value = {g: [r for r in own if r.value == g] for g in grid}
    penalty_nfe, seconds = {}, {}
    config = odeness.TrainConfig.from_dict({**base, "steps": 1, "tol": None})
    for g in grid:
        trained = config.controlled(along.control(g))
        last = files.read_jsonl(folder / "runs" / run_label(trained) / "metrics.jsonl")[-1]
        penalty_nfe[g] = float(last.get("penalty_nfe", 0))
        seconds[g] = last["seconds"] / last["step"]
    critical = files.read_json(folder / "critical_step.json")
    return SweepEntry(
        name,
        weight,
        base["iterations"],
        grid,
        critical.get("h_star"),
        {g: [r.max_gap for r in rows] for g, rows in by_value.items()},
        {g: [r.accuracy for r in rows] for g, rows in by_value.items()},
        {g: [r.nfe for r in rows] for g, rows in by_value.items()},
        penalty_nfe,
        seconds,
    )


def _finished(studies, results: Path) -> tuple[list[SweepEntry], list[str]]:
    """The entries of the studies' folders that are finished, and the names of the rest."""
    entries, missing = [], []
    for study in studies:
        try:
            entries.append(read_sweep(study.folder(results)))
        except FileNotFoundError:
            missing.append(study.name)
    return entries, missing


def _seeds(k: int) -> str:
    return "one seed" if k == 1 else f"{k} seeds"


def _iterations(e: "SweepEntry") -> str:
    return f"{e.iterations:,} training iterations"


def _steps(n: float) -> str:
    return f"1/{int(n)}"


def _cell(values: list[float], fmt: str = ".3f") -> str:
    return "–" if not values else mean_std(values, fmt)


def search_table(entries: list[SweepEntry]) -> list[str]:
    """Each weight the search tried: accuracy and max gap at its one step count."""
    body = []
    for e in entries:
        (n,) = e.grid
        ratio = e.seconds_per_iteration[n] / entries[0].seconds_per_iteration[n]
        body.append([
            e.label,
            f"{e.accuracy[n][0]:.3f}",
            f"{e.max_gap[n][0]:.3f}",
            f"{1e3 * e.seconds_per_iteration[n]:.2f} ({ratio:.2f}×)",
        ])  # fmt: skip
    head = ["regulariser", "test accuracy", "max gap", "ms per iteration (÷ none)"]
    return markdown_table(head, body)


def sweep_tables(entries: list[SweepEntry], threshold: float) -> list[str]:
    """The critical step size, and the max gap and accuracy at each step count."""
    none = entries[0]
    body = []
    for e in entries:
        star = "none on the grid" if e.h_star is None else _steps(round(1 / e.h_star))
        n = float(TIMED_STEPS)
        if n in e.seconds_per_iteration and n in none.seconds_per_iteration:
            ms = 1e3 * e.seconds_per_iteration[n]
            time = f"{ms:.2f} ({ms / (1e3 * none.seconds_per_iteration[n]):.2f}×)"
        else:
            time = "–"
        worst = min(np.mean(e.accuracy[g]) for g in e.grid)
        body.append([e.label, star, f"{worst:.3f}", time])
    lines = markdown_table(
        ["regulariser", "h*", "lowest test accuracy on the grid",
         f"ms per iteration at {TIMED_STEPS} steps (÷ none)"],
        body,
    )  # fmt: skip
    grid = none.grid
    head = ["regulariser", *(f"n = {int(g)}" for g in grid)]
    gaps = [[e.label, *(_cell(e.max_gap.get(g, []), ".2f") for g in grid)] for e in entries]
    accs = [
        [e.label, *(_cell(e.accuracy.get(g, []), ".3f") for g in grid)] for e in entries
    ]
    return [
        *lines,
        "",
        f"Max gap (mean ± std over seeds; an ODE where ≤ {threshold:g}):",
        "",
        *markdown_table(head, gaps),
        "",
        "Test accuracy with the training solver (mean ± std over seeds):",
        "",
        *markdown_table(head, accs),
    ]


def cheapest_table(entries: list[SweepEntry], adapted: AdaptedSummary | None) -> list[str]:
    """Each cure at the coarsest step that is an ODE, by evaluations per iteration."""
    body = []
    for e in entries:
        if e.h_star is None:
            body.append([e.label, "no ODE on the grid", "–", "–"])
            continue
        n = float(round(1 / e.h_star))
        per_iteration = n + e.penalty_nfe[n]
        extra = e.penalty_nfe[n]
        evaluations = f"{per_iteration:g}" + (f" ({n:g} + {extra:g})" if extra else "")
        body.append([f"grid, {e.label}", f"h* = {_steps(n)}", evaluations,
                     mean_std(e.accuracy[n])])  # fmt: skip
    if adapted is not None:
        seeds, its = adapted.seeds, adapted.iterations
        body.append([
            "step-size adaptation",
            f"final h = {mean_std((s.final['dt'] for s in seeds), '.3g')}",
            mean_std(((s.train_nfe_total + s.check_nfe_total) / its for s in seeds), ".1f"),
            mean_std(s.test_accuracy for s in seeds),
        ])  # fmt: skip
    head = ["cure", "step", "evaluations per iteration", "test accuracy"]
    return markdown_table(head, body)


def claim_rows(entries: list[SweepEntry]) -> list[list[str]]:
    """dopri5 at one tolerance: evaluations per forward pass, accuracy and whether the
    paper's claim (fewer evaluations at a similar accuracy) holds against `none`."""
    none = entries[0]
    (tol,) = none.grid
    base_nfe, base_acc = np.mean(none.nfe[tol]), np.mean(none.accuracy[tol])
    body = []
    for e in entries:
        nfe, acc = np.mean(e.nfe[tol]), np.mean(e.accuracy[tol])
        if e is none:
            verdict = "–"
        elif nfe < base_nfe and acc >= base_acc - SIMILAR:
            verdict = "yes"
        elif nfe < base_nfe:
            verdict = "fewer evaluations, lower accuracy"
        else:
            verdict = "no"
        body.append([
            e.label,
            _cell(e.nfe[tol], ".1f"),
            f"{nfe / base_nfe:.2f}",
            _cell(e.accuracy[tol]),
            _cell(e.max_gap[tol], ".3f"),
            verdict,
        ])  # fmt: skip
    return body


def claim_table(entries: list[SweepEntry]) -> list[str]:
    head = ["regulariser", "evaluations per forward", "÷ none", "test accuracy",
            "max gap", "fewer evaluations at a similar accuracy"]  # fmt: skip
    return markdown_table(head, claim_rows(entries))


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
    ax.set_xlabel("training steps n (h = 1/n)")
    ax.set_ylabel("max gap (mean over seeds)")
    ax.set_title("Euler on spheres 2-D: max gap by regulariser", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)


def _numbers(entries: list[SweepEntry]) -> list[dict]:
    return [
        {
            "regulariser": e.regulariser,
            "weight": e.weight,
            "h_star": e.h_star,
            **{
                key: {f"{g:g}": float(np.mean(v[g])) for g in e.grid if v[g]}
                for key, v in (
                    ("max_gap", e.max_gap),
                    ("accuracy", e.accuracy),
                    ("nfe", e.nfe),
                )
            },
            "seconds_per_iteration": {
                f"{g:g}": s for g, s in e.seconds_per_iteration.items()
            },
        }
        for e in entries
    ]


def compare(results: str | Path, out: str | Path, *, threshold: float = 0.1) -> str:
    """Write `comparison.md`, `comparison.json` and `max_gap.png` into `out` from the
    studies' folders under `results`; return the Markdown."""
    from experiments.regularisation import ADAPT, DOPRI5, EULER, MNIST, SEARCH

    results, out = Path(results), Path(out)
    sections, numbers, missing = [], {}, []
    parts = (
        ("search", SEARCH, "The weight search: Euler at 8 steps", search_table),
        ("euler", EULER, "The Euler sweeps", lambda e: sweep_tables(e, threshold)),
        ("dopri5", DOPRI5, "dopri5 at one tolerance, spheres 2-D", claim_table),
        ("mnist", MNIST, "dopri5 at one tolerance, MNIST (C = 16)", claim_table),
    )  # fmt: skip
    found = {}
    for key, studies, title, table in parts:
        entries, absent = _finished(studies, results)
        missing += absent
        if not entries or entries[0].weight is not None:  # no baseline: nothing to compare
            continue
        found[key] = entries
        numbers[key] = _numbers(entries)
        seeds = len(entries[0].accuracy[entries[0].grid[0]])
        sections += [f"## {title}", "", f"{_seeds(seeds)}, {_iterations(entries[0])}.", "",
                     *table(entries), ""]  # fmt: skip
    adapted = None
    if (ADAPT.folder(results) / "summary.json").exists():
        adapted = AdaptedSummary.from_json(
            files.read_json(ADAPT.folder(results) / "summary.json")
        )
    else:
        missing.append(ADAPT.name)
    if "euler" in found:
        cheapest = cheapest_table(found["euler"], adapted)
        i = sections.index("## The Euler sweeps")
        sections[i:i] = [
            "## The cheapest way to an ODE",
            "",
            "Each cure at the coarsest training step that is an ODE: vector-field "
            "evaluations per training iteration (the penalty's extra passes, and the "
            "adaptation's checks, included).",
            "",
            *cheapest,
            "",
        ]
        plot_max_gap(found["euler"], out / "max_gap.png", threshold)
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
