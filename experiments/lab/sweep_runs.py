"""A sweep over training step sizes (or tolerances), each run followed by its solver swap.

Folder layout of `run_sweep(options)`, in `options.out`:

- `sweep.json`: what the sweep is (checked on resume);
- `runs/<label>/`: each training run's folder (`config.json`, `metrics.jsonl`,
  `checkpoint.eqx`) and `swap.jsonl`, its solver-swap rows;
- `results.jsonl`: one row per seed × training configuration × test configuration;
- `summary.md`, `critical_step.json` and `accuracy_vs_test_steps.png`.

Every file is written atomically; an interrupted sweep resumes where it stopped.
"""

import dataclasses
import functools
import itertools
import json
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import jax
import numpy as np

import odeness
from experiments.lab.axes import Axis, StepsAxis, TolerancesAxis, axis
from experiments.lab.figures import SwapCurve, plot_swap_sweep
from experiments.lab.markdown import MeanStd, markdown_table, mean_std
from experiments.lab.options import TrainingOptions, check_solver, option
from odeness import files

FIGURE = "accuracy_vs_test_steps.png"
STEPS = (1, 2, 4, 8, 16, 32, 64, 128)
"""The default grid: the training step counts of the paper's sweeps (h = 1 ... 1/128)."""
T = TypeVar("T")


def run_label(config: odeness.TrainConfig) -> str:
    """The name of a configuration's run folder under `runs/`."""
    if isinstance(config.control, odeness.Steps):
        return f"{config.solver}-n{config.steps:04d}"
    return f"{config.solver}-tol{config.tol:.0e}"


class SweepRow(NamedTuple):
    """One seed × training configuration × test configuration of a sweep: the seed's
    test `accuracy` and `nfe` (function evaluations per forward pass) with its training
    setting `train`, one row of its solver swap (`test`, scored by accuracy) and the
    seed's `max_gap` (the same on each of its rows)."""

    seed: int
    train: odeness.Setting
    accuracy: float
    nfe: float
    test: odeness.SwapRow
    max_gap: float

    @property
    def reference(self) -> bool:
        return self.test.factor is None

    @property
    def value(self) -> float:
        """The training step count or tolerance."""
        return axis(self.train.control).value(self.train.control)

    @property
    def test_value(self) -> float:
        """The test step count or rtol."""
        return axis(self.test.setting.control).value(self.test.setting.control)

    def to_json(self) -> dict:
        """The row as written to `results.jsonl`: only the settings that apply."""
        test = self.test
        return {
            "seed": self.seed,
            "train_solver": self.train.solver,
            **axis(self.train.control).columns("train", self.train),
            "train_accuracy": self.accuracy,
            "train_nfe": self.nfe,
            "test_solver": test.setting.solver,
            "factor": test.factor,
            **axis(test.setting.control).columns("test", test.setting),
            "reference": self.reference,
            "accuracy": test.score,
            "nfe": test.nfe,
            "at_least_as_accurate": test.at_least_as_accurate,
            "max_gap": self.max_gap,
        }

    @classmethod
    def from_json(cls, row: dict) -> "SweepRow":
        def setting(prefix: str) -> odeness.Setting:
            kind = StepsAxis() if f"{prefix}_steps" in row else TolerancesAxis()
            return odeness.Setting(row[f"{prefix}_solver"], kind.read(row, prefix))

        swapped = (row[k] for k in ("factor", "accuracy", "nfe", "at_least_as_accurate"))
        test = odeness.SwapRow(setting("test"), *swapped)
        train = (row["train_accuracy"], row["train_nfe"])
        return cls(row["seed"], setting("train"), *train, test, row["max_gap"])


def read_rows(path: str | Path) -> list[SweepRow]:
    """The rows of a `results.jsonl` or `swap.jsonl` written by a sweep."""
    return [SweepRow.from_json(r) for r in files.read_jsonl(path)]


class Failure(NamedTuple):
    """A training configuration (`label`, its `control`) that gave no result (it
    diverged, or a solve failed): reported, never evaluated, never counted as an ODE."""

    label: str
    control: odeness.AbstractControl
    message: str


