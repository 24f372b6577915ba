"""Certify trained models three ways (the solver swap's threshold, self-convergence,
convergence against the targets), list the inputs that change their prediction, and
pick the cheapest faithful solver of the models that are ODEs.

`--out` holds `models/<run>-seed<k>.json`, one per model (written when its tests finish:
a run that stops resumes with the next model), `certify.jsonl` and `summary.md`.
"""

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

import odeness
from experiments.lab.markdown import markdown_table
from experiments.lab.options import AbstractOptions, option
from odeness import files

DOPRI5 = "dopri5 at tol 1e-6"
"""The candidate the deployment solver's speed-up is also measured against."""


class Verdicts(NamedTuple):
    """One model's three verdicts (`ode`: the swap's threshold; `asymptotic`: None for
    adaptive training) and, if it is an ODE, its cheapest faithful solver."""

    run: str
    seed: int
    training: str
    steps: int | None
    accuracy: float
    max_gap: float
    ode: bool
    failing_fraction: float
    asymptotic: bool | None
    errors: list[float]
    orders: list[float | None]
    converges: bool
    scores: list[float]
    trend: float
    chosen: str | None = None
    chosen_nfe: float | None = None
    training_nfe: float | None = None
    speedup_training: float | None = None
    speedup_dopri5: float | None = None


def verdicts_of(
    name: str,
    seed: int,
    model,
    integ: odeness.Integrator,
    x: np.ndarray,
    y: np.ndarray,
    *,
    within: float,
    threshold: float = 0.1,
) -> Verdicts:
    """Every test of one model on `(x, y)`."""
    swap = odeness.evaluate_solver_swap(model, integ, x, y)
    grid = isinstance(integ.control, odeness.AbstractGrid)
    sc = odeness.self_convergence(model, integ, x) if grid else None
    ct = odeness.convergence_test(model, integ, x, y)
    training = str(integ.setting)
    found = Verdicts(
        name,
        seed,
        training,
        integ.steps if grid else None,
        swap.train_score,
        swap.max_gap,
        swap.is_ode(threshold),
        swap.failing_fraction(threshold),
        None if sc is None else sc.asymptotic,
        [] if sc is None else list(sc.errors),
        [] if sc is None else [o if math.isfinite(o) else None for o in sc.orders],
        ct.converges,
        list(ct.scores),
        ct.trend,
    )
    if not found.ode:
        return found
    # The default candidates, the training integrator among them.
    candidates = list(odeness.default_candidates(integ.t0, integ.t1))
    if training not in {str(c.setting) for c in candidates}:
        candidates.append(integ)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the swap said it is an ODE
        best = odeness.cheapest_solver(
            model, x, within=within, candidates=candidates, swap=swap
        )
    if best.chosen is None:
        return found
    return found._replace(
        chosen=best.chosen.setting,
        chosen_nfe=best.chosen.nfe,
        training_nfe=best.find(training).nfe,
        speedup_training=best.speedup(training),
        speedup_dopri5=best.speedup(DOPRI5),
    )


