"""Is the likelihood a likelihood? Continuous normalising flows (`odeness.CNF`) trained on
a 2-D density at each step count (or tolerance) of a grid, each seed evaluated with its
training solver and with accurate ones.

Folder layout of `run_flows(options)`, in `options.folder`:

- `runs/<label>/`: each training run (`odeness.train`'s folder) and `flow.jsonl`, its
  seeds' evaluations (`FlowRow`);
- `flows.json`, `summary.md`: every row, and the table with the critical step size (or
  tolerance): the coarsest training value from which every finer one keeps its
  log-likelihood under the swap (max gap ≤ `threshold` nats);
- `densities.png`: the coarsest and the finest model's density under its training
  solver and under the reference solve, side by side.

Every file is written atomically; an interrupted study resumes where it stopped.
"""

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

import odeness
from experiments.lab.figures import pyplot, save_figure
from experiments.lab.markdown import markdown_table, mean_std
from experiments.lab.options import AbstractOptions, TrainingOptions, check_solver, option
from odeness import files


def reference() -> odeness.Integrator:
    """The accurate solve: dopri5 at rtol = atol = 1e-5 (RNODE's test solver). Built when
    asked: an integrator holds arrays, and none may exist before a multi-process run
    joins (`jax.distributed.initialize`)."""
    return odeness.Integrator(odeness.solver("dopri5"), rtol=1e-5, atol=1e-5)


BOX = 6.0
"""The densities are drawn, and integrated, on `[-BOX, BOX]²`."""


class FlowRow(NamedTuple):
    """One seed of one training configuration: its log-likelihoods (nats per test
    point), the swap's max gap, the density's integral `∫p` on the box with the training
    solver and with `reference()`, and the training cost."""

    label: str
    value: float
    """The training step count or tolerance."""
    seed: int
    loglik: float
    loglik_reference: float
    max_gap: float
    mass: float
    mass_reference: float
    nfe: float
    """Field evaluations per training iteration (forward solve)."""
    trace_nfe: float
    """Jacobian-vector products of the trace (and penalties) per training iteration."""

    def to_json(self) -> dict:
        return self._asdict()


def _label(config: odeness.TrainConfig) -> str:
    control = config.control
    if isinstance(control, odeness.Steps):
        return f"{config.solver}-n{control.n:04d}"
    return f"{config.solver}-tol{config.tol:.0e}"


def _value(config: odeness.TrainConfig) -> float:
    control = config.control
    if isinstance(control, odeness.Steps):
        return control.n
    assert config.tol is not None
    return float(config.tol)


@dataclasses.dataclass(frozen=True)
class FlowOptions(TrainingOptions):
    """Train continuous normalising flows at each step count (or tolerance) of a grid on a
    2-D density and check whether the likelihood each reports is its model's.

        python experiments/flows.py --dataset ring8 --solver euler --steps 1 2 4 8 16 \\
            --out results/cnf/ring8-euler

    Writes flows.json, summary.md and densities.png into --out; an interrupted study
    resumes from its checkpoints (see `experiments.cnf.flow_runs`).
    """

    command = "flows"
    published = ("summary.md", "flows.json", "densities.png")

    dataset: str = option("ring8", "a 2-D density: ring8, moons, checkerboard or pinwheel")
    iterations: int = option(1000, "training iterations")
    batch_size: int = option(256, "training batch size")
    learning_rate: float = option(3e-3, "Adam learning rate", flag="--lr")
    seeds: tuple[int, ...] = option((0, 1, 2), "the seeds to train")
    solver: str = option("euler", "training solver")
    steps: tuple[int, ...] | None = option(
        None, "training step counts (default 1 2 4 8 16)"
    )
    tols: tuple[float, ...] | None = option(None, "training tolerances")
    threshold: float = option(
        0.1, "log-likelihood drop (nats) that marks a model not an ODE"
    )
    points: int = option(150, "grid cells per axis of the density's integral")
    out: str | None = option(None, "output folder (default results/cnf/DATASET-SOLVER)")

    @property
    def folder(self) -> Path:
        return Path(self.out or f"results/cnf/{self.dataset}-{self.solver}")

    def configs(self) -> list[odeness.TrainConfig]:
        """One training configuration per grid value."""
        if None not in (self.steps, self.tols):
            raise ValueError(
                f"give --steps or --tols, not both (got {self.steps}, {self.tols})"
            )
        if self.dataset not in odeness.data.DENSITIES:
            raise ValueError(
                f"--dataset must be a 2-D density ({', '.join(odeness.data.DENSITIES)}), "
                f"got {self.dataset!r}"
            )
        check_solver("--solver", self.solver)
        odeness.LogLikelihood().check_threshold(self.threshold)
        if (
            isinstance(self.points, bool)
            or not isinstance(self.points, int)
            or self.points < 2
        ):
            raise ValueError(f"--points must be an integer >= 2, got {self.points!r}")
        log = dict(log_every=100, checkpoint_every=500)
        if self.tols is not None:
            return [
                self.config(solver=self.solver, steps=None, tol=t, **log) for t in self.tols
            ]
        grid = self.steps or (1, 2, 4, 8, 16, 32)
        return [self.config(solver=self.solver, steps=n, **log) for n in grid]

    def check(self) -> None:
        self.configs()

    def run(self) -> str:
        rows = run_flows(self)
        return f"{len(rows)} flows evaluated into {self.folder}"