def _reference(text: str) -> tuple[list | None, odeness.Integrator | None]:
    """`--reference SOLVER:STEPS` (or `none`): as `sweep.json` holds it, and its solve."""
    if text.lower() == "none":
        return None, None
    name, sep, steps = text.partition(":")
    if not sep or not steps.isdigit() or int(steps) < 1:
        raise ValueError(
            f"--reference must be SOLVER:STEPS (e.g. rk4:256) or none, got {text!r}"
        )
    check_solver("--reference", name)
    return [name, int(steps)], odeness.Integrator(odeness.solver(name), steps=int(steps))


@dataclasses.dataclass(frozen=True)
class SweepOptions(TrainingOptions):
    """Train a Neural ODE at each step size (or tolerance) of a grid and swap solvers.

        python experiments/sweep.py --solver euler --steps 1 2 4 8 16 32 64 128 \\
            --out results/sweep-euler

    Writes results.jsonl, summary.md, critical_step.json and a figure into --out; an
    interrupted sweep resumes from its checkpoints (see `experiments.lab.sweep_runs`).
    """

    command = "sweep"
    published = ("summary.md", "critical_step.json", FIGURE)

    solver: str = option("euler", "training solver")
    steps: tuple[int, ...] | None = option(
        None, "training step counts on [0, 1] (default: 1 2 4 ... 128)"
    )
    tols: tuple[float, ...] | None = option(None, "training tolerances")
    test_solvers: tuple[str, ...] | None = option(
        None,
        "the swap's solvers (default: euler midpoint rk4 for steps, the training solver "
        "for tols)",
    )
    factors: tuple[float, ...] | None = option(
        None, "the swap's factors (default: 0.5 0.75 1 1.5 2 for steps, 0.1 1 10 for tols)"
    )
    reference: str = option("rk4:256", "fine reference solve SOLVER:STEPS, or 'none'")
    threshold: float = option(0.1, "accuracy drop that marks a model as not an ODE")
    jobs: int = option(2, "training configurations run at once (threads; default 2)")
    out: str | None = option(None, "output folder (default results/sweep-SOLVER)")
    base: odeness.TrainConfig | None = None
    """In Python, a training configuration of one's own (its `steps` or `tol` replaced
    by each grid value) instead of the one the training options and `solver` give."""

    def __post_init__(self):
        if None not in (self.steps, self.tols):
            raise ValueError(
                f"give --steps or --tols, not both (got {self.steps}, {self.tols})"
            )

    @property
    def folder(self) -> Path:
        return Path(self.out or f"results/sweep-{self.solver}")

    @property
    def grid(self) -> list[odeness.AbstractControl]:
        """The training controls: `Steps` of `steps` (default `STEPS`), or `Tolerances`."""
        if self.tols is not None:
            return [odeness.Tolerances(t) for t in self.tols]
        return [odeness.Steps(n) for n in (STEPS if self.steps is None else self.steps)]

    def check(self) -> None:
        _plan(self)

    def run(self) -> str:
        run_sweep(self)
        return ""


class _Plan(NamedTuple):
    """A checked sweep: its training configurations, the keyword arguments of
    `odeness.evaluate_solver_swap` (`swap`) and its `sweep.json` (`spec`)."""

    configs: list[odeness.TrainConfig]
    grid: list[odeness.AbstractControl]
    axis: Axis
    swap: dict
    spec: dict


