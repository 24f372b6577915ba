"""Run folders: atomic files, JSON lines, checkpoints.

In a multi-process run (`odeness.parallel`) only process 0 writes: every writer here is
a no-op on the other processes, which read the same (shared) folders.
"""

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | Path, path: str | Path) -> None:
    """Move a finished temporary file onto `path`, with the permissions a plain `open`
    would have given it (`mkstemp` creates files readable by their owner only)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def writes_files() -> bool:
    """False on processes other than 0 of a multi-process run."""
    return jax.process_index() == 0


def _atomic(path: Path, write, mode: str) -> None:
    if not writes_files():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the whole new one."""
    _atomic(Path(path), lambda f: f.write(text), "w")


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def append_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Append rows, one JSON object a line, flushed to disk."""
    if not writes_files():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Replace `path` atomically with these rows."""
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def save_checkpoint(path: str | Path, tree) -> None:
    """Serialise the arrays of `tree` (`eqx.tree_serialise_leaves`), atomically."""
    _atomic(Path(path), lambda f: eqx.tree_serialise_leaves(f, tree), "wb")


def load_checkpoint(path: str | Path, like):
    """Read a checkpoint into a pytree with the structure of `like`."""
    return eqx.tree_deserialise_leaves(path, like)