def _evaluate(
    result: odeness.TrainResult, data: odeness.Dataset, points: int
) -> list[FlowRow]:
    config, integ = result.config, result.integrator
    nfe = np.mean([m.nfe for m in result.metrics[-len(config.seeds) :]])
    rows = []
    for i, seed in enumerate(config.seeds):
        model = result.model(i)
        swap = odeness.evaluate_solver_swap(
            model, integ, data.x_test, None, metric="loglik", reference=reference()
        )
        (loglik_reference,) = [r.score for r in swap.rows if r.factor is None]
        mass, mass_reference = (
            odeness.grid_integral(model, s, -BOX, BOX, dims=2, points=points).value
            for s in (integ, reference())
        )
        rows.append(
            FlowRow(
                _label(config),
                _value(config),
                seed,
                swap.train_score,
                loglik_reference,
                swap.max_gap,
                mass,
                mass_reference,
                float(nfe),
                float(2 * nfe),  # the exact trace of a 2-D state: 2 products each
            )
        )
    return rows


def _evaluated(run_dir: Path, config: odeness.TrainConfig) -> bool:
    """Whether the run in `run_dir` is `config`'s, trained to its end and evaluated."""
    saved = run_dir / "config.json"
    return (
        (run_dir / "flow.jsonl").exists()
        and saved.exists()
        and odeness.TrainConfig.from_dict(files.read_json(saved)) == config
    )


def run_flows(options: FlowOptions) -> list[FlowRow]:
    """Train (or resume) each configuration of `options`, evaluate each seed, and write the
    summary and the figure (see the module docstring).

    **Raises:** `ValueError` for bad options or a folder holding other runs, before
    anything is written; `odeness.RunFailed` if a run diverged (after the others);
    `odeness.Interrupted` on a stop request, after the run in flight saved.
    """
    configs = options.configs()
    out = files.check_folder(options.folder, "flows folder")
    data = configs[0].load_dataset()
    for config in configs:
        odeness.check_run_folder(out / "runs" / _label(config), config)
    rows, failures = [], []
    with files.folder_lock(out, "flows folder"):
        for k, config in enumerate(configs):
            run_dir = out / "runs" / _label(config)
            header = f"[{k + 1}/{len(configs)}] {_label(config)}"
            if _evaluated(run_dir, config):
                rows += [FlowRow(**r) for r in files.read_jsonl(run_dir / "flow.jsonl")]
                print(f"{header}: done earlier, skipped", flush=True)
                continue
            try:
                result = odeness.train(
                    config, run_dir=run_dir, data=data, progress=options.progress
                )
                evaluated = _evaluate(result, data, options.points)
            except odeness.RunFailed as e:
                failures.append(f"{_label(config)}: {e}")
                print(f"{header}: FAILED: {e}", flush=True)
                continue
            files.write_jsonl(run_dir / "flow.jsonl", [r.to_json() for r in evaluated])
            rows += evaluated
            print(
                f"{header}: loglik {np.mean([r.loglik for r in evaluated]):.3f} (reference "
                f"{np.mean([r.loglik_reference for r in evaluated]):.3f}), max gap "
                f"{np.mean([r.max_gap for r in evaluated]):.3f}",
                flush=True,
            )
            odeness.raise_if_stopped(
                f"after {_label(config)}: {out} keeps every finished run"
            )
        write_summary(rows, out, configs[0], options.threshold, failures)
        if rows:
            _draw_densities(out, configs, data, options.points)
    if failures:
        raise odeness.RunFailed(
            f"{len(failures)} flows gave no result: " + "; ".join(failures)
        )
    return rows


