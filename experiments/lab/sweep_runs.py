"""A sweep over training step sizes (or tolerances), each run followed by its solver swap.

Folder layout of `run_sweep(..., out_dir)`:

- `sweep.json`: what the sweep is (checked on resume);
- `runs/<label>/`: each training run's folder (`config.json`, `metrics.jsonl`,
  `checkpoint.eqx`) and `swap.jsonl`, its solver-swap rows;
- `results.jsonl`: one row per seed × training configuration × test configuration;
- `summary.md`, `critical_step.json` and `accuracy_vs_test_steps.png`.

Every file is written atomically; an interrupted sweep resumes where it stopped.
"""

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

import odeness
from experiments.lab.figures import SwapCurve, plot_swap_sweep
from experiments.lab.markdown import markdown_table, mean_std
from odeness import files

FIGURE = "accuracy_vs_test_steps.png"
T = TypeVar("T")


def run_label(config: odeness.TrainConfig) -> str:
    """The name of a configuration's run folder under `runs/`."""
    if config.steps is not None:
        return f"{config.solver}-n{config.steps:04d}"
    return f"{config.solver}-tol{config.tol:.0e}"


class TrainedWith(NamedTuple):
    """How one seed of a sweep was trained, and what it scored with its training solver.

    Fixed-step training has `steps` and `dt`, adaptive training `tol` (the others are
    None).
    """

    solver: str
    steps: int | None
    dt: float | None
    tol: float | None
    accuracy: float
    """Test accuracy with the training configuration."""
    nfe: float
    """Function evaluations per forward pass with the training configuration."""

    @property
    def fixed(self) -> bool:
        """Whether training used fixed steps."""
        return self.steps is not None

    @property
    def value(self) -> float:
        """The training step count or tolerance."""
        value = self.steps if self.fixed else self.tol
        assert value is not None
        return value


class SweepRow(NamedTuple):
    """One seed × training configuration × test configuration of a sweep: a row of the
    seed's solver swap (`odeness.SwapRow`, scored by accuracy) and how it was trained."""

    seed: int
    train: TrainedWith
    test: odeness.SwapRow
    max_gap: float
    """The seed's `max_gap` (the same on each of its rows)."""

    @property
    def reference(self) -> bool:
        return self.test.factor is None

    @property
    def test_value(self) -> float:
        """The test step count or rtol."""
        value = self.test.rtol if self.test.steps is None else self.test.steps
        assert value is not None
        return value

    @classmethod
    def of(
        cls, config: odeness.TrainConfig, seed: int, swap: odeness.SwapResult
    ) -> list["SweepRow"]:
        """The rows of one seed's solver swap."""
        train = TrainedWith(
            config.solver,
            config.steps,
            swap.step_size,
            config.tol,
            swap.train_score,
            swap.train_nfe,
        )
        return [cls(seed, train, r, swap.max_gap) for r in swap.rows]

    def to_json(self) -> dict:
        """The row as written to `results.jsonl`: only the settings that apply."""
        train, test = self.train, self.test
        trained = (
            {"train_steps": train.steps, "train_dt": train.dt}
            if train.fixed
            else {"train_tol": train.tol}
        )
        tested = (
            {"test_steps": test.steps}
            if test.steps is not None
            else {"test_rtol": test.rtol, "test_atol": test.atol}
        )
        return {
            "seed": self.seed,
            "train_solver": train.solver,
            **trained,
            "train_accuracy": train.accuracy,
            "train_nfe": train.nfe,
            "test_solver": test.solver,
            "factor": test.factor,
            **tested,
            "reference": self.reference,
            "accuracy": test.score,
            "nfe": test.nfe,
            "at_least_as_accurate": test.at_least_as_accurate,
            "max_gap": self.max_gap,
        }

    @classmethod
    def from_json(cls, row: dict) -> "SweepRow":
        get = row.get
        train = TrainedWith(
            row["train_solver"],
            get("train_steps"),
            get("train_dt"),
            get("train_tol"),
            row["train_accuracy"],
            row["train_nfe"],
        )
        steps = get("test_steps")
        test = odeness.SwapRow(
            row["test_solver"],
            row["factor"],
            steps,
            None if steps is None else 1 / steps,  # sweeps integrate on [0, 1]
            get("test_rtol"),
            get("test_atol"),
            row["accuracy"],
            row["nfe"],
            row["at_least_as_accurate"],
        )
        return cls(row["seed"], train, test, row["max_gap"])


