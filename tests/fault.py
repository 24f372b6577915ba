"""Run an experiment script and kill it (SIGKILL, as a power cut would) at a chosen point.

    python tests/fault.py POINT N SCRIPT [ARGS ...]

POINT is where the N-th event of its kind kills the process:

- `compile`: during the first compilation of the training program (N: seconds into it);
- `chunk`: as the N-th training chunk starts;
- `checkpoint`: half-way through writing the N-th checkpoint's temporary file;
- `metrics`: half-way through appending the N-th block of metrics rows (a torn line);
- `swap`: as the N-th score evaluation of the solver swap starts (`score_examples`).
"""

import os
import runpy
import signal
import sys
import threading
from pathlib import Path


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def on_call(n: int, before):
    """Wrap `fn` so that its n-th call runs `before(*args)` first."""
    calls = 0

    def wrap(fn):
        def wrapped(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == n:
                before(*args, **kwargs)
            return fn(*args, **kwargs)

        return wrapped

    return wrap


def install(point: str, n: str) -> None:
    import equinox as eqx

    import odeness._swap
    import odeness._training as train_module
    import odeness.files

    count = int(float(n))
    if point == "compile":
        timer = threading.Timer(float(n), die)
        wrap = on_call(1, lambda *a, **k: timer.start())
        train_module.train_chunk = wrap(train_module.train_chunk)
    elif point == "chunk":
        wrap = on_call(count, lambda *a, **k: die())
        train_module.train_chunk = wrap(train_module.train_chunk)
    elif point == "checkpoint":
        serialise = eqx.tree_serialise_leaves

        def half_then_die(f, tree):
            f.write(b"\0" * 64)  # the start of a file that is never finished
            f.flush()
            die()

        eqx.tree_serialise_leaves = on_call(count, half_then_die)(serialise)
    elif point == "metrics":

        def torn(path, rows):
            line = odeness.files._dumps(list(rows)[0])
            with Path(path).open("a") as f:
                f.write(line[: len(line) // 2])
            die()

        odeness.files.append_jsonl = on_call(count, torn)(odeness.files.append_jsonl)
    elif point == "swap":
        odeness._swap.score_examples = on_call(count, lambda *a, **k: die())(
            odeness._swap.score_examples
        )
    else:
        raise SystemExit(f"unknown fault point {point!r}")


if __name__ == "__main__":
    point, n, script, *args = sys.argv[1:]
    sys.path.insert(0, str(Path(script).resolve().parent))
    import odeness  # noqa: F401  (the modules to patch)

    install(point, n)
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")
