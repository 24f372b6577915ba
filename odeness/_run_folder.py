"""Run folders: what a training run writes, and how an interrupted one resumes.

- `config.json`: the `TrainConfig` (checked on resume: another configuration is refused);
- `metrics.jsonl`: one row per seed every `log_every` iterations;
- `checkpoint.eqx`: the training state, every `checkpoint_every` iterations and at the
  end, written atomically;
- `components.json` (only for runs with parts of the user's own): which objects that
  `config.json` cannot hold trained the run, by name, so that resuming or loading the
  run without them is refused with a clear error.
"""

from pathlib import Path
from typing import Any, NamedTuple

import jax

from . import files
from ._config import TrainConfig
from ._train_step import TrainState

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.eqx"
COMPONENTS = "components.json"


class Components(NamedTuple):
    """The parts of a run that are the user's own objects, by name (None: the default
    the configuration names)."""

    model: str | None = None
    """`"given"` for a model builder of one's own."""
    rule: str | None = None
    """The class name of an adaptation rule of one's own."""
    optimizer: str | None = None
    """`"given"` for an optax optimizer of one's own."""
    regularisers: str | None = None
    """The names and weights of regularisers of one's own."""

    def to_json(self) -> dict:
        return {k: v for k, v in self._asdict().items() if v is not None}


_WHAT = {
    "model": ("a model builder", "model="),
    "rule": ("an adaptation rule", "rule="),
    "optimizer": ("an optimizer", "optimizer="),
    "regularisers": ("regularisers", "regularisers="),
}


def check_components(run_dir: str | Path, components: Components) -> None:
    """Check that the objects given are those the run in `run_dir` was trained with (by
    name; a folder without a run, or without `components.json`, had none of its own).

    **Raises:** `ValueError` naming the component, what the folder holds and what was
    given.
    """
    folder = Path(run_dir)
    if not (folder / CONFIG).exists():
        return
    path = folder / COMPONENTS
    saved = files.read_json(path) if path.exists() else {}
    given = components.to_json()
    for key, (what, argument) in _WHAT.items():
        there, here = saved.get(key), given.get(key)
        if there == here:
            continue
        if here is None:
            raise ValueError(
                f"run folder {folder} was trained with {what} of your own ({there}), which "
                f"its config.json cannot hold; give {argument} again"
            )
        if there is None:
            raise ValueError(
                f"run folder {folder} was trained with the default {key}, not {what} of "
                f"your own ({argument}); choose another folder"
            )
        raise ValueError(
            f"run folder {folder} was trained with the {key} {there}, not {here}; "
            f"give that {key}, or choose another folder"
        )


class CheckRow(NamedTuple):
    """What an adapted run's metrics row adds: the step size or tolerance after the
    chunk, and what the chunk's last check of the rule measured (None if none ran)."""

    name: str
    """`dt` (a step size) or `tol` (a tolerance)."""
    value: float
    check_nfe_total: int
    """The checks' forward evaluations, summed over training."""
    check_step: int | None
    check_train_accuracy: float | None
    test_accuracy: float | None
    try_accuracy: float | None
    test_ok: bool | None


