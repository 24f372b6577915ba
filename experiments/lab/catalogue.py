"""Studies as data: each figure, table and sweep of a paper is defined once, as a record
of this module, and everything else is derived from that record: its `make` target
(`experiments/study.py NAME`), its stage of the paper's reproduction
(`experiments/reproduce_ott2021.py`), the tests' quick runs, the documentation's command
tables (`docs/_hooks/studies.py`) and the files copied into the documentation.

A study runs one command-line script (`experiments/<script>.py`) with its `arguments`,
writing into `results/<folder>`; options given after it (a `make` target's `ARGS`) come
last, so that they override the study's own (argparse keeps the last value given).
"""

import abc
import dataclasses
import shlex
from collections.abc import Sequence
from pathlib import Path

import odeness

QUICK_ITERATIONS = 200
"""The iterations of a smoke test (`--quick`)."""


def quick_config(config: odeness.TrainConfig) -> odeness.TrainConfig:
    """The smoke-test version of a training configuration (`--quick`): at most
    `QUICK_ITERATIONS` iterations and the first two seeds; a run without adaptation
    also logs every 50 iterations and checkpoints every 100."""
    config = config.replace(
        iterations=min(config.iterations, QUICK_ITERATIONS), seeds=config.seeds[:2]
    )
    if not config.adapt:
        config = config.replace(log_every=50, checkpoint_every=100)
    return config


def _values(values: Sequence) -> list[str]:
    return [v if isinstance(v, str) else f"{v:g}" for v in values]


def _shared(study) -> list[str]:
    """The training options a sweep and an adapted run share, where the study sets them."""
    args = []
    if study.iterations is not None:
        args += ["--iterations", str(study.iterations)]
    if study.channels is not None:
        args += ["--channels", str(study.channels)]
    for name, value in study.regularise:
        args += ["--regularise", f"{name}:{value:g}"]
    return args


@dataclasses.dataclass(frozen=True)
class AbstractStudy(abc.ABC):
    """One figure, table or sweep: a script, its options and its outputs."""

    name: str
    """The `make` target, and the folder under `results/`."""
    what: str
    """One line for the documentation's command table."""

    @property
    @abc.abstractmethod
    def script(self) -> str:
        """The script under `experiments/` that runs the study (without `.py`)."""

    @abc.abstractmethod
    def arguments(self) -> list[str]:
        """The script's options for this study, without `--out`."""

    @property
    def published(self) -> tuple[str, ...]:
        """The files of the output folder that go into the documentation."""
        return ()

    @property
    def trains(self) -> bool:
        """Whether the study trains models (its script takes `--seeds`)."""
        return False

    @property
    def quiet(self) -> tuple[str, ...]:
        """The script's options that turn its progress bars off."""
        return ()

    def out(self, results: str | Path) -> Path:
        """The study's output folder under `results`."""
        return Path(results) / self.name

    def argv(self, results: str | Path = "results", extra: Sequence[str] = ()) -> list[str]:
        """The script's whole command line; `extra` options come last."""
        return [*self.arguments(), "--out", str(self.out(results)), *extra]

    def command(self, results: str | Path = "results") -> str:
        """The command line a user would type, as in the documentation."""
        return shlex.join(["python", f"experiments/{self.script}.py", *self.argv(results)])


@dataclasses.dataclass(frozen=True)
class Sweep(AbstractStudy):
    """A grid of training step counts (or tolerances), each run followed by its solver
    swap (`experiments/sweep.py`); None leaves an option at the script's default."""

    solver: str = "euler"
    steps: tuple[int, ...] | None = None
    tols: tuple[float, ...] | None = None
    dataset: str | None = None
    seeds: tuple[int, ...] | None = None
    field: str | None = None
    adjoint: str | None = None
    test_solvers: tuple[str, ...] | None = None
    factors: tuple[float, ...] | None = None
    reference: str | None = None
    """`SOLVER:STEPS`, or `none`."""
    regularise: tuple[tuple[str, float], ...] = ()
    """Regularisers and their weights (`--regularise NAME:VALUE`)."""
    iterations: int | None = None
    channels: int | None = None

    script = "sweep"  # pyright: ignore[reportAssignmentType]
    trains = True  # pyright: ignore[reportAssignmentType]
    quiet = ("--no-progress",)  # pyright: ignore[reportAssignmentType]
    published = ("summary.md", "critical_step.json", "accuracy_vs_test_steps.png")  # pyright: ignore[reportAssignmentType]

    def arguments(self) -> list[str]:
        args = []
        if self.dataset is not None:
            args += ["--dataset", self.dataset]
        if self.field is not None:
            args += ["--field", self.field]
        args += ["--solver", self.solver]
        if self.steps is not None:
            args += ["--steps", *_values(self.steps)]
        if self.tols is not None:
            args += ["--tols", *_values(self.tols)]
        if self.seeds is not None:
            args += ["--seeds", *_values(self.seeds)]
        if self.adjoint is not None:
            args += ["--adjoint", self.adjoint]
        if self.test_solvers is not None:
            args += ["--test-solvers", *self.test_solvers]
        if self.factors is not None:
            args += ["--factors", *_values(self.factors)]
        if self.reference is not None:
            args += ["--reference", self.reference]
        return args + _shared(self)


