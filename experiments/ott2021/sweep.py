"""A sweep over training step sizes (or tolerances), each run followed by its solver swap.

Folder layout of `run_sweep(..., out_dir)`:

- `sweep.json`: what the sweep is (checked on resume);
- `runs/<label>/`: each training run's folder (`config.json`, `metrics.jsonl`,
  `checkpoint.eqx`) and `swap.jsonl`, its solver-swap rows;
- `results.jsonl`: one row per seed × training configuration × test configuration;
- `summary.md`, `critical_step.json` and `accuracy_vs_test_steps.png`.

Every file is written atomically; an interrupted sweep resumes where it stopped.
"""

import dataclasses
import json
import math
import queue
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from experiments.plots import plot_swap_sweep
from odeness import io
from odeness.config import TrainConfig
from odeness.data import load_dataset
from odeness.errors import RunFailed
from odeness.integrate import Integrator
from odeness.parallel import Layout, placement
from odeness.runs import check_run_folder
from odeness.solvers import solver
from odeness.swap import (
    SwapResult,
    check_threshold,
    critical_step_size,
    evaluate_solver_swap,
    swap_configurations,
)
from odeness.training import check_data, train

FIGURE = "accuracy_vs_test_steps.png"


def _label(config: TrainConfig) -> str:
    if config.steps is not None:
        return f"{config.solver}-n{config.steps:04d}"
    return f"{config.solver}-tol{config.tol:.0e}"


def _swap_rows(config: TrainConfig, seed: int, swap: SwapResult) -> list[dict]:
    train = (
        {"train_steps": config.steps, "train_dt": swap.step_size}
        if config.steps is not None
        else {"train_tol": config.tol}
    )
    rows = []
    for r in swap.rows:
        test = (
            {"test_rtol": r.rtol, "test_atol": r.atol}
            if r.adaptive
            else {"test_steps": r.steps}
        )
        rows.append(
            {
                "seed": seed,
                "train_solver": config.solver,
                **train,
                "train_accuracy": swap.train_accuracy,
                "train_nfe": swap.train_nfe,
                "test_solver": r.solver,
                "factor": r.factor,
                **test,
                "reference": r.factor is None,
                "accuracy": r.accuracy,
                "nfe": r.nfe,
                "at_least_as_accurate": r.at_least_as_accurate,
                "max_gap": swap.max_gap,
            }
        )
    return rows


class Failure(NamedTuple):
    """A training configuration of a sweep that gave no result (it diverged, or a solve
    failed): reported, never evaluated, and never counted as an ODE."""

    label: str
    train_value: float
    """The training step count or tolerance."""
    message: str


