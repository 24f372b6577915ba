"""An adapted training run: train with the adaptation rule, swap solvers at the end.

Folder layout of `run_adaptation(config, out_dir)`:

- `config.json`, `metrics.jsonl`, `checkpoint.eqx`: the training run (`odeness.train`;
  resumed if interrupted). Each metrics row holds the step size `dt` (or `tol`), the
  forward NFE, the running total of training NFE, the training accuracy and what the
  chunk's last check measured (`check_train_accuracy`, `test_accuracy`, `try_accuracy`);
- `swap.jsonl`: each seed's solver-swap rows at its final step size (or tolerance);
- `summary.json`, `summary.md`: per seed and mean ± std over seeds: final step size or
  tolerance, NFE per forward pass, test accuracy, max gap, total training NFE;
- `adaptation.png`: step size (or tolerance) and accuracies over training (the paper's
  Fig. 5).

Every file is written atomically.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import odeness
from experiments.lab.figures import plot_adaptation
from experiments.lab.markdown import MeanStd, markdown_table
from odeness import files

FIGURE = "adaptation.png"


class AdaptedSeed(NamedTuple):
    """One seed of an adapted run, at the end of training.

    Fixed-step training has `dt` and `steps`, adaptive training `tol` (the others are
    None).
    """

    seed: int
    dt: float | None
    steps: int | None
    tol: float | None
    test_accuracy: float
    """Test accuracy with the final training integrator."""
    nfe_per_forward: float
    max_gap: float
    train_nfe_total: int
    """Forward function evaluations summed over training (checks excluded)."""
    check_nfe_total: int

    @property
    def final(self) -> float:
        """The final step size or tolerance."""
        value = self.dt if self.tol is None else self.tol
        assert value is not None
        return value

    def to_json(self) -> dict:
        setting = {"dt": self.dt, "steps": self.steps} if self.tol is None else {}
        return {
            "seed": self.seed,
            **setting,
            **({} if self.tol is None else {"tol": self.tol}),
            "test_accuracy": self.test_accuracy,
            "nfe_per_forward": self.nfe_per_forward,
            "max_gap": self.max_gap,
            "train_nfe_total": self.train_nfe_total,
            "check_nfe_total": self.check_nfe_total,
        }

    @classmethod
    def from_json(cls, d: dict) -> "AdaptedSeed":
        return cls(
            d["seed"],
            d.get("dt"),
            d.get("steps"),
            d.get("tol"),
            d["test_accuracy"],
            d["nfe_per_forward"],
            d["max_gap"],
            d["train_nfe_total"],
            d["check_nfe_total"],
        )


class AdaptedSummary(NamedTuple):
    """What `run_adaptation` measured: each seed, and their mean ± std."""

    dataset: str
    solver: str
    iterations: int
    threshold: float
    fixed: bool
    """Whether the rule adapted a fixed step size (else a tolerance)."""
    seeds: list[AdaptedSeed]
    train_seconds: float
    """Training time summed over every process that trained the run."""
    regularise: tuple[tuple[str, float], ...] = ()
    """The training's regularisers (`TrainConfig.regularise`)."""

    @property
    def keys(self) -> list[str]:
        """The fields summarised over seeds."""
        keys = ["test_accuracy", "nfe_per_forward", "max_gap", "train_nfe_total"]
        return keys + (["dt", "steps"] if self.fixed else ["tol"])

    def mean_std(self, key: str) -> MeanStd:
        return MeanStd.of(getattr(s, key) for s in self.seeds)

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "solver": self.solver,
            "iterations": self.iterations,
            "threshold": self.threshold,
            "fixed": self.fixed,
            "seeds": [s.to_json() for s in self.seeds],
            "mean_std": {k: self.mean_std(k).to_json() for k in self.keys},
            "train_seconds": self.train_seconds,
            **(
                {"regularise": [list(p) for p in self.regularise]}
                if self.regularise
                else {}
            ),
        }

    @classmethod
    def from_json(cls, d: dict) -> "AdaptedSummary":
        seeds = [AdaptedSeed.from_json(s) for s in d["seeds"]]
        return cls(
            d["dataset"],
            d["solver"],
            d["iterations"],
            d["threshold"],
            d["fixed"],
            seeds,
            d["train_seconds"],
            tuple((name, value) for name, value in d.get("regularise", ())),
        )


