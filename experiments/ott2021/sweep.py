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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, TypeVar

import jax
import numpy as np

from experiments.plots import plot_swap_sweep
from experiments.tables import markdown_table, mean_std
from odeness import io
from odeness.config import TrainConfig
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
from odeness.training import check_data, load_data, train

FIGURE = "accuracy_vs_test_steps.png"
T = TypeVar("T")


def run_label(config: TrainConfig) -> str:
    """The name of a configuration's run folder under `runs/`."""
    if config.steps is not None:
        return f"{config.solver}-n{config.steps:04d}"
    return f"{config.solver}-tol{config.tol:.0e}"


class SweepRow(NamedTuple):
    """One seed × training configuration × test configuration of a sweep.

    Fixed-step training has `train_steps` and `train_dt`, adaptive training `train_tol`;
    fixed-step test configurations have `test_steps`, adaptive ones `test_rtol` and
    `test_atol` (the others are None).
    """

    seed: int
    train_solver: str
    train_steps: int | None
    train_dt: float | None
    train_tol: float | None
    train_accuracy: float
    train_nfe: float
    test_solver: str
    factor: float | None
    """The factor on the training steps or tolerance; None for the reference."""
    test_steps: int | None
    test_rtol: float | None
    test_atol: float | None
    accuracy: float
    nfe: float
    at_least_as_accurate: bool
    max_gap: float
    """The seed's `max_gap` (the same on each of its rows)."""

    @property
    def fixed(self) -> bool:
        """Whether training used fixed steps."""
        return self.train_steps is not None

    @property
    def train_value(self) -> float:
        """The training step count or tolerance."""
        value = self.train_steps if self.fixed else self.train_tol
        assert value is not None
        return value

    @property
    def test_value(self) -> float:
        """The test step count or rtol."""
        value = self.test_rtol if self.test_steps is None else self.test_steps
        assert value is not None
        return value

    @property
    def reference(self) -> bool:
        return self.factor is None

    @classmethod
    def of(cls, config: TrainConfig, seed: int, swap: SwapResult) -> list["SweepRow"]:
        """The rows of one seed's solver swap."""
        return [
            cls(
                seed,
                config.solver,
                config.steps,
                swap.step_size,
                config.tol,
                swap.train_score,
                swap.train_nfe,
                r.solver,
                r.factor,
                r.steps,
                r.rtol,
                r.atol,
                r.score,
                r.nfe,
                r.at_least_as_accurate,
                swap.max_gap,
            )
            for r in swap.rows
        ]

    def to_json(self) -> dict:
        """The row as written to `results.jsonl`: only the settings that apply."""
        train = (
            {"train_steps": self.train_steps, "train_dt": self.train_dt}
            if self.fixed
            else {"train_tol": self.train_tol}
        )
        test = (
            {"test_steps": self.test_steps}
            if self.test_steps is not None
            else {"test_rtol": self.test_rtol, "test_atol": self.test_atol}
        )
        return {
            "seed": self.seed,
            "train_solver": self.train_solver,
            **train,
            "train_accuracy": self.train_accuracy,
            "train_nfe": self.train_nfe,
            "test_solver": self.test_solver,
            "factor": self.factor,
            **test,
            "reference": self.reference,
            "accuracy": self.accuracy,
            "nfe": self.nfe,
            "at_least_as_accurate": self.at_least_as_accurate,
            "max_gap": self.max_gap,
        }

    @classmethod
    def from_json(cls, row: dict) -> "SweepRow":
        get = row.get
        return cls(
            row["seed"],
            row["train_solver"],
            get("train_steps"),
            get("train_dt"),
            get("train_tol"),
            row["train_accuracy"],
            row["train_nfe"],
            row["test_solver"],
            row["factor"],
            get("test_steps"),
            get("test_rtol"),
            get("test_atol"),
            row["accuracy"],
            row["nfe"],
            row["at_least_as_accurate"],
            row["max_gap"],
        )


def read_rows(path: str | Path) -> list[SweepRow]:
    """The rows of a `results.jsonl` or `swap.jsonl` written by a sweep."""
    return [SweepRow.from_json(r) for r in io.read_jsonl(path)]


