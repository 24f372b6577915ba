"""Run folders: what a training run writes, and how an interrupted one resumes.

- `config.json`: the `TrainConfig` (checked on resume: another configuration is refused);
- `metrics.jsonl`: one row per seed every `log_every` iterations;
- `checkpoint.eqx`: the training state, every `checkpoint_every` iterations and at the
  end, written atomically.
"""

from pathlib import Path

import jax

from . import io
from .config import TrainConfig
from .step import TrainState

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.eqx"


def _checkpointable(state: TrainState):
    # Typed PRNG keys are stored as their raw key data.
    return state._replace(key=jax.random.key_data(state.key))


def _from_checkpointable(state) -> TrainState:
    return state._replace(key=jax.random.wrap_key_data(state.key))


def check_run_folder(run_dir: str | Path, config: TrainConfig) -> None:
    """Check that `run_dir` is a folder that can hold the run of `config`: absent, empty,
    or holding a run of the same configuration (`iterations` may be raised).

    Reads only; call it before writing anything.

    **Raises:** `ValueError` naming the first differing field and both values, or if the
    path is not a folder.
    """
    folder = io.check_folder(run_dir, "run folder")
    saved_path = folder / CONFIG
    if not saved_path.exists():
        return
    saved = TrainConfig.from_dict(io.read_json(saved_path))
    difference = io.first_difference(
        saved.replace(iterations=config.iterations).to_dict(), config.to_dict()
    )
    if difference is not None:
        raise ValueError(
            f"run folder {folder} holds a run with another configuration ({difference}); "
            "choose another folder"
        )


def _resume(run_dir: Path, config: TrainConfig, state: TrainState):
    """Load the run folder's checkpoint and metrics, if any (after `check_run_folder`)."""
    io.remove_stale_temporaries(run_dir)
    if not (run_dir / CHECKPOINT).exists():
        io.write_json(run_dir / CONFIG, config.to_dict())
        io.write_jsonl(run_dir / METRICS, [])
        return state, []
    state = _from_checkpointable(
        io.load_checkpoint(run_dir / CHECKPOINT, _checkpointable(state))
    )
    step = int(state.step[0])
    if step > config.iterations:
        raise ValueError(
            f"run folder {run_dir} has trained {step} iterations, more than the "
            f"{config.iterations} asked for; ask for at least {step} or choose another "
            "folder"
        )
    io.write_json(run_dir / CONFIG, config.to_dict())
    # Metrics written after the checkpoint belong to iterations that will run again (a
    # line cut off by a crash among them).
    rows = io.read_jsonl(run_dir / METRICS, torn_tail=True)
    metrics = [r for r in rows if r["step"] <= step]
    io.write_jsonl(run_dir / METRICS, metrics)
    return state, metrics


def _remove_new_files(folder: Path, existed: set[str] | None) -> None:
    # A run that failed before its first checkpoint leaves the folder as it found it.
    for name in (CONFIG, METRICS):
        if existed is None or name not in existed:
            (folder / name).unlink(missing_ok=True)
    if existed is None and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
