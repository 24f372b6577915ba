"""The files odeness writes: atomic, so that a reader (or a resumed run) sees a file
whole or not at all; JSON without NaN, JSON lines, checkpoints.

Every file the project writes goes through `atomic_write`: summaries, tables, figures,
checkpoints. A writer killed mid-write leaves only a hidden temporary file
(`.NAME.*.tmp`), which `remove_stale_temporaries` deletes when the folder is used again.
In a multi-process run only process 0 writes: every writer here is a no-op on the other
processes, which read the same (shared) folders.

A process writing a folder holds its advisory lock (`folder_lock`: `fcntl.flock` on the
folder's `.lock` file), so that a second writer is refused at once; the kernel releases a
lock when its process dies, so a killed run never leaves a stale one behind. Readers take
no lock.
"""

import contextlib
import fcntl
import json
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import equinox as eqx
import jax

from ._errors import FolderInUse

__all__ = [
    "append_jsonl",
    "atomic_write",
    "atomic_write_text",
    "check_folder",
    "copy",
    "first_difference",
    "folder_lock",
    "load_checkpoint",
    "read_json",
    "read_jsonl",
    "remove_stale_temporaries",
    "save_checkpoint",
    "write_json",
    "write_jsonl",
    "writes_files",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: str | Path, path: str | Path) -> None:
    # Move a finished temporary file onto `path`, with the permissions a plain `open`
    # would have given it (`mkstemp` creates files readable by their owner only).
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def check_folder(path: str | Path, what: str = "folder") -> Path:
    """`path` as a `Path`, if it is a folder or could be created as one.

    **Raises:** `ValueError` if `path`, or a folder above it, is an existing file.
    """
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            problem = "is a file" if p == path else f"is below {p}, which is a file"
            raise ValueError(f"{what} {path} {problem}; give a folder")
        if p.is_dir():
            break
    return path


def first_difference(saved: dict, requested: dict, prefix: str = "") -> str | None:
    """The first key (sorted, nested keys dotted) whose value differs between two
    JSON-like dicts, with both values, as text; None if they are equal."""
    for key in sorted(set(saved) | set(requested)):
        a, b = saved.get(key), requested.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = first_difference(a, b, f"{prefix}{key}.")
            if inner is not None:
                return inner
        elif a != b:
            return f"{prefix}{key} is {a!r} there, {b!r} here"
    return None


def writes_files() -> bool:
    """False on processes other than 0 of a multi-process run."""
    return jax.process_index() == 0


def atomic_write(
    path: str | Path, write: Callable[[IO], object], *, binary: bool = False
) -> None:
    """Write `path` so that readers see the old file or the whole new one.

    `write(f)` fills an open temporary file beside `path` (text, or bytes with
    `binary=True`); once it returns, the file is flushed to disk and moved onto `path`.
    If `write` raises, the temporary file is removed and `path` is untouched. The
    folders above `path` are created. A no-op on processes other than 0.
    """
    if not writes_files():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def copy(source: str | Path, target: str | Path) -> None:
    """Copy the file `source` to `target`, atomically (`atomic_write`)."""
    with open(source, "rb") as f:
        data = f.read()
    atomic_write(target, lambda out: out.write(data), binary=True)


LOCK = ".lock"
"""The lock file `folder_lock` holds in a folder, naming the process that holds it."""

_held: dict[Path, list] = {}  # folder -> [thread, depth]: the locks this process holds
_held_guard = threading.Lock()


def _holder(lock: Path) -> str:
    try:
        text = lock.read_text().strip()
    except OSError:
        text = ""
    return text or "another process"


