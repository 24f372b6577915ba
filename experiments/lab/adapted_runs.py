"""An adapted training run (`run_adaptation`): train with the paper's adaptation rule,
then swap solvers at each seed's final step size (or tolerance).

Its folder, every file written atomically: `config.json`, `metrics.jsonl`,
`checkpoint.eqx` (`odeness.train`, resumed if interrupted; each metrics row holds the
step size `dt` or `tol`, the forward NFE and its running total, the training accuracy
and what the chunk's last check measured); `swap.jsonl` (each seed's swap rows);
`summary.json`, `summary.md` (per seed and mean ± std over seeds: the final control, NFE
per forward pass, test accuracy, max gap, total training NFE); `adaptation.png` (step
size or tolerance and accuracies over training: the paper's Fig. 5).
"""

import dataclasses
from pathlib import Path
from typing import NamedTuple

import odeness
from experiments.lab.axes import Axis, StepsAxis, TolerancesAxis, axis
from experiments.lab.figures import plot_adaptation
from experiments.lab.markdown import MeanStd, markdown_table
from experiments.lab.options import TrainingOptions, check_solver, option
from odeness import files

FIGURE = "adaptation.png"


class AdaptedSeed(NamedTuple):
    """One seed of an adapted run at the end of training: its final control as
    `summary.json` holds it (`Axis.final_values`: `dt` and `steps`, or `tol`), the test
    accuracy with it, and the forward NFE summed over training (checks apart)."""

    seed: int
    final: dict[str, float]
    test_accuracy: float
    nfe_per_forward: float
    max_gap: float
    train_nfe_total: int
    check_nfe_total: int

    def number(self, key: str) -> float:
        """The number `key` of `summary.json`: a field, or one of `final`."""
        return self.final[key] if key in self.final else getattr(self, key)

    def to_json(self) -> dict:
        fields = self._asdict()
        return {"seed": fields.pop("seed"), **fields.pop("final"), **fields}

    @classmethod
    def from_json(cls, d: dict, along: Axis) -> "AdaptedSeed":
        final = {key: d[key] for key, *_ in along.final}
        return cls(d["seed"], final, *(d[name] for name in cls._fields[2:]))


class AdaptedSummary(NamedTuple):
    """What `run_adaptation` measured: each seed, and their mean ± std. `along` is what
    the rule adapted (`StepsAxis` or `TolerancesAxis`); `train_seconds` sums every
    process that trained the run."""

    dataset: str
    solver: str
    iterations: int
    threshold: float
    along: Axis
    seeds: list[AdaptedSeed]
    train_seconds: float
    regularise: tuple[tuple[str, float], ...] = ()

    def mean_std(self, key: str) -> MeanStd:
        return MeanStd.of(s.number(key) for s in self.seeds)

    def to_json(self) -> dict:
        keys = ["test_accuracy", "nfe_per_forward", "max_gap", "train_nfe_total"]
        keys += [key for key, *_ in self.along.final]
        regularise = [list(p) for p in self.regularise]
        return {
            **{key: getattr(self, key) for key in self._fields[:4]},
            "fixed": self.along.fixed,
            "seeds": [s.to_json() for s in self.seeds],
            "mean_std": {k: self.mean_std(k).to_json() for k in keys},
            "train_seconds": self.train_seconds,
            **({"regularise": regularise} if regularise else {}),
        }

    @classmethod
    def from_json(cls, d: dict) -> "AdaptedSummary":
        along = StepsAxis() if d["fixed"] else TolerancesAxis()
        seeds = [AdaptedSeed.from_json(s, along) for s in d["seeds"]]
        regularise = tuple((name, value) for name, value in d.get("regularise", ()))
        given = {key: d[key] for key in (*cls._fields[:4], "train_seconds")}
        return cls(**given, along=along, seeds=seeds, regularise=regularise)

    def line(self) -> str:
        """What `experiments/adapt.py` prints at the end."""
        value, ms = self.along.final[-1][0], self.mean_std
        return (
            f"final {value} {ms(value).mean:.4g} ± {ms(value).std:.2g}, test accuracy "
            f"{ms('test_accuracy').format('.3f')}, max gap {ms('max_gap').mean:.3f}, "
            f"training NFE {ms('train_nfe_total').mean:,.0f} ({self.train_seconds:.0f} s)"
        )


