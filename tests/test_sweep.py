import json
from pathlib import Path

import pytest
from scripts import Script, call_main

REPO = Path(__file__).resolve().parents[1]

sweep_cli = Script("sweep")


def test_quick_sweep_writes_its_folder_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = [
        "--quick",
        "--steps",
        "1",
        "4",
        "--seeds",
        "0",
        "--iterations",
        "100",
        "--channels",
        "8",
        "--reference",
        "rk4:32",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert sweep_cli.main(argv) == 0
    for name in (
        "results.jsonl",
        "summary.md",
        "critical_step.json",
        "sweep.json",
        "accuracy_vs_test_steps.png",
    ):
        assert (out / name).exists(), name
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    # 2 training configs × 1 seed × (3 solvers × 5 factors + reference)
    assert len(rows) == 2 * 16
    assert {r["train_steps"] for r in rows} == {1, 4}
    assert sum(r["reference"] for r in rows) == 2
    assert (out / "accuracy_vs_test_steps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    critical = json.loads((out / "critical_step.json").read_text())
    assert set(critical) == {"threshold", "h_star", "steps_star", "mean_max_gap"}
    summary = (out / "summary.md").read_text()
    assert "| 4 | 0.25 | 4 |" in summary and "Critical step size" in summary
    capsys.readouterr()
    assert sweep_cli.main(argv) == 0
    assert capsys.readouterr().out.count("done earlier, skipped") == 2
    # A different sweep in the same folder is refused, and nothing is overwritten.
    before = (out / "results.jsonl").read_bytes()
    assert sweep_cli.main([*argv[:-3], "--threshold", "0.2", "--out", str(out)]) == 2
    assert (
        "holds another sweep (threshold is 0.1 there, 0.2 here)" in capsys.readouterr().err
    )
    assert (out / "results.jsonl").read_bytes() == before
    # Sequential and threaded sweeps give the same rows.
    serial = tmp_path / "serial"
    assert sweep_cli.main([*argv[:-3], "--jobs", "1", "--out", str(serial)]) == 0
    assert (serial / "results.jsonl").read_bytes() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--solver", "rk5"], "error: unknown solver 'rk5'; expected one of"),
        (["--steps", "0"], "error: steps must be an integer >= 1, got 0"),
        (["--reference", "rk4"], "error: --reference must be SOLVER:STEPS"),
        (["--test-solvers", "foo"], "error: --test-solvers: unknown solver 'foo'"),
        (
            ["--solver", "rk4", "--tols", "1e-3"],
            "error: solver 'rk4' has no error estimate",
        ),
        (["--dataset", "mnist3"], "error: unknown dataset 'mnist3'"),
        (["--jobs", "0"], "error: jobs must be an integer >= 1, got 0"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message, capsys):
    out = tmp_path / "never"
    code, _, err = call_main(sweep_cli.main, [*args, "--out", str(out), "--quick"], capsys)
    assert code == 2
    assert err.strip().startswith(message), err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_sweep_folder_from_before_a_new_config_field_resumes(tmp_path):
    """A sweep.json written before `TrainConfig` gained a field (here `adjoint`) holds
    that field's default; another value is still refused."""
    from experiments.lab.sweep_runs import SweepOptions, _check_folder, _plan

    base = SweepOptions(seeds=(0,), iterations=10, steps=(2,), test_solvers=("euler",),
                        factors=(1.0,), reference="none", threshold=0.1)  # fmt: skip
    plan = _plan(base)
    older = json.loads(json.dumps(plan.spec))
    del older["base"]["adjoint"]
    (tmp_path / "sweep.json").write_text(json.dumps(older))
    _check_folder(plan, tmp_path)
    other = _plan(base.replaced(adjoint="backsolve"))
    with pytest.raises(
        ValueError, match="base.adjoint is 'backprop' there, 'backsolve' here"
    ):
        _check_folder(other, tmp_path)