def run_sweep(
    base: TrainConfig,
    out_dir: str | Path,
    *,
    steps: Sequence[int] | None = None,
    tols: Sequence[float] | None = None,
    test_solvers: Sequence[str] = ("euler", "midpoint", "rk4"),
    factors: Sequence[float] = (0.5, 0.75, 1.0, 1.5, 2.0),
    reference: tuple[str, int] | None = ("rk4", 256),
    threshold: float = 0.1,
    jobs: int = 1,
    progress: bool = True,
    parallel: Layout = "seeds",
) -> list[dict]:
    """Train `base` at each step count (or tolerance), swap solvers, and summarise.

    **Arguments:**

    - `base`: the training configuration; its `steps`/`tol` is replaced by each grid value.
    - `out_dir`: the sweep folder (see the module docstring); resumed if it exists.
    - `steps` / `tols`: the grid (exactly one).
    - `test_solvers`, `factors`: the solver swap (see `evaluate_solver_swap`).
    - `reference`: `(solver name, steps)` of a fine reference solve, or None.
    - `threshold`: accuracy drop that marks a model as not an ODE (`critical_step_size`).
    - `jobs`: training configurations run at once, in threads (each its own compiled
        program; see the README's Performance section for what it gains). Results do not
        depend on it. A multi-process run trains one configuration at a time (all
        processes must issue the same collectives in the same order).
    - `parallel`: the device layout of each training program (`odeness.parallel`;
        default: the seeds split over all devices).

    **Returns:** all result rows (also written to `results.jsonl`).

    **Raises:** `ValueError` for a bad grid, factor, threshold, data set or batch size,
    or a folder holding another sweep, before anything is written;
    `odeness.errors.RunFailed` after the sweep if a configuration diverged or a solve
    failed (the summary reports it; the other configurations still run).
    """
    if (steps is None) == (tols is None):
        raise ValueError("give exactly one of steps and tols")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    placement(parallel, len(base.seeds), base.batch_size)  # a bad layout fails here
    if jax.process_count() > 1:
        jobs = 1
    grid = list(steps if steps is not None else tols)  # pyright: ignore[reportArgumentType]
    if not grid or len(set(grid)) != len(grid):
        raise ValueError(f"the grid must be non-empty and without repeats, got {grid!r}")
    check_threshold(threshold)
    if reference is not None:
        ref_solver, ref_steps = reference
        ref_integ = Integrator(solver(ref_solver), steps=ref_steps)
    else:
        ref_integ = None
    configs = [
        base.replace(steps=g, tol=None)
        if steps is not None
        else base.replace(steps=None, tol=g)
        for g in grid
    ]  # validates each value
    for config in configs:  # unknown solvers and bad factors fail here, before training
        swap_configurations(config.integrator(), test_solvers, factors, ref_integ)
    out = io.check_folder(out_dir, "sweep folder")
    base_fields = {k: v for k, v in base.to_dict().items() if k not in ("steps", "tol")}
    spec = {
        "base": base_fields,
        "steps": list(steps) if steps is not None else None,
        "tols": list(tols) if tols is not None else None,
        "test_solvers": list(test_solvers),
        "factors": list(factors),
        "reference": list(reference) if reference is not None else None,
        "threshold": threshold,
    }
    spec = json.loads(json.dumps(spec))  # as it reads back from disk
    if (out / "sweep.json").exists():
        difference = io.first_difference(io.read_json(out / "sweep.json"), spec)
        if difference is not None:
            raise ValueError(
                f"{out} holds another sweep ({difference}); choose another --out"
            )
    data = load_dataset(base.dataset, seed=base.data_seed, data_dir=base.data_dir)
    check_data(base, data)
    for config in configs:
        check_run_folder(out / "runs" / _label(config), config)
    io.remove_stale_temporaries(out)
    io.write_json(out / "sweep.json", spec)
    start = time.perf_counter()

    def run_one(i: int, slot: int) -> list[dict] | Failure:
        config = configs[i]
        run_dir = out / "runs" / _label(config)
        swap_path = run_dir / "swap.jsonl"
        header = f"[{i + 1}/{len(configs)}] {_label(config)}"
        # The swap is written once training has finished and saved its checkpoint.
        if swap_path.exists():
            print(f"{header}: done earlier, skipped", flush=True)
            return io.read_jsonl(swap_path)
        t0 = time.perf_counter()
        try:
            # Resumes from the checkpoint; a finished run returns at once.
            result = train(
                config,
                run_dir=run_dir,
                data=data,
                progress=progress,
                progress_position=slot,
                parallel=parallel,
            )
            t1 = time.perf_counter()
            config_rows, swaps = [], []
            for j, seed in enumerate(config.seeds):
                swap = evaluate_solver_swap(
                    result.model(j),
                    result.integrator,
                    data.x_test,
                    data.y_test,
                    solvers=test_solvers,
                    factors=factors,
                    reference=ref_integ,
                )
                swaps.append(swap)
                config_rows.extend(_swap_rows(config, seed, swap))
        except RunFailed as e:
            print(f"{header}: FAILED: {e}", flush=True)
            return Failure(_label(config), grid[i], str(e))
        io.write_jsonl(swap_path, config_rows)
        print(
            f"{header}: trained in {t1 - t0:.0f}s, swap in {time.perf_counter() - t1:.0f}s;"
            f" test acc {np.mean([sw.train_accuracy for sw in swaps]):.3f}, max gap "
            f"{np.mean([sw.max_gap for sw in swaps]):.3f} "
            f"(elapsed {time.perf_counter() - start:.0f}s)",
            flush=True,
        )
        return config_rows

    # Costliest first (most steps / tightest tolerance), so that `jobs` threads finish
    # together; XLA releases the GIL, so the threads' programs run on separate cores.
    by_cost = sorted(range(len(configs)), key=lambda i: -grid[i] if steps else grid[i])
    results: dict[int, list[dict] | Failure] = {}
    if jobs == 1:
        for i in by_cost:
            results[i] = run_one(i, 0)
    else:
        free = queue.SimpleQueue()
        for slot in range(jobs):
            free.put(slot)

        def in_slot(i: int) -> list[dict] | Failure:
            slot = free.get()
            try:
                return run_one(i, slot)
            finally:
                free.put(slot)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {i: pool.submit(in_slot, i) for i in by_cost}
            for i, future in futures.items():
                results[i] = future.result()
    rows, failures = [], []
    for i in range(len(configs)):
        result = results[i]
        if isinstance(result, Failure):
            failures.append(result)
        else:
            rows.extend(result)
    write_summary(
        rows,
        out,
        threshold=threshold,
        fixed=steps is not None,
        train_solver=base.solver,
        failures=failures,
    )
    if failures:
        raise RunFailed(
            f"{len(failures)} of {len(configs)} training configurations gave no result "
            f"(see {out / 'summary.md'}): "
            + "; ".join(f"{f.label}: {f.message}" for f in failures)
        )
    return rows


