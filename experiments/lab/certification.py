"""Certify trained models three ways, and pick their deployment solver: the threshold
verdict of the solver swap, self-convergence and convergence against the targets
(`odeness.self_convergence`, `odeness.convergence_test`), the inputs that change their
prediction, and for the models that are ODEs the cheapest faithful solver
(`odeness.cheapest_solver`).

Folder layout of `certify(runs, out)`: `models/<run>-seed<k>.json`, one per model
(written when its tests finish: a run that stops resumes with the next model);
`certify.jsonl`, `summary.md`, `summary.json`.
"""

import dataclasses
import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
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
    """One model's three verdicts and, if it is an ODE, its cheapest faithful solver."""

    run: str
    seed: int
    training: str
    """The training integrator, e.g. `euler at 8 steps`."""
    steps: int | None
    accuracy: float
    max_gap: float
    ode: bool
    """The swap's threshold verdict."""
    failing_fraction: float
    asymptotic: bool | None
    """Self-convergence (None for adaptive training)."""
    errors: list[float]
    orders: list[float | None]
    """None where an error was 0 (no order to observe)."""
    converges: bool
    scores: list[float]
    trend: float
    chosen: str | None = None
    """The cheapest faithful solver (ODE models only)."""
    chosen_nfe: float | None = None
    training_nfe: float | None = None
    speedup_training: float | None = None
    speedup_dopri5: float | None = None

    @classmethod
    def from_json(cls, d: dict) -> "Verdicts":
        return cls(**d)


def _candidates(training: odeness.Integrator) -> list[odeness.Integrator]:
    """The default candidates, the training integrator among them."""
    candidates = list(odeness.default_candidates(training.t0, training.t1))
    if str(training.setting) not in {str(c.setting) for c in candidates}:
        candidates.append(training)
    return candidates


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the swap said it is an ODE
        best = odeness.cheapest_solver(
            model, x, within=within, candidates=_candidates(integ), swap=swap
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
    `runs/*`): the solver swap's threshold verdict and the inputs that change their
    prediction, self-convergence and convergence against the targets
    (`odeness.self_convergence`, `odeness.convergence_test`), and for the models that
    are ODEs the cheapest faithful solver (`odeness.cheapest_solver`) with its measured
    speed-up against the training integrator and against dopri5 at tol 1e-6. Writes
    `models/*.json` (one per model; a stopped run resumes with the next model),
    `certify.jsonl` and `summary.md` into --out. Nothing is trained.
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
        with files.folder_lock(out, "--out"):
            rows = certify(runs, out, points=self.points, within=self.within,
                           progress=lambda line: print(line, flush=True))  # fmt: skip
            title = self.title or ", ".join(
                dict.fromkeys(r.parent.parent.name for r in runs)
            )
            text = summary_markdown(rows, points=self.points, within=self.within,
                                    title=title)  # fmt: skip
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
    done = []
    for folder in runs:
        run = odeness.load_run(folder)
        data = run.config.load_dataset()
        x, y = data.x_test[:points], data.y_test[:points]
        for i, seed in enumerate(run.config.seeds):
            path = out / "models" / f"{folder.name}-seed{seed}.json"
            if path.exists():
                done.append(Verdicts.from_json(files.read_json(path)))
                continue
            found = verdicts_of(
                folder.name,
                seed,
                run.model(i),
                run.integrator_of(i),
                x,
                y,
                within=within,
                threshold=threshold,
            )
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


def _agree(rows: list[Verdicts], test) -> str:
    judged = [r for r in rows if test(r) is not None]
    if not judged:
        return "–"
    return f"{sum(test(r) == r.ode for r in judged)}/{len(judged)}"


def _times(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _deploy_cells(r: Verdicts) -> list[str]:
    """The deployment table's row of an ODE model."""
    return [
        r.training,
        str(r.seed),
        r.chosen or "none within",
        "–" if r.chosen_nfe is None else f"{r.chosen_nfe:.0f}",
        "–" if r.training_nfe is None else f"{r.training_nfe:.0f}",
        _times(r.speedup_training),
        _times(r.speedup_dopri5),
    ]


def _drop(r: Verdicts) -> float:
    """The largest accuracy drop from the training step's over the refined ones."""
    return max(r.scores[0] - s for s in r.scores[1:]) if len(r.scores) > 1 else math.inf


def _median(values: list[float | None]) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return "–" if not finite else f"{np.median(finite):.2f}"


def summary_markdown(
    rows: list[Verdicts], *, points: int, within: float, title: str
) -> str:
    """Per training integrator: how often each test says ODE, how often the convergence
    tests agree with the threshold, the observed orders, and the deployment solvers."""
    by_training: dict[str, list[Verdicts]] = defaultdict(list)
    for r in rows:
        by_training[r.training].append(r)
    order = sorted(by_training, key=lambda t: by_training[t][0].steps or 0)
    body = []
    for t in order:
        group = by_training[t]
        body.append([
            t,
            str(len(group)),
            f"{np.mean([r.accuracy for r in group]):.3f}",
            f"{sum(r.ode for r in group)}",
            f"{np.mean([r.failing_fraction for r in group]):.3f}",
            f"{sum(bool(r.asymptotic) for r in group)}"
            if any(r.asymptotic is not None for r in group) else "–",
            _agree(group, lambda r: r.asymptotic),
            f"{np.median([r.errors[0] for r in group if r.errors]):.3g}"
            if any(r.errors for r in group) else "–",
            _median([o for r in group for o in r.orders]),
            f"{sum(r.converges for r in group)}",
            _agree(group, lambda r: r.converges),
            f"{max(_drop(r) for r in group):.3f}",
            f"{np.mean([r.trend for r in group if math.isfinite(r.trend)]):+.4f}",
        ])  # fmt: skip
    head = ["training", "models", "accuracy", "ODE (threshold)", "inputs that change",
            "asymptotic (self-conv.)", "agrees", "error at training step (median)",
            "observed order (median)", "converges (targets)", "agrees",
            "largest drop", "trend per refinement"]  # fmt: skip
    deploy = [_deploy_cells(r) for r in rows if r.ode]
    lines = [
        f"# Three verdicts: {title}",
        "",
        f"The first {points} test inputs. Threshold: the solver swap's max gap ≤ 0.1. "
        "Self-convergence: the outputs at n, 2n, 4n, 8n steps against RK4 (twice the "
        "finest count), asymptotic when the error at n is at most half the outputs' size "
        "and each observed order within 25% of the solver's (fixed-step training only: "
        "'–' for adaptive). Against the targets: the "
        "accuracy at n, 2n, 4n, 8n, 16n steps (tolerance ÷ 1, 10, 100, 1000) drops by no "
        "more than 0.1 (the largest drop is given). 'agrees': models whose verdict is the "
        "threshold's.",
        "",
        *markdown_table(head, body),
        "",
        f"## The cheapest faithful solver of each ODE model (within {within:g}, relative "
        "RMS of the outputs, of RK4 at 1,024 steps)",
        "",
        "Speed-ups: measured wall time of the training integrator (or of dopri5 at "
        "tol 1e-6) over the chosen one's, one pass over the inputs, compiled.",
        "",
        *markdown_table(
            [
                "training",
                "seed",
                "chosen",
                "NFE",
                "training NFE",
                "speed-up vs training",
                "vs dopri5 1e-6",
            ],
            deploy,
        ),  # fmt: skip
        "",
    ]
    return "\n".join(lines)
