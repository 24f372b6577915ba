"""Kill a sweep and an adapted run (SIGKILL) at several points: resumed, each gives the
same files, byte for byte, as a run that was never interrupted (`tests/fault.py`). Stop
one with SIGTERM and SIGINT (it saves its last chunk and says so in one line), and start
a second writer on its folder (refused at once)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import _cli as cli

REPO = Path(__file__).resolve().parents[1]
FAULT = REPO / "tests" / "fault.py"
ADAPT = [str(REPO / "experiments" / "adapt.py"), "--quick", "--steps", "2", "--seeds",
         "0", "--iterations", "150", "--interval", "25", "--channels", "4",
         "--test-solvers", "midpoint", "--factors", "1", "--no-progress"]  # fmt: skip
TIMES = {"seconds", "train_seconds"}  # wall-clock fields, the only ones allowed to differ


def _env(cache: Path | None) -> dict[str, str]:
    # The runs share the suite's persistent compilation cache (which changes no result),
    # except where a test needs a compilation to happen: there `cache` is a new folder.
    if cache is None:
        return dict(os.environ)
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache)}


def _run(command: list[str], fault=(), cache: Path | None = None):
    prefix = [str(FAULT), *fault] if fault else []
    return subprocess.run(
        [sys.executable, *prefix, *command], capture_output=True, text=True, timeout=600,
        env=_env(cache),
    )  # fmt: skip


def _main(command: list[str]) -> int:
    """Run `command`'s script in this process (`main(argv)`, as `python SCRIPT ARGS`
    would): the files a run writes do not depend on the process it runs in, and this
    one has JAX imported and its programs traced already."""
    return cli.main([Path(command[0]).stem, *command[1:]])


def _without_times(obj):
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in TIMES}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


def _contents(folder: Path) -> dict[str, object]:
    """Every file under `folder`: bytes, or JSON without its wall-clock fields."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        name = str(path.relative_to(folder))
        if path.suffix == ".jsonl":
            lines = path.read_text().splitlines()
            files[name] = [_without_times(json.loads(line)) for line in lines]
        elif path.suffix == ".json":
            files[name] = _without_times(json.loads(path.read_text()))
        elif path.suffix == ".png":
            files[name] = "a figure"  # matplotlib embeds no clock, but fonts may vary
        else:
            files[name] = path.read_bytes()
    return files


def _kill(command: list[str], point: str, n: str, cache: Path | None = None) -> None:
    killed = _run(command, fault=(point, n), cache=cache)
    assert killed.returncode == -9, (point, n, killed.returncode, killed.stderr)


def _finish_and_compare(tmp_path: Path, command: list[str], out: Path):
    """Run `command` on `out` to the end, then compare `out` with a folder that was
    never interrupted."""
    assert _main([*command, "--out", str(out)]) == 0
    assert _main([*command, "--out", str(tmp_path / "clean")]) == 0
    expected, got = _contents(tmp_path / "clean"), _contents(out)
    assert sorted(got) == sorted(expected)  # no lock file or temporary file is left
    for name in expected:
        assert got[name] == expected[name], name


@pytest.mark.slow
def test_a_killed_adapted_run_resumes_to_the_same_results(tmp_path):
    # Checks every 25 iterations and one checkpoint, at the end: killed as the fourth
    # chunk starts, then while writing the checkpoint, then in the swap.
    out = tmp_path / "killed"
    for point, n in [("chunk", "4"), ("checkpoint", "1"), ("swap", "2")]:
        _kill([*ADAPT, "--out", str(out)], point, n)
    _finish_and_compare(tmp_path, ADAPT, out)


# --- Stopped on request, and one writer per folder ------------------------------------

# 1,000 iterations: metrics every 100, one checkpoint at the end (so a checkpoint before
# it can only come from a stop).
LONG = [str(REPO / "experiments" / "sweep.py"), "--steps", "2", "--seeds", "0",
        "--iterations", "1000", "--channels", "4", "--jobs", "1", "--factors", "1",
        "--test-solvers", "midpoint", "--reference", "none", "--no-progress"]  # fmt: skip


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=_env(None),
    )  # fmt: skip


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")
    ]


def _wait_for_rows(process: subprocess.Popen, run_dir: Path, at_least: int) -> None:
    """Wait until the run has logged `at_least` chunks beyond what it resumed from."""
    start = len(_rows(run_dir))
    for _ in range(6000):
        assert process.poll() is None, process.communicate()
        if len(_rows(run_dir)) >= start + at_least:
            return
        time.sleep(0.01)
    raise AssertionError("the run logged nothing")


def _checkpoint_step(run_dir: Path) -> int:
    from odeness import TrainConfig, files
    from odeness._run_folder import checkpointable
    from odeness._training import init_state

    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    like = checkpointable(init_state(config, config.load_dataset())[0])
    return int(files.load_checkpoint(run_dir / "checkpoint.eqx", like).step[0])


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_a_sweep_killed_stopped_and_doubled_resumes_to_the_same_results(tmp_path, capsys):
    """One sweep folder through everything that can happen to it: killed (SIGKILL) while
    compiling and mid-write, stopped by SIGTERM and by SIGINT, a second process started
    on it while it runs; resumed each time, it ends as a run never interrupted does."""
    out = tmp_path / "killed"
    command = [*LONG, "--out", str(out)]
    run_dir = out / "runs" / "euler-n0002"
    # Killed while compiling (from an empty cache: a fault first), then half-way
    # through the third block of metrics: it dies holding the folder's lock.
    _kill(command, "compile", "1", cache=tmp_path / "empty-cache")
    _kill(command, "metrics", "3")
    assert (out / ".lock").exists() and (
        run_dir / ".lock"
    ).exists()  # the kernel freed them
    # The next process takes the folder. A second one (this one), started while it
    # runs, fails at once in one line and writes nothing.
    first = _start(command)
    _wait_for_rows(first, run_dir, 2)
    first.send_signal(signal.SIGSTOP)  # nothing moves in the folder while it is paused
    before = _snapshot(out)
    capsys.readouterr()
    assert _main(command) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"error: sweep folder {out} is in use by process {first.pid} ")
    assert _snapshot(out) == before
    # SIGTERM (a scheduler's pre-emption): the chunk in flight finishes and is saved.
    first.send_signal(signal.SIGTERM)
    first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 143
    step = _rows(run_dir)[-1]["step"]
    assert 200 <= step < 1000 and _checkpoint_step(run_dir) == step
    assert _one_line(err) == (
        f"interrupted by SIGTERM at iteration {step} of 1000: {run_dir} holds a "
        f"checkpoint of iteration {step}; the same command resumes"
    )
    # Ctrl-C (SIGINT) the same way, after the run resumed from there.
    again = _start(command)
    _wait_for_rows(again, run_dir, 1)
    again.send_signal(signal.SIGINT)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 130
    later = _rows(run_dir)[-1]["step"]
    assert step < later < 1000 and _checkpoint_step(run_dir) == later
    assert _one_line(err).startswith(f"interrupted by SIGINT at iteration {later} of 1000")
    # Killed half-way through writing the last checkpoint, then in the swap.
    _kill(command, "checkpoint", "1")
    _kill(command, "swap", "2")
    _finish_and_compare(tmp_path, LONG, out)
