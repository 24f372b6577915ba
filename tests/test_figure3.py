"""Figure 3 (XOR under Euler): separability decided exactly, at both steps and along h."""

import json

import numpy as np
import pytest
from scripts import run_main

from experiments.ott2021.xor_fan import XOR, XorODE, exact_end, panel, separable, sweep


def test_separability_is_exact():
    assert not separable(XOR)  # the XOR points themselves: the diagonals cross
    assert separable(np.array([[0, 0], [1, 0], [0, 1], [1, 1]]))  # rows apart
    # Touching counts as not separable: class 1's segment ends on class 0's.
    assert not separable(np.array([[0, 0], [2, 0], [1, 0], [1, 1]]))


def test_coarse_euler_separates_what_the_fine_one_and_the_flow_do_not():
    ode, end = XorODE(), 2.5
    assert panel(ode, 10**-2.5, end).separable
    assert not panel(ode, 10**-3.5, end).separable
    assert not separable(exact_end(ode, end, steps=4000))
    verdicts = [s for _, s in sweep(ode, np.logspace(-2.5, -3.5, 6), end)]
    assert verdicts[0] and not verdicts[-1]
    assert sum(a != b for a, b in zip(verdicts[:-1], verdicts[1:], strict=True)) == 1


@pytest.mark.slow
def test_figure3_script(tmp_path, capsys):
    out = tmp_path / "fig3"
    done = run_main("figure3", "--out", str(out), "--points", "5", capsys=capsys)
    assert done.returncode == 0, done.stderr
    numbers = json.loads((out / "figure3.json").read_text())
    assert [p["separable"] for p in numbers["panels"]] == [True, False]
    assert (out / "figure3.png").read_bytes()[:4] == b"\x89PNG"
    bad = run_main("figure3", "--points", "1", "--out", str(out / "bad"), capsys=capsys)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: --points must be an integer >= 2, got 1"
    )