@dataclasses.dataclass(frozen=True)
class AdaptOptions(TrainingOptions):
    """Train a Neural ODE with the paper's step-size (or tolerance) adaptation.

        python experiments/adapt.py --dataset sphere2 --solver euler
        python experiments/adapt.py --dataset cifar10 --data-dir ~/data/cifar10

    Fixed-step solvers adapt the step size (from Hairer's initial step, or --steps);
    adaptive solvers adapt the tolerance (from --tol, the paper's 1e-6). Writes the run
    folder of `experiments.lab.adapted_runs` into --out; an interrupted run resumes.
    """

    command = "adapt"
    published = ("summary.md", FIGURE)

    solver: str = option(
        "euler", "training solver (euler, midpoint, dopri5, fehlberg2, ...)"
    )
    steps: int | None = option(None, "initial steps (default: Hairer's rule)")
    tol: float | None = option(None, "initial tolerance of adaptive solvers (default 1e-6)")
    test_solver: str | None = option(
        None,
        "default: the paper's (euler → midpoint, midpoint → rk4, dopri5 → dopri5, "
        "fehlberg2 → dopri5)",
    )
    threshold: float = option(0.1, "accuracy gap that marks the model as not an ODE")
    interval: int = option(50, "iterations between checks")
    test_solvers: tuple[str, ...] | None = option(
        None,
        "the final solver swap's solvers (default: euler, midpoint, rk4 for fixed "
        "steps, the training solver for tolerances)",
    )
    factors: tuple[float, ...] | None = option(
        None,
        "the final swap's factors (default: 0.5 0.75 1 1.5 2 for fixed steps, 0.1 1 10 "
        "for tolerances)",
    )
    max_steps: int | None = option(
        None, "cap on the steps (default 500 for fixed steps, 4096 for adaptive solves)"
    )
    out: str | None = option(None, "run folder (default results/adapt-DATASET-SOLVER)")

    @property
    def folder(self) -> Path:
        return Path(self.out or f"results/adapt-{self.dataset}-{self.solver}")

    def check(self) -> None:
        _plan(self)

    def run(self) -> str:
        return run_adaptation(self).line()


def run_adaptation(options: AdaptOptions) -> AdaptedSummary:
    """Train with the adaptation rule, then swap solvers (`test_solvers` at `factors`,
    default `odeness.default_swap`) for every seed at its final integrator, into
    `options.folder` (see the module docstring); resumed if it exists.

    **Raises:** before anything is written, `ValueError` for a bad option, swap plan or
    data set, or a folder holding a run of another configuration, `FileNotFoundError`
    for missing data files; then what `odeness.train` and `odeness.evaluate_solver_swap`
    raise (a diverged run, a failed solve).
    """
    options.start_processes()
    config, solvers, factors, along = _plan(options)
    out = options.folder
    odeness.check_run_folder(out, config)  # before the data set loads
    data = config.load_dataset()
    with files.folder_lock(out, "run folder"):
        # A finished run resumes with nothing left to train.
        result = odeness.train(
            config,
            run_dir=out,
            data=data,
            progress=options.progress,
            parallel=options.parallel,
        )
        swap_rows, seeds = [], []
        last = {r.seed: r for r in result.metrics}
        for i, seed in enumerate(config.seeds):
            integ, row = result.integrator_of(i), last[seed]
            swap = odeness.evaluate_solver_swap(
                result.model(i),
                integ,
                data.x_test,
                data.y_test,
                solvers=solvers,
                factors=factors,
            )
            swap_rows += [{"seed": seed, **r.to_json()} for r in swap.rows]
            assert row.check is not None  # an adapted run's rows
            final = along.final_values(integ.setting.control)
            scores = (swap.train_score, swap.train_nfe, swap.max_gap)
            nfe = (row.train_nfe_total, row.check.check_nfe_total)
            seeds.append(AdaptedSeed(seed, final, *scores, *nfe))
        files.write_jsonl(out / "swap.jsonl", swap_rows)
        summary = AdaptedSummary(
            config.dataset or "the data given",
            config.solver,
            config.iterations,
            config.threshold,
            along,
            seeds,
            round(result.metrics[-1].seconds, 1),
            config.regularise,
        )
        files.write_json(out / "summary.json", summary.to_json())
        files.atomic_write_text(out / "summary.md", summary_markdown(summary))
        plot_adaptation(
            [r.to_json() for r in result.metrics],
            out / FIGURE,
            value=along.rule_value,
            title=f"{config.dataset}, {config.solver}, adapted "
            f"(threshold {config.threshold}, every {config.interval} iterations)",
        )
    return summary