def _plan(options: SweepOptions) -> _Plan:
    """Check everything that needs no data or files: the grid, the swap plan, the
    threshold (each configuration validates itself)."""
    grid, jobs = options.grid, options.jobs
    values = [axis(c).value(c) for c in grid]
    if not grid or len(set(values)) != len(values):
        raise ValueError(f"the grid must be non-empty and without repeats, got {values!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    for name in options.test_solvers or ():
        check_solver("--test-solvers", name)
    odeness.Accuracy().check_threshold(options.threshold)
    reference, ref_integ = _reference(options.reference)
    base = options.config(solver=options.solver) if options.base is None else options.base
    configs = [base.controlled(c) for c in grid]
    solvers, factors = odeness.default_swap(configs[0].integrator())
    solvers = tuple(solvers if options.test_solvers is None else options.test_solvers)
    factors = tuple(factors if options.factors is None else options.factors)
    for config in configs:  # unknown solvers and bad factors fail here, before training
        odeness.swap_configurations(config.integrator(), solvers, factors, ref_integ)
    along = axis(grid[0])
    spec = {
        "base": _base(configs[0]),
        **{"steps": None, "tols": None, along.key: values},
        "test_solvers": list(solvers),
        "factors": list(factors),
        "reference": reference,
        "threshold": options.threshold,
    }
    spec = json.loads(json.dumps(spec))  # as it reads back from disk
    swap = {"solvers": solvers, "factors": factors, "reference": ref_integ}
    return _Plan(configs, grid, along, swap, spec)


def _base(config: odeness.TrainConfig) -> dict:
    """`sweep.json`'s `base`: the fields of `config` but its control."""
    return {k: v for k, v in config.to_dict().items() if k not in ("steps", "tol")}


def _check_folder(plan: _Plan, out: Path) -> None:
    """Refuse a folder of another sweep. `sweep.json`'s base is read as the current
    `TrainConfig` reads it: a field added since it was written takes its default."""
    if (out / "sweep.json").exists():
        saved = files.read_json(out / "sweep.json")
        try:
            full = odeness.TrainConfig.from_dict({**saved["base"], "steps": 1, "tol": None})
            saved["base"] = json.loads(json.dumps(_base(full)))
        except (KeyError, TypeError, ValueError):
            pass  # compared as it is: the difference names the field
        difference = files.first_difference(saved, plan.spec)
        if difference is not None:
            raise ValueError(
                f"{out} holds another sweep ({difference}); choose another --out"
            )
    for config in plan.configs:
        odeness.check_run_folder(out / "runs" / run_label(config), config)


def run_sweep(options: SweepOptions) -> list[SweepRow]:
    """Train at each grid value of `options`, swap solvers, and summarise into
    `options.folder` (see the module docstring); an existing folder is resumed.

    The swap is `odeness.evaluate_solver_swap` with `test_solvers`, `factors` (default:
    `odeness.default_swap` of the training integrator) and the `reference` solve. `jobs`
    configurations train at once, in threads (one at a time on several processes); the
    results do not depend on it.

    **Returns:** all result rows (also written to `results.jsonl`).

    **Raises:** `ValueError` for a bad option or a folder of another sweep, before
    anything is written; `odeness.RunFailed` after the sweep if a configuration gave no
    result (the others still run); `odeness.Interrupted` when a stop is requested, after
    the configuration in flight has saved what it finished.
    """
    options.start_processes()
    plan = _plan(options)
    out = files.check_folder(options.folder, "sweep folder")
    data = plan.configs[0].load_dataset()
    odeness.check_training(plan.configs[0], data, parallel=options.parallel)
    _check_folder(plan, out)
    with files.folder_lock(out, "sweep folder"):
        return _run_plan(plan, out, data, options)


def _run_plan(plan: _Plan, out: Path, data, options: SweepOptions) -> list[SweepRow]:
    files.remove_stale_temporaries(out)
    files.write_json(out / "sweep.json", plan.spec)
    swap = functools.partial(
        odeness.evaluate_solver_swap, x=data.x_test, y=data.y_test, **plan.swap
    )
    train = functools.partial(
        odeness.train, data=data, progress=options.progress, parallel=options.parallel
    )
    start = time.perf_counter()

    def run_one(i: int, slot: int) -> list[SweepRow] | Failure:
        """Train configuration `i` (or resume it) and swap solvers on each seed; stop
        after it if a stop was requested."""
        config, label = plan.configs[i], run_label(plan.configs[i])
        header, run_dir = f"[{i + 1}/{len(plan.configs)}] {label}", out / "runs" / label
        # The swap is written once training has finished and saved its checkpoint.
        if (run_dir / "swap.jsonl").exists():
            print(f"{header}: done earlier, skipped", flush=True)
            return read_rows(run_dir / "swap.jsonl")
        t0 = time.perf_counter()
        try:  # resumes from the checkpoint; a finished run returns at once
            result = train(config, run_dir=run_dir, progress_position=slot)
            t1 = time.perf_counter()
            swaps = [
                swap(result.model(j), result.integrator) for j in range(len(config.seeds))
            ]
        except odeness.RunFailed as e:
            print(f"{header}: FAILED: {e}", flush=True)
            return Failure(label, plan.grid[i], str(e))
        rows = [
            SweepRow(seed, sw.train.setting, sw.train_score, sw.train_nfe, r, sw.max_gap)
            for seed, sw in zip(config.seeds, swaps, strict=True)
            for r in sw.rows
        ]
        files.write_jsonl(run_dir / "swap.jsonl", [r.to_json() for r in rows])
        print(
            f"{header}: trained in {t1 - t0:.0f}s, swap in {time.perf_counter() - t1:.0f}s;"
            f" test acc {np.mean([sw.train_score for sw in swaps]):.3f}, max gap "
            f"{np.mean([sw.max_gap for sw in swaps]):.3f} "
            f"(elapsed {time.perf_counter() - start:.0f}s)",
            flush=True,
        )
        odeness.raise_if_stopped(f"after {label}: {out} keeps every finished run")
        return rows

    # Costliest first (most steps / tightest tolerance), so that `jobs` threads finish
    # together; XLA releases the GIL, so the threads' programs run on separate cores.
    by_cost = sorted(range(len(plan.grid)), key=lambda i: plan.grid[i].size())
    results = _in_threads(run_one, by_cost, 1 if jax.process_count() > 1 else options.jobs)
    rows = [row for r in results if not isinstance(r, Failure) for row in r]
    failures = [r for r in results if isinstance(r, Failure)]
    base = plan.configs[0]
    write_summary(
        rows,
        out,
        threshold=options.threshold,
        along=plan.axis,
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


def _in_threads(fn: Callable[[int, int], T], order: Sequence[int], jobs: int) -> list[T]:
    """`[fn(i, slot) for i in range(len(order))]`, run in `order` by `jobs` threads; `slot`
    (< `jobs`, its thread's) tells a running call which progress-bar line is its own."""
    if jobs == 1:
        done = {i: fn(i, 0) for i in order}
        return [done[i] for i in range(len(order))]
    slots, local = itertools.count(), threading.local()
    with ThreadPoolExecutor(
        jobs, initializer=lambda: setattr(local, "slot", next(slots))
    ) as pool:
        futures = {i: pool.submit(lambda i: fn(i, local.slot), i) for i in order}
        try:
            return [futures[i].result() for i in range(len(order))]
        except (KeyboardInterrupt, odeness.Interrupted):
            # Ctrl-C in this thread (no `stop_on_signals`), or a stop: the other threads
            # stop at the end of their chunk and save it, instead of training on.
            odeness.request_stop()
            pool.shutdown(cancel_futures=True)
            odeness.cancel_stop()
            raise


def _per_seed(rows: Iterable[SweepRow], value: Callable[[SweepRow], float]) -> list:
    """`value` of each seed's rows (the same on every row of a seed), once per seed."""
    return list({r.seed: value(r) for r in rows}.values())


def _grouped(rows: Iterable[SweepRow], key: Callable[[SweepRow], Any]) -> dict[Any, list]:
    """`rows` by `key`, in the order of their first rows; an absent key has no rows."""
    groups = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return groups


def write_summary(
    rows: list[SweepRow],
    out_dir: str | Path,
    *,
    threshold: float,
    along: Axis,
    train_solver: str,
    failures: Sequence[Failure] = (),
    regularise: Sequence[tuple[str, float]] = (),
) -> None:
    """Write `results.jsonl`, `summary.md`, `critical_step.json` and the figure.

    `along`: the grid's axis. A failed configuration (`failures`) has no rows; it is
    listed as such and counts as not an ODE. `regularise`: the training's regularisers
    (`TrainConfig.regularise`), in the title.
    """
    out = Path(out_dir)
    files.write_jsonl(out / "results.jsonl", [r.to_json() for r in rows])
    by_train = _grouped(rows, lambda r: r.value)
    failed = {along.value(f.control) for f in failures}
    trains = along.order(set(by_train) | failed)
    gaps = {
        t: _per_seed(by_train[t], lambda r: r.max_gap) for t in trains if t not in failed
    }
    # A configuration without a result is not an ODE.
    critical, verdict = along.critical(
        {t: gaps.get(t, [math.inf]) for t in trains}, threshold
    )
    critical["mean_max_gap"] = {along.cell(t): float(np.mean(g)) for t, g in gaps.items()}
    lines = [
        f"# Solver swap: {train_solver} on {len(trains)} training {along.what}"
        + "".join(f", {name} {value:g}" for name, value in regularise),
        "",
        f"Mean ± std over {len({r.seed for r in rows})} seeds, accuracy on the "
        "whole test set. `max gap`: largest accuracy drop from the training "
        "configuration over test configurations at least as accurate (same or higher "
        f"order, at least as many steps / no looser tolerance). ODE: max gap ≤ "
        f"{threshold}.",
        "",
        *_main_table(rows, by_train, trains, gaps, along, threshold),
        *_factor_tables(rows, trains, failed, along),
        "",
        f"**Critical {along.quantity}:** {verdict}.",
        "",
    ]
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
            swap_curves(rows, along),
            out / FIGURE,
            xlabel=along.x_label,
            base=along.x_base,
            title=f"trained with {train_solver}; mean over seeds",
        )


def swap_curves(rows: Sequence[SweepRow], along: Axis) -> list[SwapCurve]:
    """The figure's curves: per test solver and training configuration, the accuracy
    (mean and std over seeds) at each test value; the reference solve is left out."""
    tests = _grouped(
        (r for r in rows if not r.reference), lambda r: (r.test.setting.solver, r.value)
    )
    by_train = _grouped(rows, lambda r: r.value)

    def curve(test_solver: str, train: float) -> SwapCurve:
        scores = _grouped(tests[test_solver, train], lambda r: r.test_value)
        xs = sorted(scores)
        stats = [MeanStd.of(r.test.score for r in scores[x]) for x in xs]
        star, trained = None, by_train[train]
        if test_solver == trained[0].train.solver:
            star = (train, float(np.mean(_per_seed(trained, lambda r: r.accuracy))))
        mean, std = [m.mean for m in stats], [m.std for m in stats]
        return SwapCurve(
            test_solver, f"{along.symbol}={along.cell(train)}", xs, mean, std, star
        )

    solvers = dict.fromkeys(solver for solver, _ in tests)
    return [curve(s, t) for s in solvers for t in along.order(by_train)]


def _main_table(rows, by_train, trains, gaps, along: Axis, threshold) -> list[str]:
    """One line per training configuration: cost, accuracy, max gap, verdict."""
    refs = [r.test.setting for r in rows if r.reference]
    ref = [f"reference {s.solver} {s.control.label(s.length)}" for s in refs[:1]]
    head = [*along.head, "NFE/forward", "acc (training solver)", *ref, "max gap", "ODE?"]

    def cells(t: float) -> list[str]:
        if t not in gaps:  # failed
            return ["—"] * (len(head) - len(along.head) - 1) + ["no result (below)"]
        rs = by_train[t]
        return [
            f"{np.mean(_per_seed(rs, lambda r: r.nfe)):.0f}",
            mean_std(_per_seed(rs, lambda r: r.accuracy)),
            *([mean_std(r.test.score for r in rs if r.reference)] if ref else []),
            mean_std(gaps[t]),
            "yes" if np.mean(gaps[t]) <= threshold else "no",
        ]

    return markdown_table(head, [along.cells(t) + cells(t) for t in trains])


def _factor_tables(rows, trains, failed, along: Axis) -> list[str]:
    """Per test solver: the accuracy of each training configuration at each factor."""
    tests = [r for r in rows if not r.reference]
    factors = list(dict.fromkeys(r.test.factor for r in tests))
    scores = _grouped(tests, lambda r: (r.test.setting.solver, r.value, r.test.factor))
    lines = []
    for s in dict.fromkeys(r.test.setting.solver for r in tests):
        body = [
            [along.cell(t)]
            + [
                "—" if t in failed else mean_std(r.test.score for r in scores[s, t, f])
                for f in factors
            ]
            for t in trains
        ]
        lines += [
            "",
            f"## Test solver {s}: accuracy by test factor ({along.factor_rule})",
            "",
            *markdown_table(["training", *(f"×{f:g}" for f in factors)], body),
        ]
    return lines
