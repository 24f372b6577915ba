"""Stopping a run cleanly: a stop request that long loops check between their steps.

The library never installs a signal handler by itself. `stop_on_signals()` (which the
command-line scripts enter) turns SIGINT and SIGTERM into a stop request: `train` then
finishes the chunk of iterations in flight, writes a checkpoint of it and raises
`Interrupted`; a second SIGINT stops at once (`KeyboardInterrupt`). Without the context
manager, a `KeyboardInterrupt` (Ctrl-C) inside `train` still saves the last finished
chunk before `Interrupted` is raised.
"""

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

_requested = threading.Event()
_signal = [0]
_depth = [0]  # stop_on_signals entered (the outermost installs the handlers)


class Interrupted(Exception):
    """A run stopped on request (a signal, or Ctrl-C) after saving what it had finished.

    `signal` is the signal's number (`signal.SIGINT`, `signal.SIGTERM`); `iteration` the
    iterations the saved checkpoint holds (None outside training); `folder` the run folder
    that holds it (None for a run without one). The same command resumes the run.
    """

    def __init__(
        self, message: str, *, signal: int, iteration: int | None, folder: Path | None
    ):
        super().__init__(message)
        self.signal = signal
        self.iteration = iteration
        self.folder = folder

    @property
    def exit_status(self) -> int:
        """The conventional exit status of a process ended by the signal: 128 + its
        number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signal


def request_stop(signum: int = signal.SIGINT) -> None:
    """Ask every training of this process to stop at the end of its chunk, as the signal
    `signum` would under `stop_on_signals` (`train` then saves the chunk and raises
    `Interrupted`); the request holds until `cancel_stop` (or the end of
    `stop_on_signals`)."""
    _signal[0] = int(signum)
    _requested.set()


def cancel_stop() -> None:
    """Withdraw a stop request (`request_stop`)."""
    _requested.clear()
    _signal[0] = 0


def stop_requested() -> int:
    """The signal number of a pending stop request, or 0. In a multi-process run, the
    processes agree (a collective): a request on any of them stops all of them at the same
    chunk."""
    local = _signal[0] if _requested.is_set() else 0
    if jax.process_count() == 1:
        return local
    every = multihost_utils.process_allgather(np.asarray(local, dtype=np.int32))
    return int(np.max(every))


def raise_if_stopped(where: str, *, folder: Path | None = None) -> None:
    """Raise `Interrupted` if a stop is requested (`stop_requested`), as `train` does
    between its chunks: for a long loop of one's own, between its steps. `where` ends
    the message (where the loop stopped, what it kept); `folder` is where it keeps it.

    **Raises:** `Interrupted`, naming the signal and `where`, if a stop is pending.
    """
    signum = stop_requested()
    if signum:
        raise Interrupted(
            f"interrupted by {signal_name(signum)} {where}; the same command resumes",
            signal=signum,
            iteration=None,
            folder=folder,
        )


def signal_name(signum: int) -> str:
    """`SIGINT`, `SIGTERM`, ...: the name of a signal number."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@contextlib.contextmanager
def stop_on_signals(
    signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM ask the running training to stop cleanly: at the
    end of its chunk of `log_every` iterations it writes a checkpoint and raises
    `odeness.Interrupted`. A second SIGINT raises `KeyboardInterrupt` at once (the
    chunk in flight is lost; the folder keeps its last checkpoint).

    For a command-line program of one's own, as odeness's scripts use it:

    ```python
    with odeness.stop_on_signals():
        try:
            odeness.train(config, run_dir="results/run")
        except odeness.Interrupted as e:
            sys.exit(e.exit_status)  # 130 for SIGINT, 143 for SIGTERM
    ```

    Handlers can only be installed from the main thread; elsewhere this does nothing,
    and so does a nested `stop_on_signals` (the outermost one owns the handlers). The
    previous handlers are restored on exit, and a pending stop request withdrawn.
    """
    if threading.current_thread() is not threading.main_thread() or _depth[0]:
        yield
        return

    def handle(signum, frame):
        del frame
        if signum == signal.SIGINT and _requested.is_set():
            raise KeyboardInterrupt  # the second Ctrl-C: at once
        request_stop(signum)

    previous = {s: signal.signal(s, handle) for s in signals}
    cancel_stop()
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        for s, handler in previous.items():
            signal.signal(s, handler)
        cancel_stop()