def read_rows(path: str | Path) -> list[SweepRow]:
    """The rows of a `results.jsonl` or `swap.jsonl` written by a sweep."""
    return [SweepRow.from_json(r) for r in files.read_jsonl(path)]


class Failure(NamedTuple):
    """A training configuration of a sweep that gave no result (it diverged, or a solve
    failed): reported, never evaluated, and never counted as an ODE."""

    label: str
    train_value: float
    """The training step count or tolerance."""
    message: str


class _Plan(NamedTuple):
    """A checked sweep: its training configurations and its `sweep.json`."""

    configs: list[odeness.TrainConfig]
    grid: list[float]
    fixed: bool
    reference: odeness.Integrator | None
    test_solvers: tuple[str, ...]
    factors: tuple[float, ...]
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
    odeness.Accuracy().check_threshold(threshold)
    ref_integ = None
    if reference is not None:
        ref_integ = odeness.Integrator(odeness.solver(reference[0]), steps=reference[1])
    configs = [
        base.replace(steps=g, tol=None) if fixed else base.replace(steps=None, tol=g)
        for g in grid
    ]
    default_solvers, default_factors = odeness.default_swap(configs[0].integrator())
    test_solvers = tuple(default_solvers if test_solvers is None else test_solvers)
    factors = tuple(default_factors if factors is None else factors)
    for config in configs:  # unknown solvers and bad factors fail here, before training
        odeness.swap_configurations(config.integrator(), test_solvers, factors, ref_integ)
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
    return _Plan(configs, grid, fixed, ref_integ, test_solvers, factors, spec)


def _saved_spec(path: Path) -> dict:
    """`sweep.json` as the current `TrainConfig` reads its base: a field added since it
    was written takes its default (e.g. `adjoint`, "backprop")."""
    saved = files.read_json(path)
    base = saved.get("base")
    if isinstance(base, dict):
        try:
            full = odeness.TrainConfig.from_dict({**base, "steps": 1, "tol": None})
        except (TypeError, ValueError):
            return saved  # compared as it is: the difference names the field
        kept = {k: v for k, v in full.to_dict().items() if k not in ("steps", "tol")}
        saved = {**saved, "base": json.loads(json.dumps(kept))}
    return saved


def _check_folder(plan: _Plan, out: Path) -> None:
    if (out / "sweep.json").exists():
        difference = files.first_difference(_saved_spec(out / "sweep.json"), plan.spec)
        if difference is not None:
            raise ValueError(
                f"{out} holds another sweep ({difference}); choose another --out"
            )
    for config in plan.configs:
        odeness.check_run_folder(out / "runs" / run_label(config), config)