def _acquire(lock: Path, what: str) -> int:
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderInUse(
                f"{what} {lock.parent} is in use by {_holder(lock)}; wait for it to "
                "finish, or choose another folder"
            ) from None
        try:  # the lock file its last holder removed is no lock: take the new one
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str = "folder") -> Iterator[Path]:
    """Hold the advisory lock of `folder` (created if need be) while writing it.

    The lock is `fcntl.flock` on `folder/.lock`, which names the holder (process id,
    host, command line); the kernel releases it when the process ends, however it ends,
    and the file is removed on a normal exit, with the folder if the lock created it and
    it is left empty. The same thread may enter again (a run
    folder inside a sweep's, a study that trains into its own folder). A no-op on
    processes other than 0 of a multi-process run.

    **Raises:** `odeness.FolderInUse` (an `OSError`) at once, naming the folder and the
    holder, if another process, or another thread of this one, holds the lock.
    """
    if not writes_files():
        yield Path(folder)
        return
    path = Path(folder).resolve()
    me = threading.get_ident()
    with _held_guard:
        held = _held.get(path)
        if held is not None and held[0] != me:
            raise FolderInUse(
                f"{what} {folder} is in use by another thread of this process; choose "
                "another folder"
            )
        if held is not None:
            held[1] += 1
    if held is not None:  # re-entered by the thread that holds it
        try:
            yield path
        finally:
            with _held_guard:
                held[1] -= 1
        return
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK
    try:
        fd = _acquire(lock, what)
    except FolderInUse:
        if created:  # refused at once: leave nothing behind
            _remove_if_empty(path)
        raise
    try:
        info = f"process {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv)})"
        os.ftruncate(fd, 0)
        os.write(fd, info.encode())
        with _held_guard:
            _held[path] = [me, 1]
        try:
            yield path
        finally:
            with _held_guard:
                del _held[path]
    finally:
        lock.unlink(missing_ok=True)  # while still holding it: see `_acquire`
        os.close(fd)
        if created:  # a run that wrote nothing leaves no empty folder behind
            _remove_if_empty(path)


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()  # only an empty folder goes


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete the temporary files that writers here leave when killed mid-write (a folder
    is written by one run at a time, so none of them is in use)."""
    if not writes_files() or not Path(folder).is_dir():
        return
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the whole new one."""
    atomic_write(path, lambda f: f.write(text))


def _dumps(obj: Any, **kwargs) -> str:
    # Strict JSON: a NaN or infinity is a bug upstream, never written as bare `NaN`.
    return json.dumps(obj, allow_nan=False, **kwargs)


def write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as strict JSON (no NaN), indented and with sorted keys, atomically."""
    atomic_write_text(path, _dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file. **Raises:** `ValueError` naming the file if it is not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path} is not valid JSON ({e.msg} at line {e.lineno}); delete it to start "
            "that part again"
        ) from None


def append_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Append rows, one JSON object a line, flushed to disk."""
    if not writes_files():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for row in rows:
            f.write(_dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path, *, torn_tail: bool = False) -> list[dict]:
    """The rows of a JSON-lines file (none if it does not exist).

    With `torn_tail=True` an unterminated, unreadable last line (a write cut off by a
    crash) is left out.

    **Raises:** `ValueError` naming the file and line if a line is not JSON.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    rows = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            last = i == len(lines)  # no newline after it: the write did not finish
            if last and torn_tail:
                break
            raise ValueError(
                f"{path} line {i} is not valid JSON ({e.msg})"
                + ("; the write of that line was cut off" if last else "")
                + "; delete the line (or the file) to go on"
            ) from None
    return rows


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Replace `path` atomically with these rows."""
    atomic_write_text(path, "".join(_dumps(row) + "\n" for row in rows))


def save_checkpoint(path: str | Path, tree) -> None:
    """Serialise the arrays of `tree` (`eqx.tree_serialise_leaves`), atomically."""
    atomic_write(path, lambda f: eqx.tree_serialise_leaves(f, tree), binary=True)


def load_checkpoint(path: str | Path, like):
    """Read a checkpoint into a pytree with the structure of `like`.

    **Raises:** `ValueError` naming the file if it does not hold such a tree.
    """
    try:
        return eqx.tree_deserialise_leaves(path, like)
    except (ValueError, RuntimeError, OSError, EOFError) as e:
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(e).__name__}); delete it to train "
            "that run from the start"
        ) from None
