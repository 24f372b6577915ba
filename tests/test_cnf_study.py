"""The flow study (`make cnf`): a quick run writes its folder, resumes, and compares."""

import json

import pytest

from experiments.cnf.flow_runs import FlowComparisonOptions, FlowOptions

QUICK = dict(
    seeds=(0,), iterations=10, batch_size=64, channels=8, points=12, progress=False
)


@pytest.mark.slow
def test_a_quick_flow_study_writes_its_folder_resumes_and_compares(tmp_path, capsys):
    out = tmp_path / "ring8-euler"
    options = FlowOptions(steps=(1, 2), out=str(out), **QUICK)
    assert "2 flows evaluated" in options.run()
    flows = json.loads((out / "flows.json").read_text())
    assert [r["value"] for r in flows["rows"]] == [1, 2] and flows["grid"] == "steps"
    for r in flows["rows"]:
        assert abs(r["mass_reference"] - 1) < 0.05  # an accurate solve: a density
        assert r["max_gap"] >= 0 and r["nfe"] == r["value"]
    summary = (out / "summary.md").read_text()
    assert "| 1 | 1 + 2 |" in summary and "**Critical step size:**" in summary
    assert (out / "densities.png").stat().st_size > 10_000
    before = (out / "flows.json").read_bytes()
    capsys.readouterr()
    options.run()  # resumes: nothing is trained again
    assert capsys.readouterr().out.count("done earlier, skipped") == 2
    assert (out / "flows.json").read_bytes() == before
    FlowOptions(tols=(0.1,), solver="dopri5", out=str(tmp_path / "dopri5"), **QUICK).run()
    compared = FlowComparisonOptions(out=str(tmp_path / "comparison")).run()
    assert "compared 2 flow studies" in compared
    table = (tmp_path / "comparison" / "comparison.md").read_text()
    assert "ring8-euler" in table and "dopri5" in table
    assert (tmp_path / "comparison" / "max_gap.png").exists()


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(dataset="sphere2"), "--dataset must be a 2-D density"),
        (dict(steps=(1,), tols=(0.1,)), "give --steps or --tols, not both"),
        (dict(solver="nope"), "--solver: unknown solver 'nope'"),
        (dict(threshold=-1.0), "threshold must be a finite number >= 0"),
        (dict(points=1), "--points must be an integer >= 2, got 1"),
    ],
)
def test_bad_flow_options_are_one_line(changes, message, tmp_path):
    with pytest.raises(ValueError, match=None) as info:
        FlowOptions(out=str(tmp_path), **{**QUICK, **changes}).check()
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not any(tmp_path.iterdir())


def test_the_comparison_needs_flows(tmp_path):
    with pytest.raises(ValueError, match="no flows.json under"):
        FlowComparisonOptions(out=str(tmp_path / "comparison")).run()