@dataclasses.dataclass(frozen=True)
class Adapted(AbstractStudy):
    """Training with the step-size or tolerance adaptation, then the solver swap
    (`experiments/adapt.py`)."""

    solver: str = "euler"
    dataset: str | None = None
    tol: float | None = None
    """The starting tolerance (adaptive solvers; default the paper's 1e-6)."""
    seeds: tuple[int, ...] | None = None
    regularise: tuple[tuple[str, float], ...] = ()
    iterations: int | None = None
    channels: int | None = None

    script = "adapt"  # pyright: ignore[reportAssignmentType]
    trains = True  # pyright: ignore[reportAssignmentType]
    quiet = ("--no-progress",)  # pyright: ignore[reportAssignmentType]
    published = ("summary.md", "adaptation.png")  # pyright: ignore[reportAssignmentType]

    def arguments(self) -> list[str]:
        args = [] if self.dataset is None else ["--dataset", self.dataset]
        args += ["--solver", self.solver]
        args += [] if self.tol is None else ["--tol", f"{self.tol:g}"]
        args += [] if self.seeds is None else ["--seeds", *_values(self.seeds)]
        return args + _shared(self)


@dataclasses.dataclass(frozen=True)
class Script(AbstractStudy):
    """A study whose script takes its own few options (a figure, a set of experiments)."""

    runs: str = ""
    """The script under `experiments/`."""
    options: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    """The files that go into the documentation."""
    progress: bool = False
    """Whether the script shows progress bars (and takes `--no-progress`)."""

    @property
    def script(self) -> str:
        return self.runs

    @property
    def quiet(self) -> tuple[str, ...]:
        return ("--no-progress",) if self.progress else ()

    @property
    def published(self) -> tuple[str, ...]:
        return self.outputs

    def arguments(self) -> list[str]:
        return list(self.options)


@dataclasses.dataclass(frozen=True)
class Report(AbstractStudy):
    """The ODE-ness report of one run of another study (`experiments/ode_report.py`),
    written into the run's `report/` folder."""

    run: str = ""
    """The run folder, under `results/`."""

    script = "ode_report"  # pyright: ignore[reportAssignmentType]
    published = ("report.md", "swap.png", "trajectories.png", "fan.png", "failing.png")  # pyright: ignore[reportAssignmentType]

    def out(self, results: str | Path) -> Path:
        return Path(results) / self.run / "report"

    def argv(self, results: str | Path = "results", extra: Sequence[str] = ()) -> list[str]:
        return [str(Path(results) / self.run), *super().argv(results, extra)]

    def arguments(self) -> list[str]:
        return []


@dataclasses.dataclass(frozen=True)
class Table(AbstractStudy):
    """Grid search against adaptation (`experiments/table1.py`): each row a sweep and
    the adapted runs of the same task."""

    rows: tuple[tuple[Sweep, tuple[Adapted, ...]], ...] = ()

    script = "table1"  # pyright: ignore[reportAssignmentType]

    def out(self, results: str | Path) -> Path:
        return Path(results) / f"{self.name}.md"

    @property
    def published(self) -> tuple[str, ...]:
        return (f"{self.name}.md",)

    def argv(self, results: str | Path = "results", extra: Sequence[str] = ()) -> list[str]:
        args = []
        for sweep, adapted in self.rows:
            args += [
                "--row",
                str(sweep.out(results)),
                *(str(a.out(results)) for a in adapted),
            ]
        return [*args, "--out", str(self.out(results)), *extra]

    def arguments(self) -> list[str]:
        return []

    def studies(self) -> list[AbstractStudy]:
        """The sweeps and adapted runs the table reads, in order."""
        return [s for sweep, adapted in self.rows for s in (sweep, *adapted)]


@dataclasses.dataclass(frozen=True)
class Certify(AbstractStudy):
    """The three verdicts and the deployment solver of trained models
    (`experiments/certify.py`): of every run of `sweep`, or of the `runs` named (folders
    under the results folder). Trains nothing."""

    sweep: Sweep | None = None
    runs: tuple[str, ...] = ()

    script = "certify"  # pyright: ignore[reportAssignmentType]
    published = ("summary.md",)  # pyright: ignore[reportAssignmentType]

    def folders(self, results: str | Path) -> list[str]:
        """The run folders it certifies."""
        found = [str(Path(results) / r) for r in self.runs]
        if self.sweep is not None:
            assert self.sweep.steps is not None
            runs = self.sweep.out(results) / "runs"
            found += [str(runs / f"{self.sweep.solver}-n{n:04d}") for n in self.sweep.steps]
        return found

    def argv(self, results: str | Path = "results", extra: Sequence[str] = ()) -> list[str]:
        return [*self.folders(results), "--out", str(self.out(results)), *extra]

    def arguments(self) -> list[str]:
        return []


def published_files(study: AbstractStudy, results: str | Path) -> list[tuple[Path, str]]:
    """`(file under results, its path under the documentation's results folder)` of
    each file of `study` that is published."""
    out = study.out(results)
    folder = out.parent if isinstance(study, Table) else out
    relative = folder.relative_to(results)
    return [(folder / name, (relative / name).as_posix()) for name in study.published]