def critical(rows: list[FlowRow], threshold: float, steps: bool) -> float | None:
    """The critical step size (or tolerance) of the rows' mean max gaps."""
    gaps: dict[float, list[float]] = {}
    for r in rows:
        gaps.setdefault(1 / r.value if steps else r.value, []).append(r.max_gap)
    if steps:
        return odeness.critical_step_size(gaps, threshold)
    return odeness.critical_tolerance(gaps, threshold)


def write_summary(
    rows: list[FlowRow],
    out: Path,
    base: odeness.TrainConfig,
    threshold: float,
    failures: Sequence[str] = (),
) -> None:
    """`flows.json` and `summary.md` of the rows."""
    steps = isinstance(base.control, odeness.Steps)
    by_value: dict[float, list[FlowRow]] = {}
    for r in sorted(rows, key=lambda r: -r.value if not steps else r.value):
        by_value.setdefault(r.value, []).append(r)
    star = critical(rows, threshold, steps)
    regularise = "".join(f", {n} {v:g}" for n, v in base.regularise)
    head = [
        "training n" if steps else "training tol",
        "NFE / iteration",
        "log-lik (training solver)",
        "log-lik (dopri5 1e-5)",
        "max gap",
        "∫p (training solver)",
        "∫p (dopri5 1e-5)",
        "ODE?",
    ]
    body = [
        [
            f"{v:g}",
            f"{rs[0].nfe:.0f} + {rs[0].trace_nfe:.0f}",
            mean_std(r.loglik for r in rs),
            mean_std(r.loglik_reference for r in rs),
            mean_std(r.max_gap for r in rs),
            mean_std((r.mass for r in rs), ".3g"),
            mean_std((r.mass_reference for r in rs), ".3g"),
            "yes" if np.mean([r.max_gap for r in rs]) <= threshold else "no",
        ]
        for v, rs in by_value.items()
    ]
    what = "step size" if steps else "tolerance"
    verdict = (
        f"no training {what} kept its log-likelihood"
        if star is None
        else (f"h* = {star:.4g} (n = {round(1 / star)})" if steps else f"tol* = {star:g}")
    )
    lines = [
        f"# Flows on {base.dataset}: {base.solver}{regularise}",
        "",
        f"Mean ± std over {len({r.seed for r in rows})} seeds, {base.iterations} "
        f"iterations, on the 2,000 test points. Log-likelihood in nats per point; max "
        "gap: its largest drop under the swap's at least as accurate solvers; ∫p: the "
        f"density integrated on [-{BOX:g}, {BOX:g}]² (1 for a density). NFE / iteration: "
        "field evaluations + the exact trace's Jacobian-vector products of the forward "
        f"solve. ODE: max gap ≤ {threshold} nats.",
        "",
        *markdown_table(head, body),
        "",
        f"**Critical {what}:** {verdict}.",
        "",
        *(f"- no result: {f}" for f in failures),
    ]
    files.write_json(
        out / "flows.json",
        {
            "dataset": base.dataset,
            "solver": base.solver,
            "grid": "steps" if steps else "tols",
            "regularise": [list(p) for p in base.regularise],
            "threshold": threshold,
            "critical": star,
            "rows": [r.to_json() for r in rows],
        },
    )
    files.atomic_write_text(out / "summary.md", "\n".join(lines))


