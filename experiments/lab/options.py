"""Typed options: what each kind of study takes, defined once, as a frozen dataclass whose
`option(...)` fields `experiments._cli` turns into flags. Training options take their
defaults from `odeness.TrainConfig`, so that a script, a study and the library agree."""

import abc
import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, Self

import odeness

QUICK_ITERATIONS = 200
"""The iterations of a smoke test (`--quick`)."""

DATASETS = (
    "sphere2, sphere3, sphere10, sphere900, three_minima, mnist, fashion_mnist or cifar10"
)


class Option(NamedTuple):
    """How a field is a command-line option."""

    help: str
    flag: str | None = None
    """Where it is not `--` and the field's name with dashes."""
    positional: bool = False
    metavar: str | None = None
    under_results: bool = False
    """A path (or paths) that a named study gives relative to its results folder."""


def option(default: Any, help: str, **how: Any) -> Any:
    """A field that is a command-line option: its default, help text and `Option`."""
    return dataclasses.field(default=default, metadata={"option": Option(help, **how)})


def flag(f: dataclasses.Field) -> str:
    """The flag of the option `f`."""
    return f.metadata["option"].flag or "--" + f.name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class AbstractOptions(abc.ABC):
    """The options of one kind of study: the script `experiments/<command>.py` that takes
    them, the files under `out` it publishes, and what runs it (`run`)."""

    command: ClassVar[str]
    published: ClassVar[tuple[str, ...]] = ()

    @property
    @abc.abstractmethod
    def folder(self) -> Path:
        """Where it writes (its `out`, or the default)."""

    @abc.abstractmethod
    def run(self) -> str:
        """Run the study; return its closing line."""

    def check(self) -> None:
        """Check what needs no data and no files (a group checks every study before it
        runs any). **Raises:** `ValueError` naming the bad option."""
        return None

    def under(self, results: Path, name: str) -> Self:
        """These options as the study `name` runs them in `results`: `out` is
        `results/name` unless given, and every path option relative to `results`."""
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "out":
                changes["out"] = str(results / (name if value is None else value))
            elif "option" in f.metadata and f.metadata["option"].under_results:
                changes[f.name] = None if value is None else _joined(results, value)
        return dataclasses.replace(self, **changes)

    def replaced(self, **changes) -> Self:
        """These options with the `changes` that are fields of theirs (the rest ignored:
        a group's overrides reach the studies that have them)."""
        known = {k: v for k, v in changes.items() if k in self.__dataclass_fields__}
        return dataclasses.replace(self, **known)


def _joined(results: Path, value):
    if isinstance(value, str):
        return str(results / value)
    return tuple(_joined(results, v) for v in value)


_DEFAULT = odeness.TrainConfig  # its fields' defaults


@dataclasses.dataclass(frozen=True)
class TrainingOptions(AbstractOptions):
    """The options of a study that trains: the data set, the seeds and the optimisation,
    as `odeness.TrainConfig` takes them, and how the training uses the devices."""

    dataset: str = option(_DEFAULT.dataset, DATASETS)
    seeds: tuple[int, ...] = option(_DEFAULT.seeds, "the seeds to train")
    iterations: int = option(_DEFAULT.iterations, "training iterations")
    batch_size: int = option(_DEFAULT.batch_size, "training batch size")
    learning_rate: float = option(_DEFAULT.learning_rate, "Adam learning rate", flag="--lr")
    field: str = option(_DEFAULT.field, "vector field: conv or mlp")
    channels: int | None = option(
        _DEFAULT.channels,
        "hidden channels C of the field (default: the paper's, 128 for cifar10, else 32)",
    )
    data_dir: str | None = option(
        _DEFAULT.data_dir,
        "folder with the official archives of mnist, fashion_mnist or cifar10 (default: "
        "$ODENESS_MNIST_DIR, ...; see docs/guides/datasets.md)",
    )
    regularise: tuple[tuple[str, float], ...] = option(
        _DEFAULT.regularise,
        "a regulariser of the training solves and its weight, repeatable: kinetic, "
        "jacobian, taylorK (K >= 1), error, or steer (VALUE: the spread of the end "
        "time), e.g. --regularise kinetic:0.01",
        metavar="NAME:VALUE",
    )
    adjoint: str = option(
        _DEFAULT.adjoint,
        "how gradients go through the solve: backprop (through the solver's operations, "
        "the default) or backsolve (the continuous adjoint)",
    )
    quick: bool = option(False, "smoke test: 200 iterations, the first two seeds")
    parallel: Literal["seeds", "data", "none"] = option(
        "seeds",
        "use the devices for the seeds (default), for data parallelism within each run "
        "(every batch split), or use one device",
    )
    coordinator: str | None = option(
        None, "HOST:PORT of process 0 (multi-process runs; default $ODENESS_COORDINATOR)"
    )
    num_processes: int | None = option(
        None, "processes in the run (default $ODENESS_NUM_PROCESSES)"
    )
    process_id: int | None = option(
        None, "this process's rank (default $ODENESS_PROCESS_ID)"
    )
    progress: bool = option(True, "no progress bars", flag="--no-progress")

    def config(self, **fields) -> odeness.TrainConfig:
        """The `TrainConfig` of these options and `fields`; `quick` shrinks it."""
        config = odeness.TrainConfig(**{n: getattr(self, n) for n in _CONFIG}, **fields)
        return quick_config(config) if self.quick else config

    def start_processes(self) -> None:
        """Join a multi-process run if the options or the environment ask for one."""
        odeness.initialize_distributed(
            self.coordinator, self.num_processes, self.process_id
        )


_CONFIG = TrainingOptions.__dataclass_fields__.keys() & _DEFAULT.__dataclass_fields__.keys()
"""The training options that are `odeness.TrainConfig` fields of the same name."""


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


def command_line(options: AbstractOptions) -> list[str]:
    """The options that differ from their defaults, as a user would type them."""
    default, words = type(options)(), []
    for f in dataclasses.fields(options):
        value, how = getattr(options, f.name), f.metadata.get("option")
        if how is None or value == getattr(default, f.name):
            continue
        if isinstance(value, bool):
            words.append(flag(f))
            continue
        repeated = isinstance(value, tuple) and value and isinstance(value[0], tuple)
        for one in value if repeated else [value]:
            words += [*([] if how.positional else [flag(f)]), *_words(one)]
    return words


def _words(value) -> list[str]:
    if isinstance(value, tuple):
        if len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], float):
            return [f"{value[0]}:{value[1]:g}"]  # a regulariser and its weight
        return [w for v in value for w in _words(v)]
    return [f"{value:g}" if isinstance(value, float) else str(value)]


def check_solver(option_name: str, name: str) -> None:
    """**Raises:** `ValueError` naming `option_name` if `name` is not a solver."""
    try:
        odeness.solver(name)
    except ValueError as e:
        raise ValueError(f"{option_name}: {e}") from None