class MetricsRow(NamedTuple):
    """One seed's line of `metrics.jsonl`: the means over a chunk of iterations, the
    running totals, and what the regularisers and the adaptation add."""

    step: int
    seed: int
    loss: float
    score: float
    """The training batch's score under the run's metric (`train_<metric>` on disk)."""
    metric: str
    """The metric's name (`accuracy` unless `train(metric=...)`)."""
    nfe: int
    num_steps: int
    train_nfe_total: int
    seconds: float
    """Training time, summed over every process that trained the run."""
    penalties: dict[str, float] | None = None
    """Regularised runs: each penalty's mean (`penalty_<name>` on disk)."""
    penalty_nfe: int | None = None
    check: CheckRow | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "step": self.step,
            "seed": self.seed,
            "loss": self.loss,
            f"train_{self.metric}": self.score,
            "nfe": self.nfe,
            "num_steps": self.num_steps,
            "train_nfe_total": self.train_nfe_total,
            "seconds": self.seconds,
        }
        if self.penalties is not None:
            row.update({f"penalty_{k}": v for k, v in self.penalties.items()})
            row["penalty_nfe"] = self.penalty_nfe
        if self.check is not None:
            check = self.check._asdict()
            row[check.pop("name")] = check.pop("value")
            row.update(check)
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "MetricsRow":
        (score,) = [k for k in row if k.startswith("train_") and k != "train_nfe_total"]
        penalties = {k[8:]: v for k, v in row.items() if k.startswith("penalty_")}
        penalty_nfe = penalties.pop("nfe", None)
        check = None
        for name in ("dt", "tol"):
            if name in row:
                fields = {f: row[f] for f in CheckRow._fields if f in row}
                check = CheckRow(name=name, value=row[name], **fields)
        return cls(
            row["step"],
            row["seed"],
            row["loss"],
            row[score],
            score[6:],
            row["nfe"],
            row["num_steps"],
            row["train_nfe_total"],
            row["seconds"],
            penalties if penalty_nfe is not None else None,
            penalty_nfe,
            check,
        )


def checkpointable(state: TrainState):
    # Typed PRNG keys are stored as their raw key data.
    return state._replace(key=jax.random.key_data(state.key))


def from_checkpointable(state) -> TrainState:
    return state._replace(key=jax.random.wrap_key_data(state.key))


def check_run_folder(run_dir: str | Path, config: TrainConfig) -> None:
    """Check that `run_dir` is a folder that can hold the run of `config`: absent, empty,
    or holding a run of the same configuration (`iterations` may be raised).

    Reads only; call it before writing anything.

    **Raises:** `ValueError` naming the first differing field and both values, or if the
    path is not a folder.
    """
    folder = files.check_folder(run_dir, "run folder")
    saved_path = folder / CONFIG
    if not saved_path.exists():
        return
    saved = TrainConfig.from_dict(files.read_json(saved_path))
    difference = files.first_difference(
        saved.replace(iterations=config.iterations).to_dict(), config.to_dict()
    )
    if difference is not None:
        raise ValueError(
            f"run folder {folder} holds a run with another configuration ({difference}); "
            "choose another folder"
        )


def _write_config(run_dir: Path, config: TrainConfig, components: Components) -> None:
    if components.to_json():
        files.write_json(run_dir / COMPONENTS, components.to_json())
    files.write_json(run_dir / CONFIG, config.to_dict())


def resume(run_dir: Path, config: TrainConfig, components: Components, state: TrainState):
    """Load the run folder's checkpoint and metrics, if any (after `check_run_folder`
    and `check_components`)."""
    files.remove_stale_temporaries(run_dir)
    if not (run_dir / CHECKPOINT).exists():
        _write_config(run_dir, config, components)
        files.write_jsonl(run_dir / METRICS, [])
        return state, []
    state = from_checkpointable(
        files.load_checkpoint(run_dir / CHECKPOINT, checkpointable(state))
    )
    step = int(state.step[0])
    if step > config.iterations:
        raise ValueError(
            f"run folder {run_dir} has trained {step} iterations, more than the "
            f"{config.iterations} asked for; ask for at least {step} or choose another "
            "folder"
        )
    _write_config(run_dir, config, components)
    # Metrics written after the checkpoint belong to iterations that will run again (a
    # line cut off by a crash among them).
    rows = files.read_jsonl(run_dir / METRICS, torn_tail=True)
    metrics = [MetricsRow.from_json(r) for r in rows if r["step"] <= step]
    files.write_jsonl(run_dir / METRICS, [r.to_json() for r in metrics])
    return state, metrics


def remove_new_files(folder: Path, existed: set[str] | None) -> None:
    # A run that failed before its first checkpoint leaves the folder as it found it.
    for name in (CONFIG, METRICS, COMPONENTS):
        if existed is None or name not in existed:
            (folder / name).unlink(missing_ok=True)
    if existed is None and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