def _density_grid(model, integ, points: int) -> np.ndarray:
    axis = -BOX + (2 * BOX / points) * (np.arange(points) + 0.5)
    grid = np.stack(np.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    loglik = np.concatenate(
        [
            np.asarray(model(jnp.asarray(g, jnp.float32), integ)[0])
            for g in np.array_split(grid, 8)
        ]
    )
    return np.exp(loglik).reshape(points, points)


def _draw_densities(out: Path, configs, data: odeness.Dataset, points: int) -> None:
    """The coarsest and the finest trained model (seed of index 0): the density under its
    training solver and under `reference()`, beside the data."""
    done = [c for c in configs if _evaluated(out / "runs" / _label(c), c)]
    if not done:
        return
    chosen = [done[0]] if len(done) == 1 else [done[0], done[-1]]
    plt = pyplot()
    fig, axes = plt.subplots(len(chosen), 3, figsize=(9, 3 * len(chosen)), squeeze=False)
    for row, config in zip(axes, chosen, strict=True):
        result = odeness.load_run(out / "runs" / _label(config), data)
        model = result.model(0)
        row[0].hist2d(
            *data.x_test.T, bins=points // 2, range=[[-BOX, BOX]] * 2, cmap="magma"
        )
        row[0].set_title(f"data ({config.dataset})")
        for ax, integ, name in (
            (row[1], result.integrator, f"{_label(config)}, its training solver"),
            (row[2], reference(), f"{_label(config)}, dopri5 1e-5"),
        ):
            density = _density_grid(model, integ, points)
            mass = density.sum() * (2 * BOX / points) ** 2
            ax.imshow(density, origin="lower", extent=(-BOX, BOX, -BOX, BOX), cmap="magma")
            ax.set_title(f"{name}\n∫p = {mass:.3g}", fontsize=9)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    save_figure(fig, out / "densities.png")


def mean_gap(rows: list[FlowRow]) -> dict[float, tuple[float, float]]:
    """The mean and std over seeds of the max gap at each training value."""
    gaps: dict[float, list[float]] = {}
    for r in rows:
        gaps.setdefault(r.value, []).append(r.max_gap)
    return {v: (float(np.mean(g)), float(np.std(g))) for v, g in sorted(gaps.items())}


@dataclasses.dataclass(frozen=True)
class FlowComparisonOptions(AbstractOptions):
    """Compare the flow studies' folders: every sweep's critical step size (or
    tolerance), its max gap and its density's integral at each training value.

        python experiments/compare_flows.py --out results/cnf/cnf-comparison

    Reads every folder with a `flows.json` under --results (by default the folder above
    --out) and writes `comparison.md` and `max_gap.png` into --out.
    """

    command = "compare_flows"
    published = ("comparison.md", "max_gap.png")

    out: str | None = option(None, "output folder (default results/cnf/cnf-comparison)")
    results: str | None = option(
        None, "the studies' folders (default: the folder above --out)"
    )

    @property
    def folder(self) -> Path:
        return Path(self.out or "results/cnf/cnf-comparison")

    def run(self) -> str:
        out = files.check_folder(self.folder, "comparison folder")
        found = sorted(Path(self.results or out.parent).glob("*/flows.json"))
        if not found:
            raise ValueError(
                f"no flows.json under {self.results or out.parent}; run the flows first"
            )
        compare([files.read_json(p) | {"name": p.parent.name} for p in found], out)
        return f"compared {len(found)} flow studies into {out}"


def _cure(study: dict) -> str:
    return ", ".join(f"{n} {v:g}" for n, v in study["regularise"]) or "none"


def compare(studies: list[dict], out: Path) -> None:
    """`comparison.md` and `max_gap.png` of the studies' `flows.json` contents."""
    head = [
        "study",
        "data",
        "solver",
        "cure",
        "critical",
        "n / tol",
        "max gap",
        "∫p",
    ]
    body = []
    for s in studies:
        rows = [FlowRow(**r) for r in s["rows"]]
        steps = s["grid"] == "steps"
        star = s["critical"]
        cell = "—" if star is None else (f"1/{round(1 / star)}" if steps else f"{star:g}")
        for value, (gap, std) in mean_gap(rows).items():
            masses = [r.mass for r in rows if r.value == value]
            body.append(
                [
                    s["name"],
                    s["dataset"],
                    s["solver"],
                    _cure(s),
                    cell,
                    f"{value:g}",
                    f"{gap:.3f} ± {std:.3f}",
                    mean_std(masses, ".3g"),
                ]
            )
            cell = ""
    lines = [
        "# Flows: is the likelihood a likelihood?",
        "",
        "Every flow study (mean ± std over seeds): the critical step size or tolerance "
        "(max gap ≤ its threshold from there on), and at each training value the max "
        "gap of the log-likelihood (nats) and the training solver's ∫p.",
        "",
        *markdown_table(head, body),
        "",
    ]
    files.atomic_write_text(out / "comparison.md", "\n".join(lines))
    plt = pyplot()
    datasets = sorted({s["dataset"] for s in studies})
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False
    )
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for s in (
            s for s in studies if s["dataset"] == dataset and s["solver"] != "dopri5"
        ):
            gaps = mean_gap([FlowRow(**r) for r in s["rows"]])
            xs = list(gaps)
            ax.errorbar(
                xs,
                [g for g, _ in gaps.values()],
                yerr=[e for _, e in gaps.values()],
                marker="o",
                capsize=2,
                label=f"{s['solver']}, {_cure(s)}",
            )
        ax.axhline(0.1, color="grey", ls=":", lw=1)
        ax.set(
            xscale="log",
            yscale="symlog",
            xlabel="training steps n",
            ylabel="max gap (nats)",
            title=dataset,
        )
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.legend(fontsize=7)
    save_figure(fig, out / "max_gap.png")