def _plan(options: AdaptOptions):
    """The training configuration and the final swap's solvers and factors, checked
    (errors name the flag). The final step size or tolerance is known after training, so
    the swap is checked at the strictest: the rule's largest step count (any tolerance
    is as strict)."""
    check_solver("--solver", options.solver)
    if options.test_solver is not None:
        check_solver("--test-solver", options.test_solver)
    for name in options.test_solvers or ():
        check_solver("--test-solvers", name)
    interval = options.interval
    if interval < 1:
        raise ValueError(f"--interval must be an integer >= 1, got {interval}")
    adaptive = odeness.is_adaptive(odeness.solver(options.solver))
    if adaptive and options.steps is not None:
        raise ValueError(
            f"solver {options.solver!r} adapts its tolerance: give --tol, not --steps"
        )
    if not adaptive and options.tol is not None:
        raise ValueError(
            f"solver {options.solver!r} has fixed steps: give --steps, not --tol"
        )
    config = options.config(
        solver=options.solver,
        steps=options.steps,
        tol=(1e-6 if options.tol is None else options.tol) if adaptive else None,
        adapt=True,
        test_solver=options.test_solver,
        threshold=options.threshold,
        interval=interval,
        max_steps=options.max_steps,
        log_every=interval,
        checkpoint_every=interval * max(1, 1000 // interval),
    )
    rule = config.rule()
    assert rule is not None
    control = config.control
    if not isinstance(control, odeness.Tolerances):
        control = odeness.Steps(rule.max_steps)
    like = odeness.Integrator(odeness.solver(config.solver), control)
    default_solvers, default_factors = odeness.default_swap(like)
    solvers = default_solvers if options.test_solvers is None else options.test_solvers
    factors = default_factors if options.factors is None else options.factors
    odeness.swap_configurations(like, solvers, factors)
    return config, solvers, factors, axis(control)


_COLUMNS = (
    ("nfe_per_forward", "NFE / forward", ".0f", ".1f"),
    ("test_accuracy", "test acc", ".3f", ".3f"),
    ("max_gap", "max gap", ".3f", ".3f"),
    ("train_nfe_total", "training NFE", ",", ",.0f"),
)
"""`summary.md`'s columns after the final control, as `Axis.final`'s: `(key, column,
format of a seed, format of the mean over seeds)`."""


def summary_markdown(summary: AdaptedSummary) -> str:
    """`summary.md`: each seed's final control and scores, and their mean ± std."""
    columns = (*summary.along.final, *_COLUMNS)
    body = [
        [str(s.seed), *(f"{s.number(key):{fmt}}" for key, _, fmt, _ in columns)]
        for s in summary.seeds
    ]
    means = [summary.mean_std(key).format(fmt) for key, _, _, fmt in columns]
    lines = [
        f"# Adapted training: {summary.solver} on {summary.dataset}, "
        f"{summary.iterations} iterations"
        + "".join(f", {name} {value:g}" for name, value in summary.regularise),
        "",
        "Test accuracy with the final training solver; max gap: largest accuracy drop "
        "under test solvers at least as accurate (an ODE if ≤ "
        f"{summary.threshold}); training NFE: forward evaluations summed over "
        "training (checks excluded).",
        "",
        *markdown_table(
            ["seed", *(column for _, column, _, _ in columns)],
            [*body, ["mean ± std", *means]],
        ),
        "",
    ]
    return "\n".join(lines)
