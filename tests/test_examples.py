"""The examples of `examples/` run (quick mode) and print what the guides show.

Each runs through its `main(argv)` in the test's process (`test_package.py` runs every
script by path)."""

import re
import runpy
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(name: str, capsys) -> str:
    main = runpy.run_path(str(REPO / "examples" / name))["main"]
    capsys.readouterr()
    main(["--quick"])
    return capsys.readouterr().out


@pytest.mark.slow
def test_time_series_example(capsys):
    out = _run("time_series.py", capsys)
    rows = re.findall(
        r"^\s+(\d+) \| +([\d.]+) \| +(-?[\d.]+) \| +(-?[\d.]+) \| (yes|no) +"
        r"\| (yes|no) +\| (yes|no)$",
        out,
        flags=re.M,
    )
    assert [int(r[0]) for r in rows] == [2, 4], out
    assert "critical step size h* = " in out


@pytest.mark.slow
def test_classifier_example(capsys):
    out = _run("classifier.py", capsys)
    rows = re.findall(
        r"^\s+(\d+) \| +([\d.]+) \| +(-?[\d.]+) \| (yes|no)$", out, flags=re.M
    )
    assert [int(r[0]) for r in rows] == [1, 2], out
    assert all(0 <= float(r[1]) <= 1 for r in rows)
    assert re.search(r"report, Euler 1 step\(s\): \d+ crossing pairs", out), out


@pytest.mark.slow
def test_adaptation_loop_example(capsys):
    out = _run("adaptation_loop.py", capsys)
    assert len(re.findall(r"^iteration +\d+: h = [\d.]+", out, flags=re.M)) >= 5, out
    assert re.search(r"^final: \d+ Euler steps, test accuracy [\d.]+", out, flags=re.M)
