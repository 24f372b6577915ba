"""The project's command-line scripts, run in a subprocess as a user runs them."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_script(
    script: str | Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python experiments/<script> ARGS` from the repository root (`script` relative to
    `experiments/`, or a path), with its output captured as text; `env` adds to the
    environment."""
    return subprocess.run(
        [sys.executable, str(REPO / "experiments" / script), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