def _mean_std(values) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def write_summary(
    rows: list[dict],
    out_dir: str | Path,
    *,
    threshold: float,
    fixed: bool,
    train_solver: str,
    failures: Sequence[Failure] = (),
) -> None:
    """Write `results.jsonl`, `summary.md`, `critical_step.json` and the figure.

    `fixed`: the grid is of step counts (else of tolerances). A failed configuration
    (`failures`) has no rows; it is listed as such and counts as not an ODE.
    """
    out = Path(out_dir)
    io.write_jsonl(out / "results.jsonl", rows)
    key = "train_steps" if fixed else "train_tol"
    by_train: dict = defaultdict(list)
    for r in rows:
        by_train[r[key]].append(r)
    failed = {f.train_value: f for f in failures}
    trains = sorted(set(by_train) | set(failed), reverse=not fixed)

    def per_seed(rs, field):
        return list({r["seed"]: r[field] for r in rs}.values())

    gaps = {t: per_seed(by_train[t], "max_gap") for t in trains if t not in failed}
    lines = [
        f"# Solver swap: {train_solver} on {len(trains)} training "
        f"{'step counts' if fixed else 'tolerances'}",
        "",
        f"Mean ± std over {len(per_seed(rows, 'max_gap'))} seeds, accuracy on the "
        "whole test set. `max gap`: largest accuracy drop from the training "
        "configuration over test configurations at least as accurate (same or higher "
        f"order, at least as many steps / no looser tolerance). ODE: max gap ≤ "
        f"{threshold}.",
        "",
    ]
    ref_rows = [r for r in rows if r["reference"]]
    ref_label = (
        f"reference {ref_rows[0]['test_solver']} {ref_rows[0]['test_steps']} steps"
        if ref_rows
        else None
    )
    head = (
        ["training " + ("n" if fixed else "tol")]
        + (["h"] if fixed else [])
        + ["NFE/forward", "acc (training solver)"]
        + ([ref_label] if ref_label else [])
        + ["max gap", "ODE?"]
    )
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in trains:
        rs = by_train[t]
        cells = [str(t) if fixed else f"{t:g}"]
        if fixed:
            cells.append(f"{1 / t:.4g}")
        if t in failed:
            cells += ["—"] * (len(head) - len(cells) - 1) + ["no result (below)"]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        cells += [
            f"{np.mean(per_seed(rs, 'train_nfe')):.0f}",
            _mean_std(per_seed(rs, "train_accuracy")),
        ]
        if ref_label:
            cells.append(_mean_std([r["accuracy"] for r in rs if r["reference"]]))
        ok = np.mean(gaps[t]) <= threshold
        cells += [_mean_std(gaps[t]), "yes" if ok else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    test_solvers = list(dict.fromkeys(r["test_solver"] for r in rows if not r["reference"]))
    factors = list(dict.fromkeys(r["factor"] for r in rows if not r["reference"]))
    for s in test_solvers:
        lines += [
            "",
            f"## Test solver {s}: accuracy by test factor "
            f"({'steps = round(factor × n)' if fixed else 'tol × factor'})",
            "",
            "| training | " + " | ".join(f"×{f:g}" for f in factors) + " |",
            "|---|" + "---|" * len(factors),
        ]
        for t in trains:
            if t in failed:
                cells = ["—"] * len(factors)
                lines.append(f"| {t if fixed else f'{t:g}'} | " + " | ".join(cells) + " |")
                continue
            cells = []
            for f in factors:
                accs = [
                    r["accuracy"]
                    for r in by_train[t]
                    if r["test_solver"] == s and r["factor"] == f
                ]
                cells.append(_mean_std(accs))
            lines.append(f"| {t if fixed else f'{t:g}'} | " + " | ".join(cells) + " |")
    # A configuration without a result is not an ODE.
    gaps_or_failed = {t: gaps.get(t, [math.inf]) for t in trains}
    if fixed:
        h_star = critical_step_size(
            {1 / t: g for t, g in gaps_or_failed.items()}, threshold
        )
        critical = {
            "threshold": threshold,
            "h_star": h_star,
            "steps_star": None if h_star is None else round(1 / h_star),
            "mean_max_gap": {str(t): float(np.mean(g)) for t, g in gaps.items()},
        }
        verdict = (
            "no training step size kept its accuracy"
            if h_star is None
            else f"h* = {h_star:.4g} (n = {round(1 / h_star)} steps): every model "
            f"trained with h ≤ h* keeps its accuracy under more accurate solvers"
        )
    else:
        tol_star = critical_step_size(gaps_or_failed, threshold)
        critical = {
            "threshold": threshold,
            "tol_star": tol_star,
            "mean_max_gap": {f"{t:g}": float(np.mean(g)) for t, g in gaps.items()},
        }
        verdict = (
            "no training tolerance kept its accuracy"
            if tol_star is None
            else f"tol* = {tol_star:g}: every model trained with tol ≤ tol* keeps "
            "its accuracy under more accurate solvers"
        )
    lines += ["", f"**Critical {'step size' if fixed else 'tolerance'}:** {verdict}.", ""]
    if failures:
        critical["failed"] = {f.label: f.message for f in failures}
        lines += [
            "## Configurations without a result (counted as not an ODE)",
            "",
            *(f"- `{f.label}`: {f.message}" for f in failures),
            "",
        ]
    io.write_json(out / "critical_step.json", critical)
    io.atomic_write_text(out / "summary.md", "\n".join(lines))
    if rows:
        plot_swap_sweep(
            rows, out / FIGURE, title=f"trained with {train_solver}; mean over seeds"
        )


def quick(config: TrainConfig) -> TrainConfig:
    """A smoke-test version of `config`: few iterations and two seeds."""
    return dataclasses.replace(
        config,
        iterations=min(config.iterations, 200),
        seeds=config.seeds[:2],
        log_every=50,
        checkpoint_every=100,
    )