@dataclasses.dataclass(frozen=True)
class CertifyOptions(AbstractOptions):
    """Certify trained models three ways and choose their deployment solver.

        python experiments/certify.py results/sweep-euler/runs/* --out results/certify-euler
        python experiments/certify.py RUN_FOLDER ... [--points 1000] [--within 0.01]

    For every seed of every run folder (written by `odeness.train`, e.g. a sweep's
    `runs/*`): the three verdicts, the inputs that change their prediction and, for the
    ODEs, the cheapest faithful solver with its measured speed-up against the training
    integrator and dopri5 at tol 1e-6, into --out (see `experiments.lab.certification`).
    Nothing is trained.
    """

    command = "certify"
    published = ("summary.md",)

    runs: tuple[str, ...] | None = option(
        None, "run folders written by odeness.train", positional=True, under_results=True
    )
    out: str | None = option(None, "output folder (default results/certify)")
    points: int = option(1000, "test inputs (the first N)")
    within: float = option(
        1e-2,
        "the deployment solver's largest relative RMS distance from the converged outputs",
    )
    title: str | None = option(None, "the summary's title")

    def __post_init__(self):
        if self.points < 1:
            raise ValueError(f"--points must be an integer >= 1, got {self.points}")
        if not (math.isfinite(self.within) and self.within > 0):
            raise ValueError(f"--within must be a finite number > 0, got {self.within}")

    @property
    def folder(self) -> Path:
        return Path(self.out or "results/certify")

    def run(self) -> str:
        runs = sorted(Path(r) for r in self.runs or ())
        if not runs:
            raise ValueError("give the run folders to certify (written by odeness.train)")
        for r in runs:
            if not (r / "config.json").is_file():
                raise ValueError(
                    f"{r} is not a run folder (no config.json); give folders written by "
                    "odeness.train"
                )
        out = files.check_folder(self.folder, "--out")
        points, within = self.points, self.within
        title = self.title or ", ".join(dict.fromkeys(r.parent.parent.name for r in runs))
        progress = functools.partial(print, flush=True)
        with files.folder_lock(out, "--out"):
            rows = certify(runs, out, points=points, within=within, progress=progress)
            text = summary_markdown(rows, points=points, within=within, title=title)
            files.atomic_write_text(out / "summary.md", text)
        return text


def certify(
    runs: Sequence[Path],
    out: Path,
    *,
    points: int,
    within: float,
    threshold: float = 0.1,
    progress=print,
) -> list[Verdicts]:
    """The verdicts of every seed of every run folder (`odeness.train`'s), on the first
    `points` test inputs; finished models are read back, not tested again, and a stop
    request (`odeness.raise_if_stopped`) ends it after the model in flight."""
    test = functools.partial(verdicts_of, within=within, threshold=threshold)
    done = []
    for folder in runs:
        run = odeness.load_run(folder)
        data = run.config.load_dataset()
        x, y = data.x_test[:points], data.y_test[:points]
        for i, seed in enumerate(run.config.seeds):
            path = out / "models" / f"{folder.name}-seed{seed}.json"
            if path.exists():
                done.append(Verdicts(**files.read_json(path)))
                continue
            found = test(folder.name, seed, run.model(i), run.integrator_of(i), x, y)
            files.write_json(path, found._asdict())
            done.append(found)
            odeness.raise_if_stopped(f"after {path.name}: {out} keeps the models done")
            progress(
                f"{folder.name} seed {seed}: threshold {_yes(found.ode)}, "
                f"self-convergence {_yes(found.asymptotic)}, "
                f"targets {_yes(found.converges)}"
                + ("" if found.chosen is None else f", deploy {found.chosen}")
            )
    files.write_jsonl(out / "certify.jsonl", [v._asdict() for v in done])
    return done


def _yes(flag: bool | None) -> str:
    return "–" if flag is None else ("yes" if flag else "no")


def _cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else f"{value:{fmt}}"


def _count(group: list[Verdicts], verdict: str) -> str:
    """How many of `group` pass `verdict` ("–" where none was tested)."""
    flags = [getattr(r, verdict) for r in group]
    return "–" if all(f is None for f in flags) else str(sum(bool(f) for f in flags))


def _agree(group: list[Verdicts], verdict: str) -> str:
    """How many of `group` tested by `verdict` get the threshold's verdict."""
    judged = [r for r in group if getattr(r, verdict) is not None]
    if not judged:
        return "–"
    return f"{sum(getattr(r, verdict) == r.ode for r in judged)}/{len(judged)}"


def _drop(r: Verdicts) -> float:
    """The largest accuracy drop from the training step's over the refined ones."""
    return max(r.scores[0] - s for s in r.scores[1:]) if len(r.scores) > 1 else math.inf