class Failure(NamedTuple):
    """A training configuration of a sweep that gave no result (it diverged, or a solve
    failed): reported, never evaluated, and never counted as an ODE."""

    label: str
    train_value: float
    """The training step count or tolerance."""
    message: str


class _Plan(NamedTuple):
    """A checked sweep: its training configurations and its `sweep.json`."""

    configs: list[TrainConfig]
    grid: list[float]
    fixed: bool
    reference: Integrator | None
    spec: dict


def _plan(base, steps, tols, test_solvers, factors, reference, threshold) -> _Plan:
    """Check everything that needs no data or files: the grid, the swap plan, the
    threshold (each configuration validates itself)."""
    if (steps is None) == (tols is None):
        raise ValueError("give exactly one of steps and tols")
    fixed = steps is not None
    grid = list(steps if fixed else tols)
    if not grid or len(set(grid)) != len(grid):
        raise ValueError(f"the grid must be non-empty and without repeats, got {grid!r}")
    check_threshold(threshold)
    ref_integ = None
    if reference is not None:
        ref_integ = Integrator(solver(reference[0]), steps=reference[1])
    configs = [
        base.replace(steps=g, tol=None) if fixed else base.replace(steps=None, tol=g)
        for g in grid
    ]
    for config in configs:  # unknown solvers and bad factors fail here, before training
        swap_configurations(config.integrator(), test_solvers, factors, ref_integ)
    spec = {
        "base": {k: v for k, v in base.to_dict().items() if k not in ("steps", "tol")},
        "steps": list(steps) if fixed else None,
        "tols": None if fixed else list(tols),
        "test_solvers": list(test_solvers),
        "factors": list(factors),
        "reference": list(reference) if reference is not None else None,
        "threshold": threshold,
    }
    spec = json.loads(json.dumps(spec))  # as it reads back from disk
    return _Plan(configs, grid, fixed, ref_integ, spec)


def _saved_spec(path: Path) -> dict:
    """`sweep.json` as the current `TrainConfig` reads its base: a field added since it
    was written takes its default (e.g. `adjoint`, "backprop")."""
    saved = io.read_json(path)
    base = saved.get("base")
    if isinstance(base, dict):
        try:
            full = TrainConfig.from_dict({**base, "steps": 1, "tol": None}).to_dict()
        except (TypeError, ValueError):
            return saved  # compared as it is: the difference names the field
        full = {k: v for k, v in full.items() if k not in ("steps", "tol")}
        saved = {**saved, "base": json.loads(json.dumps(full))}
    return saved


