"""Kill a sweep and an adapted run (SIGKILL) at several points: resumed, each gives the
same files, byte for byte, as a run that was never interrupted (`tests/fault.py`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAULT = REPO / "tests" / "fault.py"
SWEEP = [str(REPO / "experiments" / "sweep.py"), "--quick", "--steps", "2", "--seeds",
         "0", "--iterations", "150", "--channels", "4", "--jobs", "1", "--factors", "1",
         "--test-solvers", "midpoint", "--reference", "none", "--no-progress"]  # fmt: skip
ADAPT = [str(REPO / "experiments" / "adapt.py"), "--quick", "--steps", "2", "--seeds",
         "0", "--iterations", "150", "--interval", "25", "--channels", "4",
         "--test-solvers", "midpoint", "--factors", "1", "--no-progress"]  # fmt: skip
TIMES = {"seconds", "train_seconds"}  # wall-clock fields, the only ones allowed to differ


def _run(command: list[str], cache: Path, fault=()) -> subprocess.CompletedProcess:
    # Every run compiles the same programs: a shared persistent cache (which changes no
    # result) keeps the test short.
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}  # fmt: skip
    prefix = [str(FAULT), *fault] if fault else []
    return subprocess.run(
        [sys.executable, *prefix, *command], capture_output=True, text=True, timeout=600,
        env=env,
    )  # fmt: skip


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


def _check_faults(tmp_path: Path, command: list[str], faults: list[tuple[str, str]]):
    """Kill one run folder at each fault in turn (each run resumes what the killed one
    left), finish it, and compare it with a folder that was never interrupted.

    The faults come first, so that a `compile` fault meets an empty cache."""
    cache = tmp_path / "cache"
    out = ["--out", str(tmp_path / "killed")]
    for point, n in faults:
        killed = _run([*command, *out], cache, fault=(point, n))
        assert killed.returncode == -9, (point, n, killed.returncode, killed.stderr)
    resumed = _run([*command, *out], cache)
    assert resumed.returncode == 0, resumed.stderr
    done = _run([*command, "--out", str(tmp_path / "clean")], cache)
    assert done.returncode == 0, done.stderr
    expected, got = _contents(tmp_path / "clean"), _contents(tmp_path / "killed")
    assert sorted(got) == sorted(expected)  # no temporary file is left
    for name in expected:
        assert got[name] == expected[name], name


def test_a_killed_sweep_resumes_to_the_same_results(tmp_path):
    # 150 iterations: metrics every 50, checkpoints at 100 and 150; then the swap (the
    # training solver, then midpoint). Killed while compiling; then at the third metrics
    # block (the first two and the checkpoint at 100 are saved); then while writing the
    # checkpoint at 150; then in the swap.
    _check_faults(
        tmp_path,
        SWEEP,
        [("compile", "1"), ("metrics", "3"), ("checkpoint", "1"), ("swap", "2")],
    )


def test_a_killed_adapted_run_resumes_to_the_same_results(tmp_path):
    # Checks every 25 iterations and one checkpoint, at the end: killed as the fourth
    # chunk starts, then while writing the checkpoint, then in the swap.
    _check_faults(tmp_path, ADAPT, [("chunk", "4"), ("checkpoint", "1"), ("swap", "2")])