def _median(values: list[float | None]) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return "–" if not finite else f"{np.median(finite):.2f}"


def _error(group: list[Verdicts]) -> str:
    """The median self-convergence error at the training step."""
    errors = [r.errors[0] for r in group if r.errors]
    return f"{np.median(errors):.3g}" if errors else "–"


_SUMMARY = (
    ("training", lambda g: g[0].training),
    ("models", lambda g: str(len(g))),
    ("accuracy", lambda g: f"{np.mean([r.accuracy for r in g]):.3f}"),
    ("ODE (threshold)", lambda g: _count(g, "ode")),
    ("inputs that change", lambda g: f"{np.mean([r.failing_fraction for r in g]):.3f}"),
    ("asymptotic (self-conv.)", lambda g: _count(g, "asymptotic")),
    ("agrees", lambda g: _agree(g, "asymptotic")),
    ("error at training step (median)", _error),
    ("observed order (median)", lambda g: _median([o for r in g for o in r.orders])),
    ("converges (targets)", lambda g: _count(g, "converges")),
    ("agrees", lambda g: _agree(g, "converges")),
    ("largest drop", lambda g: f"{max(_drop(r) for r in g):.3f}"),
    (
        "trend per refinement",
        lambda g: f"{np.mean([r.trend for r in g if math.isfinite(r.trend)]):+.4f}",
    ),
)
"""The summary's columns: their titles and cells of a training integrator's models."""

_DEPLOY = (
    ("training", lambda r: r.training),
    ("seed", lambda r: str(r.seed)),
    ("chosen", lambda r: r.chosen or "none within"),
    ("NFE", lambda r: _cell(r.chosen_nfe, ".0f")),
    ("training NFE", lambda r: _cell(r.training_nfe, ".0f")),
    ("speed-up vs training", lambda r: _cell(r.speedup_training, ".2f")),
    ("vs dopri5 1e-6", lambda r: _cell(r.speedup_dopri5, ".2f")),
)
"""The deployment table's columns: their titles and cells of an ODE model."""


def _table(columns: Sequence[tuple[str, Callable]], rows) -> list[str]:
    return markdown_table(
        [c for c, _ in columns], [[f(r) for _, f in columns] for r in rows]
    )


def summary_markdown(
    rows: list[Verdicts], *, points: int, within: float, title: str
) -> str:
    """Per training integrator: how often each test says ODE, how often the convergence
    tests agree with the threshold, the observed orders, and the deployment solvers."""
    trainings = dict.fromkeys(r.training for r in rows)
    groups = [[r for r in rows if r.training == t] for t in trainings]
    groups.sort(key=lambda group: group[0].steps or 0)
    lines = [
        f"# Three verdicts: {title}",
        "",
        f"The first {points} test inputs. Threshold: the solver swap's max gap ≤ 0.1. "
        "Self-convergence: the outputs at n, 2n, 4n, 8n steps against RK4 (twice the "
        "finest count), asymptotic when the error at n is at most half the outputs' size "
        "and each observed order within 25% of the solver's (fixed-step training only: "
        "'–' for adaptive). Against the targets: the accuracy at n, 2n, 4n, 8n, 16n "
        "steps (tolerance ÷ 1, 10, 100, 1000) drops by no more than 0.1 (the largest "
        "drop is given). 'agrees': models whose verdict is the threshold's.",
        "",
        *_table(_SUMMARY, groups),
        "",
        f"## The cheapest faithful solver of each ODE model (within {within:g}, relative "
        "RMS of the outputs, of RK4 at 1,024 steps)",
        "",
        "Speed-ups: measured wall time of the training integrator (or of dopri5 at "
        "tol 1e-6) over the chosen one's, one pass over the inputs, compiled.",
        "",
        *_table(_DEPLOY, [r for r in rows if r.ode]),
        "",
    ]
    return "\n".join(lines)