def _check_folder(plan: _Plan, out: Path) -> None:
    if (out / "sweep.json").exists():
        difference = io.first_difference(_saved_spec(out / "sweep.json"), plan.spec)
        if difference is not None:
            raise ValueError(
                f"{out} holds another sweep ({difference}); choose another --out"
            )
    for config in plan.configs:
        check_run_folder(out / "runs" / run_label(config), config)


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
) -> list[SweepRow]:
    """Train `base` at each step count (or tolerance), swap solvers, and summarise.

    **Arguments:**

    - `base`: the training configuration; its `steps`/`tol` is replaced by each grid value.
    - `out_dir`: the sweep folder (see the module docstring); resumed if it exists.
    - `steps` / `tols`: the grid (exactly one).
    - `test_solvers`, `factors`: the solver swap (see `evaluate_solver_swap`).
    - `reference`: `(solver name, steps)` of a fine reference solve, or None.
    - `threshold`: accuracy drop that marks a model as not an ODE (`critical_step_size`).
    - `jobs`: training configurations run at once, in threads (each its own compiled
        program; see the docs' Performance page for what it gains). Results do not
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
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    placement(parallel, len(base.seeds), base.batch_size)  # a bad layout fails here
    plan = _plan(base, steps, tols, test_solvers, factors, reference, threshold)
    out = io.check_folder(out_dir, "sweep folder")
    data = load_data(base)
    check_data(base, data)
    _check_folder(plan, out)
    io.remove_stale_temporaries(out)
    io.write_json(out / "sweep.json", plan.spec)
    start = time.perf_counter()

    def run_one(i: int, slot: int) -> list[SweepRow] | Failure:
        header = f"[{i + 1}/{len(plan.configs)}] {run_label(plan.configs[i])}"
        return _run_config(
            plan,
            i,
            out,
            data,
            header=header,
            slot=slot,
            start=start,
            progress=progress,
            parallel=parallel,
        )

    # Costliest first (most steps / tightest tolerance), so that `jobs` threads finish
    # together; XLA releases the GIL, so the threads' programs run on separate cores.
    by_cost = sorted(
        range(len(plan.grid)), key=lambda i: -plan.grid[i] if plan.fixed else plan.grid[i]
    )
    results = _in_threads(run_one, by_cost, 1 if jax.process_count() > 1 else jobs)
    rows = [row for r in results if not isinstance(r, Failure) for row in r]
    failures = [r for r in results if isinstance(r, Failure)]
    write_summary(
        rows,
        out,
        threshold=threshold,
        fixed=plan.fixed,
        train_solver=base.solver,
        failures=failures,
    )
    if failures:
        raise RunFailed(
            f"{len(failures)} of {len(plan.configs)} training configurations gave no "
            f"result (see {out / 'summary.md'}): "
            + "; ".join(f"{f.label}: {f.message}" for f in failures)
        )
    return rows


def _run_config(
    plan: _Plan,
    i: int,
    out: Path,
    data,
    *,
    header: str,
    slot: int,
    start: float,
    progress: bool,
    parallel: Layout,
) -> list[SweepRow] | Failure:
    """Train configuration `i` (or resume it) and swap solvers on each seed."""
    config = plan.configs[i]
    run_dir = out / "runs" / run_label(config)
    swap_path = run_dir / "swap.jsonl"
    # The swap is written once training has finished and saved its checkpoint.
    if swap_path.exists():
        print(f"{header}: done earlier, skipped", flush=True)
        return read_rows(swap_path)
    t0 = time.perf_counter()
    spec = plan.spec
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
        swaps = [
            evaluate_solver_swap(
                result.model(j),
                result.integrator,
                data.x_test,
                data.y_test,
                solvers=spec["test_solvers"],
                factors=spec["factors"],
                reference=plan.reference,
            )
            for j in range(len(config.seeds))
        ]
    except RunFailed as e:
        print(f"{header}: FAILED: {e}", flush=True)
        return Failure(run_label(config), plan.grid[i], str(e))
    rows = [
        r
        for seed, sw in zip(config.seeds, swaps, strict=True)
        for r in SweepRow.of(config, seed, sw)
    ]
    io.write_jsonl(swap_path, [r.to_json() for r in rows])
    print(
        f"{header}: trained in {t1 - t0:.0f}s, swap in {time.perf_counter() - t1:.0f}s;"
        f" test acc {np.mean([sw.train_score for sw in swaps]):.3f}, max gap "
        f"{np.mean([sw.max_gap for sw in swaps]):.3f} "
        f"(elapsed {time.perf_counter() - start:.0f}s)",
        flush=True,
    )
    return rows


def _in_threads(fn: Callable[[int, int], T], order: Sequence[int], jobs: int) -> list[T]:
    """`[fn(i, slot) for i in range(len(order))]`, run in `order` by `jobs` threads; `slot`
    (< `jobs`) tells a running call which progress-bar line is its own."""
    results: dict[int, T] = {}
    if jobs == 1:
        for i in order:
            results[i] = fn(i, 0)
        return [results[i] for i in range(len(order))]
    free = queue.SimpleQueue()
    for slot in range(jobs):
        free.put(slot)

    def in_slot(i: int) -> T:
        slot = free.get()
        try:
            return fn(i, slot)
        finally:
            free.put(slot)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {i: pool.submit(in_slot, i) for i in order}
        return [futures[i].result() for i in range(len(order))]


def _per_seed(rows: Sequence[SweepRow], field: str) -> list:
    """`field` of each seed's rows (the same on every row of a seed), once per seed."""
    return list({r.seed: getattr(r, field) for r in rows}.values())