def run_adaptation(
    config: odeness.TrainConfig,
    out_dir: str | Path,
    *,
    test_solvers: Sequence[str] | None = None,
    factors: Sequence[float] | None = None,
    progress: bool = True,
    parallel: odeness.Layout = "seeds",
) -> AdaptedSummary:
    """Train `config` (which must have `adapt=True`), then swap solvers for every seed.

    **Arguments:**

    - `config`: the adapted training configuration.
    - `out_dir`: the run folder (see the module docstring); resumed if it exists.
    - `parallel`: the device layout of training (`odeness.Layout`).
    - `test_solvers`, `factors`: the solver swap at each seed's final integrator
        (default: `odeness.default_swap`: euler, midpoint, rk4 at ×0.5 … ×2 steps for
        fixed-step training, the training solver at tol ×0.1, 1, 10 for adaptive
        training).

    **Returns:** the `AdaptedSummary` (also written to `summary.json`).

    **Raises:** before anything is written, `ValueError` if `config` does not adapt, for
    a bad swap plan or data set, or if the folder holds a run of another configuration
    (finished or not), `FileNotFoundError` if the data set's files are missing; then
    what `odeness.train` and `odeness.evaluate_solver_swap` raise (a diverged run, a
    failed solve).
    """
    if not config.adapt:
        raise ValueError("run_adaptation needs a configuration with adapt=True")
    fixed = config.tol is None
    # The final step size or tolerance is known after training: check the plan against
    # the strictest, the rule's largest step count (any tolerance is as strict).
    rule = config.rule()
    assert rule is not None
    like = (
        odeness.Integrator(odeness.solver(config.solver), steps=rule.max_steps)
        if fixed
        else odeness.Integrator(odeness.solver(config.solver), rtol=config.tol)
    )
    default_solvers, default_factors = odeness.default_swap(like)
    test_solvers = default_solvers if test_solvers is None else test_solvers
    factors = default_factors if factors is None else factors
    odeness.swap_configurations(like, test_solvers, factors)
    out = Path(out_dir)
    odeness.check_run_folder(out, config)  # before the data set loads
    data = config.load_dataset()
    with files.folder_lock(out, "run folder"):
        return _train_and_swap(
            config, out, data, test_solvers, factors, progress=progress, parallel=parallel
        )


def _train_and_swap(config, out, data, test_solvers, factors, *, progress, parallel):
    fixed = config.tol is None
    # A finished run resumes with nothing left to train.
    result = odeness.train(
        config, run_dir=out, data=data, progress=progress, parallel=parallel
    )
    seeds, swap_rows = _swap_seeds(config, result, data, test_solvers, factors)
    files.write_jsonl(out / "swap.jsonl", swap_rows)
    summary = AdaptedSummary(
        config.dataset or "the data given",
        config.solver,
        config.iterations,
        config.threshold,
        fixed,
        seeds,
        round(result.metrics[-1]["seconds"], 1),
        config.regularise,
    )
    files.write_json(out / "summary.json", summary.to_json())
    files.atomic_write_text(out / "summary.md", summary_markdown(summary))
    plot_adaptation(
        result.metrics,
        out / FIGURE,
        value="dt" if fixed else "tol",
        title=f"{config.dataset}, {config.solver}, adapted "
        f"(threshold {config.threshold}, every {config.interval} iterations)",
    )
    return summary


def _swap_seeds(config, result, data, test_solvers, factors):
    """Each seed's solver swap at its final integrator: its `AdaptedSeed` and rows."""
    swap_rows, seeds = [], []
    last = {r["seed"]: r for r in result.metrics}
    for i, seed in enumerate(config.seeds):
        integ = result.integrator_of(i)
        swap = odeness.evaluate_solver_swap(
            result.model(i),
            integ,
            data.x_test,
            data.y_test,
            solvers=test_solvers,
            factors=factors,
        )
        swap_rows += [{"seed": seed, **row.to_json()} for row in swap.rows]
        final = integ.describe()
        seeds.append(
            AdaptedSeed(
                seed,
                final.get("dt"),
                final.get("steps"),
                final.get("rtol"),
                swap.train_score,
                swap.train_nfe,
                swap.max_gap,
                last[seed]["train_nfe_total"],
                last[seed]["check_nfe_total"],
            )
        )
    return seeds, swap_rows


def summary_markdown(summary: AdaptedSummary) -> str:
    fixed = summary.fixed
    cols = ["seed"] + (["final h", "steps"] if fixed else ["final tol"])
    cols += ["NFE / forward", "test acc", "max gap", "training NFE"]
    body = []
    for s in summary.seeds:
        cells = [str(s.seed)]
        cells += [f"{s.dt:.4g}", str(s.steps)] if fixed else [f"{s.tol:.3g}"]
        cells += [
            f"{s.nfe_per_forward:.0f}",
            f"{s.test_accuracy:.3f}",
            f"{s.max_gap:.3f}",
            f"{s.train_nfe_total:,}",
        ]
        body.append(cells)

    def ms(key, fmt):
        return summary.mean_std(key).format(fmt)

    cells = ["mean ± std"]
    cells += [ms("dt", ".4g"), ms("steps", ".1f")] if fixed else [ms("tol", ".3g")]
    cells += [
        ms("nfe_per_forward", ".1f"),
        ms("test_accuracy", ".3f"),
        ms("max_gap", ".3f"),
        ms("train_nfe_total", ",.0f"),
    ]
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
        *markdown_table(cols, [*body, cells]),
        "",
    ]
    return "\n".join(lines)