def run_sweep(
    base: odeness.TrainConfig,
    out_dir: str | Path,
    *,
    steps: Sequence[int] | None = None,
    tols: Sequence[float] | None = None,
    test_solvers: Sequence[str] | None = None,
    factors: Sequence[float] | None = None,
    reference: tuple[str, int] | None = ("rk4", 256),
    threshold: float = 0.1,
    jobs: int = 1,
    progress: bool = True,
    parallel: odeness.Layout = "seeds",
) -> list[SweepRow]:
    """Train `base` at each step count (or tolerance), swap solvers, and summarise.

    **Arguments:**

    - `base`: the training configuration; its `steps`/`tol` is replaced by each grid value.
    - `out_dir`: the sweep folder (see the module docstring); resumed if it exists.
    - `steps` / `tols`: the grid (exactly one).
    - `test_solvers`, `factors`: the solver swap (`odeness.evaluate_solver_swap`;
        default: `odeness.default_swap` of the training integrator).
    - `reference`: `(solver name, steps)` of a fine reference solve, or None.
    - `threshold`: accuracy drop that marks a model as not an ODE
        (`odeness.critical_step_size`, `odeness.critical_tolerance`).
    - `jobs`: training configurations run at once, in threads (each its own compiled
        program; see the docs' Performance page for what it gains). Results do not
        depend on it. A multi-process run trains one configuration at a time (all
        processes must issue the same collectives in the same order).
    - `parallel`: the device layout of each training program (`odeness.Layout`;
        default: the seeds split over all devices).

    **Returns:** all result rows (also written to `results.jsonl`).

    **Raises:** `ValueError` for a bad grid, factor, threshold, data set or batch size,
    or a folder holding another sweep, before anything is written; `odeness.RunFailed`
    after the sweep if a configuration diverged or a solve failed (the summary reports
    it; the other configurations still run).
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    plan = _plan(base, steps, tols, test_solvers, factors, reference, threshold)
    out = files.check_folder(out_dir, "sweep folder")
    data = base.load_dataset()
    odeness.check_training(base, data, parallel=parallel)
    _check_folder(plan, out)
    with files.folder_lock(out, "sweep folder"):
        return _run_plan(plan, out, data, base, threshold, jobs, progress, parallel)


def _run_plan(plan, out, data, base, threshold, jobs, progress, parallel):
    files.remove_stale_temporaries(out)
    files.write_json(out / "sweep.json", plan.spec)
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
        regularise=base.regularise,
        failures=failures,
    )
    if failures:
        raise odeness.RunFailed(
            f"{len(failures)} of {len(plan.configs)} training configurations gave no "
            f"result (see {out / 'summary.md'}): "
            + "; ".join(f"{f.label}: {f.message}" for f in failures)
        )
    return rows


def _run_config(
    plan: _Plan,
    i: int,
    out: Path,
    data: odeness.Dataset,
    *,
    header: str,
    slot: int,
    start: float,
    progress: bool,
    parallel: odeness.Layout,
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
    try:
        # Resumes from the checkpoint; a finished run returns at once.
        result = odeness.train(
            config,
            run_dir=run_dir,
            data=data,
            progress=progress,
            progress_position=slot,
            parallel=parallel,
        )
        t1 = time.perf_counter()
        swaps = [
            odeness.evaluate_solver_swap(
                result.model(j),
                result.integrator,
                data.x_test,
                data.y_test,
                solvers=plan.test_solvers,
                factors=plan.factors,
                reference=plan.reference,
            )
            for j in range(len(config.seeds))
        ]
    except odeness.RunFailed as e:
        print(f"{header}: FAILED: {e}", flush=True)
        return Failure(run_label(config), plan.grid[i], str(e))
    rows = [
        r
        for seed, sw in zip(config.seeds, swaps, strict=True)
        for r in SweepRow.of(config, seed, sw)
    ]
    files.write_jsonl(swap_path, [r.to_json() for r in rows])
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
        try:
            return [futures[i].result() for i in range(len(order))]
        except KeyboardInterrupt:
            # Ctrl-C in this thread (no `stop_on_signals`): the other threads stop at
            # the end of their chunk and save it, instead of training on to the end.
            odeness.request_stop()
            for future in futures.values():
                future.cancel()
            pool.shutdown(wait=True)
            odeness.cancel_stop()
            raise


def _per_seed(rows: Sequence[SweepRow], value: Callable[[SweepRow], float]) -> list:
    """`value` of each seed's rows (the same on every row of a seed), once per seed."""
    return list({r.seed: value(r) for r in rows}.values())


def _max_gap(r: SweepRow) -> float:
    return r.max_gap