def write_summary(
    rows: list[SweepRow],
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
    io.write_jsonl(out / "results.jsonl", [r.to_json() for r in rows])
    by_train: dict[float, list[SweepRow]] = defaultdict(list)
    for r in rows:
        by_train[r.train_value].append(r)
    failed = {f.train_value: f for f in failures}
    trains = sorted(set(by_train) | set(failed), reverse=not fixed)
    gaps = {t: _per_seed(by_train[t], "max_gap") for t in trains if t not in failed}
    lines = [
        f"# Solver swap: {train_solver} on {len(trains)} training "
        f"{'step counts' if fixed else 'tolerances'}",
        "",
        f"Mean ± std over {len(_per_seed(rows, 'max_gap'))} seeds, accuracy on the "
        "whole test set. `max gap`: largest accuracy drop from the training "
        "configuration over test configurations at least as accurate (same or higher "
        f"order, at least as many steps / no looser tolerance). ODE: max gap ≤ "
        f"{threshold}.",
        "",
        *_main_table(by_train, trains, failed, gaps, fixed=fixed, threshold=threshold),
        *_factor_tables(rows, by_train, trains, failed, fixed=fixed),
    ]
    critical, verdict = _critical(gaps, trains, threshold, fixed=fixed)
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


def _train_cell(t: float, fixed: bool) -> str:
    return str(t) if fixed else f"{t:g}"


def _main_table(by_train, trains, failed, gaps, *, fixed, threshold) -> list[str]:
    """One line per training configuration: cost, accuracy, max gap, verdict."""
    refs = [r for rs in by_train.values() for r in rs if r.reference]
    ref_label = (
        f"reference {refs[0].test_solver} {refs[0].test_steps} steps" if refs else None
    )
    head = (
        ["training " + ("n" if fixed else "tol")]
        + (["h"] if fixed else [])
        + ["NFE/forward", "acc (training solver)"]
        + ([ref_label] if ref_label else [])
        + ["max gap", "ODE?"]
    )
    body = []
    for t in trains:
        rs = by_train[t]
        cells = [_train_cell(t, fixed)] + ([f"{1 / t:.4g}"] if fixed else [])
        if t in failed:
            body.append(
                cells + ["—"] * (len(head) - len(cells) - 1) + ["no result (below)"]
            )
            continue
        cells += [
            f"{np.mean(_per_seed(rs, 'train_nfe')):.0f}",
            mean_std(_per_seed(rs, "train_accuracy")),
        ]
        if ref_label:
            cells.append(mean_std(r.accuracy for r in rs if r.reference))
        ok = np.mean(gaps[t]) <= threshold
        body.append(cells + [mean_std(gaps[t]), "yes" if ok else "no"])
    return markdown_table(head, body)


def _factor_tables(rows, by_train, trains, failed, *, fixed) -> list[str]:
    """Per test solver: the accuracy of each training configuration at each factor."""
    tests = [r for r in rows if not r.reference]
    factors = list(dict.fromkeys(r.factor for r in tests))
    lines = []
    for s in dict.fromkeys(r.test_solver for r in tests):
        body = []
        for t in trains:
            if t in failed:
                body.append([_train_cell(t, fixed)] + ["—"] * len(factors))
                continue
            accs = [
                mean_std(
                    r.accuracy for r in by_train[t] if r.test_solver == s and r.factor == f
                )
                for f in factors
            ]
            body.append([_train_cell(t, fixed), *accs])
        lines += [
            "",
            f"## Test solver {s}: accuracy by test factor "
            f"({'steps = round(factor × n)' if fixed else 'tol × factor'})",
            "",
            *markdown_table(["training", *(f"×{f:g}" for f in factors)], body),
        ]
    return lines


def _critical(gaps, trains, threshold, *, fixed) -> tuple[dict, str]:
    """`critical_step.json`'s content and the summary's verdict."""
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
        return critical, verdict
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
    return critical, verdict


def quick(config: TrainConfig) -> TrainConfig:
    """A smoke-test version of `config`: few iterations and two seeds."""
    return dataclasses.replace(
        config,
        iterations=min(config.iterations, 200),
        seeds=config.seeds[:2],
        log_every=50,
        checkpoint_every=100,
    )
