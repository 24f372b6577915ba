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

import numpy as np

from experiments.plots import plot_adaptation
from odeness import io
from odeness.config import TrainConfig
from odeness.data import load_dataset
from odeness.integrate import Integrator
from odeness.parallel import Layout
from odeness.runs import check_run_folder
from odeness.solvers import solver
from odeness.swap import evaluate_solver_swap, swap_configurations
from odeness.training import train

FIGURE = "adaptation.png"


def _mean_std(values) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}


def run_adaptation(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    test_solvers: Sequence[str] | None = None,
    factors: Sequence[float] | None = None,
    progress: bool = True,
    parallel: Layout = "seeds",
) -> dict:
    """Train `config` (which must have `adapt=True`), then swap solvers for every seed.

    **Arguments:**

    - `config`: the adapted training configuration.
    - `out_dir`: the run folder (see the module docstring); resumed if it exists.
    - `parallel`: the device layout of training (`odeness.parallel`).
    - `test_solvers`, `factors`: the solver swap at each seed's final integrator;
        default: euler, midpoint, rk4 at ×0.5 … ×2 steps for fixed-step training, the
        training solver at tol ×0.1, 1, 10 for adaptive training.

    **Returns:** the summary (also written to `summary.json`).

    **Raises:** before anything is written, `ValueError` if `config` does not adapt, for
    a bad swap plan or data set, or if the folder holds a run of another configuration
    (finished or not), `FileNotFoundError` if the data set's files are missing; then
    what `odeness.train` and `evaluate_solver_swap` raise (a diverged run, a failed
    solve).
    """
    if not config.adapt:
        raise ValueError("run_adaptation needs a configuration with adapt=True")
    fixed = config.tol is None
    if test_solvers is None:
        test_solvers = ("euler", "midpoint", "rk4") if fixed else (config.solver,)
    if factors is None:
        factors = (0.5, 0.75, 1.0, 1.5, 2.0) if fixed else (0.1, 1.0, 10.0)
    # The final step size or tolerance is known after training: check the plan against
    # the strictest, the rule's largest step count (any tolerance is as strict).
    rule = config.rule()
    assert rule is not None
    like = (
        Integrator(solver(config.solver), steps=rule.max_steps)
        if fixed
        else Integrator(solver(config.solver), rtol=config.tol, atol=config.tol)
    )
    swap_configurations(like, test_solvers, factors)
    out = Path(out_dir)
    check_run_folder(out, config)  # before the data set loads; `train` checks the data
    data = load_dataset(config.dataset, seed=config.data_seed, data_dir=config.data_dir)
    # A finished run resumes with nothing left to train.
    result = train(config, run_dir=out, data=data, progress=progress, parallel=parallel)
    swap_rows, seeds = [], []
    last = {r["seed"]: r for r in result.metrics}
    for i, seed in enumerate(config.seeds):
        integ = result.integrator_of(i)
        swap = evaluate_solver_swap(
            result.model(i),
            integ,
            data.x_test,
            data.y_test,
            solvers=test_solvers,
            factors=factors,
        )
        for row in swap.rows:
            swap_rows.append({"seed": seed, **row.to_json()})
        final = integ.describe()
        seeds.append(
            {
                "seed": seed,
                **({"dt": final["dt"], "steps": final["steps"]} if fixed else {}),
                **({} if fixed else {"tol": final["rtol"]}),
                "test_accuracy": swap.train_accuracy,
                "nfe_per_forward": swap.train_nfe,
                "max_gap": swap.max_gap,
                "train_nfe_total": last[seed]["train_nfe_total"],
                "check_nfe_total": last[seed]["check_nfe_total"],
            }
        )
    io.write_jsonl(out / "swap.jsonl", swap_rows)
    keys = ["test_accuracy", "nfe_per_forward", "max_gap", "train_nfe_total"]
    keys += ["dt", "steps"] if fixed else ["tol"]
    summary = {
        "dataset": config.dataset,
        "solver": config.solver,
        "iterations": config.iterations,
        "threshold": config.threshold,
        "seeds": seeds,
        "mean_std": {k: _mean_std([s[k] for s in seeds]) for k in keys},
        # Training time summed over every process that trained the run.
        "train_seconds": round(result.metrics[-1]["seconds"], 1),
    }
    io.write_json(out / "summary.json", summary)
    io.atomic_write_text(out / "summary.md", summary_markdown(summary))
    plot_adaptation(
        result.metrics,
        out / FIGURE,
        value="dt" if fixed else "tol",
        title=f"{config.dataset}, {config.solver}, adapted "
        f"(threshold {config.threshold}, every {config.interval} iterations)",
    )
    return summary


def summary_markdown(summary: dict) -> str:
    fixed = "dt" in summary["seeds"][0]
    cols = ["seed"] + (["final h", "steps"] if fixed else ["final tol"])
    cols += ["NFE / forward", "test acc", "max gap", "training NFE"]
    lines = [
        f"# Adapted training: {summary['solver']} on {summary['dataset']}, "
        f"{summary['iterations']} iterations",
        "",
        "Test accuracy with the final training solver; max gap: largest accuracy drop "
        "under test solvers at least as accurate (an ODE if ≤ "
        f"{summary['threshold']}); training NFE: forward evaluations summed over "
        "training (checks excluded).",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for s in summary["seeds"]:
        cells = [str(s["seed"])]
        cells += [f"{s['dt']:.4g}", str(s["steps"])] if fixed else [f"{s['tol']:.3g}"]
        cells += [
            f"{s['nfe_per_forward']:.0f}",
            f"{s['test_accuracy']:.3f}",
            f"{s['max_gap']:.3f}",
            f"{s['train_nfe_total']:,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    m = summary["mean_std"]

    def ms(key, fmt):
        return f"{m[key]['mean']:{fmt}} ± {m[key]['std']:{fmt}}"

    cells = ["mean ± std"]
    cells += [ms("dt", ".4g"), ms("steps", ".1f")] if fixed else [ms("tol", ".3g")]
    cells += [
        ms("nfe_per_forward", ".1f"),
        ms("test_accuracy", ".3f"),
        ms("max_gap", ".3f"),
        ms("train_nfe_total", ",.0f"),
    ]
    lines += ["| " + " | ".join(cells) + " |", ""]
    return "\n".join(lines)
