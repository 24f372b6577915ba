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
from typing import NamedTuple

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
    metrics = [r for r in rows if r["step"] <= step]
    files.write_jsonl(run_dir / METRICS, metrics)
    return state, metrics


def remove_new_files(folder: Path, existed: set[str] | None) -> None:
    # A run that failed before its first checkpoint leaves the folder as it found it.
    for name in (CONFIG, METRICS, COMPONENTS):
        if existed is None or name not in existed:
            (folder / name).unlink(missing_ok=True)
    if existed is None and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