def write_summary(
    rows: list[SweepRow],
    out_dir: str | Path,
    *,
    threshold: float,
    fixed: bool,
    train_solver: str,
    failures: Sequence[Failure] = (),
    regularise: Sequence[tuple[str, float]] = (),
) -> None:
    """Write `results.jsonl`, `summary.md`, `critical_step.json` and the figure.

    `fixed`: the grid is of step counts (else of tolerances). A failed configuration
    (`failures`) has no rows; it is listed as such and counts as not an ODE.
    `regularise`: the training's regularisers (`TrainConfig.regularise`), in the title.
    """
    out = Path(out_dir)
    files.write_jsonl(out / "results.jsonl", [r.to_json() for r in rows])
    by_train: dict[float, list[SweepRow]] = defaultdict(list)
    for r in rows:
        by_train[r.train.value].append(r)
    failed = {f.train_value: f for f in failures}
    trains = sorted(set(by_train) | set(failed), reverse=not fixed)
    gaps = {t: _per_seed(by_train[t], _max_gap) for t in trains if t not in failed}
    lines = [
        f"# Solver swap: {train_solver} on {len(trains)} training "
        f"{'step counts' if fixed else 'tolerances'}"
        + "".join(f", {name} {value:g}" for name, value in regularise),
        "",
        f"Mean ± std over {len(_per_seed(rows, _max_gap))} seeds, accuracy on the "
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
    files.write_json(out / "critical_step.json", critical)
    files.atomic_write_text(out / "summary.md", "\n".join(lines))
    if rows:
        plot_swap_sweep(
            swap_curves(rows),
            out / FIGURE,
            fixed=fixed,
            title=f"trained with {train_solver}; mean over seeds",
        )


def swap_curves(rows: Sequence[SweepRow]) -> list[SwapCurve]:
    """The figure's curves: per test solver and training configuration, the accuracy
    (mean and std over seeds) at each test value; the reference solve is left out."""
    fixed = rows[0].train.fixed
    solvers = list(dict.fromkeys(r.test.solver for r in rows if not r.reference))
    trains = sorted({r.train.value for r in rows}, reverse=not fixed)
    curves = []
    for test_solver in solvers:
        for train in trains:
            scores = defaultdict(list)
            for r in rows:
                if r.train.value == train and r.test.solver == test_solver:
                    if not r.reference:
                        scores[r.test_value].append(r.test.score)
            xs = sorted(scores)
            train_rows = [r for r in rows if r.train.value == train]
            star = None
            if test_solver == train_rows[0].train.solver:
                accuracy = np.mean(_per_seed(train_rows, lambda r: r.train.accuracy))
                star = (train, float(accuracy))
            curves.append(
                SwapCurve(
                    test_solver,
                    f"n={train}" if fixed else f"tol={train:g}",
                    xs,
                    [float(np.mean(scores[x])) for x in xs],
                    [float(np.std(scores[x])) for x in xs],
                    star,
                )
            )
    return curves


def _train_cell(t: float, fixed: bool) -> str:
    return str(t) if fixed else f"{t:g}"


def _main_table(by_train, trains, failed, gaps, *, fixed, threshold) -> list[str]:
    """One line per training configuration: cost, accuracy, max gap, verdict."""
    refs = [r for rs in by_train.values() for r in rs if r.reference]
    ref_label = (
        f"reference {refs[0].test.solver} {refs[0].test.steps} steps" if refs else None
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
            f"{np.mean(_per_seed(rs, lambda r: r.train.nfe)):.0f}",
            mean_std(_per_seed(rs, lambda r: r.train.accuracy)),
        ]
        if ref_label:
            cells.append(mean_std(r.test.score for r in rs if r.reference))
        ok = np.mean(gaps[t]) <= threshold
        body.append(cells + [mean_std(gaps[t]), "yes" if ok else "no"])
    return markdown_table(head, body)


def _factor_tables(rows, by_train, trains, failed, *, fixed) -> list[str]:
    """Per test solver: the accuracy of each training configuration at each factor."""
    tests = [r for r in rows if not r.reference]
    factors = list(dict.fromkeys(r.test.factor for r in tests))
    lines = []
    for s in dict.fromkeys(r.test.solver for r in tests):
        body = []
        for t in trains:
            if t in failed:
                body.append([_train_cell(t, fixed)] + ["—"] * len(factors))
                continue
            accs = [
                mean_std(
                    r.test.score
                    for r in by_train[t]
                    if r.test.solver == s and r.test.factor == f
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
        h_star = odeness.critical_step_size(
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
    tol_star = odeness.critical_tolerance(gaps_or_failed, threshold)
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
