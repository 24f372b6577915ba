"""The regularisation study (`make regularisation`): its plan, and the comparison read
from real (tiny) sweeps."""

import subprocess
from pathlib import Path

import pytest
from scripts import Script

from experiments import _cli as cli, regularisation
from experiments.lab.runner import run_study
from experiments.lab.sweep_runs import STEPS, SweepOptions
from experiments.regularisation.comparison import SweepEntry, claim_rows

REPO = Path(__file__).resolve().parents[1]
compare_regularisers = Script("compare_regularisers")


def test_every_stage_is_a_valid_command_with_its_regulariser(tmp_path):
    adjust = cli.group_changes(None, True, "")  # make regularisation ARGS=--quick
    planned = [
        adjust(s.resolved(tmp_path)) for s in regularisation.REGULARISATION.studies()
    ]
    outs = [o.folder for o in planned]
    assert len(set(outs)) == len(outs)  # no two stages share a folder
    assert all(o.parent == tmp_path for o in outs)
    weights = {(n, v) for n, values in regularisation.WEIGHTS.items() for v in values}
    swept = set()
    for study, options in zip(regularisation.STUDIES, planned, strict=True):
        if study in regularisation.EULER:
            assert isinstance(options, SweepOptions)
            assert options.steps == STEPS == (1, 2, 4, 8, 16, 32, 64, 128) and options.quick
            swept |= set(options.regularise)
    assert swept == weights  # each chosen weight has its sweep
    done = subprocess.run(["make", "-n", "regularisation"], cwd=REPO, capture_output=True)
    assert "experiments/reproduce_regularisation.py" in done.stdout.decode()


def _sweep(results: Path, study) -> None:
    def small(options):
        return options.replaced(steps=(2, 4), seeds=(0,), iterations=40, reference="none",
                                progress=False)  # fmt: skip

    run_study(study, results, small)


@pytest.mark.slow
def test_the_comparison_reads_the_sweeps_that_exist(tmp_path):
    results = tmp_path / "results"
    none, kinetic = regularisation.EULER[0], regularisation.EULER[1]
    _sweep(results, none)
    _sweep(results, kinetic)
    out = results / "comparison"
    assert compare_regularisers.main(["--out", str(out)]) == 0
    text = (out / "comparison.md").read_text()
    assert isinstance(kinetic.options, SweepOptions)
    name, weight = kinetic.options.regularise[0]
    assert f"| {name} {weight:g} |" in text and "| none |" in text
    assert "## The cheapest way to an ODE" in text
    assert "## Not run yet" in text and "adapt-euler" in text  # named, not invented
    assert "## dopri5" not in text
    assert (out / "max_gap.png").stat().st_size > 0
    # A second run over the same folders writes the same tables.
    assert compare_regularisers.main(["--out", str(out)]) == 0
    assert (out / "comparison.md").read_text() == text


def test_the_comparison_refuses_a_missing_results_folder(tmp_path, capsys):
    argv = ["--out", str(tmp_path / "c"), "--results", str(tmp_path / "nothing")]
    assert compare_regularisers.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"error: --results {tmp_path / 'nothing'} is not a folder; run the studies first"
    )
    assert not (tmp_path / "c").exists()


def _entry(name, weight, nfe, accuracy):
    tol = 1e-3
    return SweepEntry(name, weight, 300, [tol], None, {tol: [0.0]}, {tol: accuracy},
                      {tol: nfe}, {tol: 0.0}, {tol: 0.01})  # fmt: skip


def test_the_papers_claim_needs_fewer_evaluations_at_a_similar_accuracy():
    rows = claim_rows([
        _entry("none", None, [30.0, 32.0], [0.99, 0.99]),
        _entry("kinetic", 1.0, [20.0, 22.0], [0.985, 0.985]),  # fewer, similar
        _entry("jacobian", 1.0, [20.0, 20.0], [0.90, 0.90]),  # fewer, worse
        _entry("taylor2", 1.0, [40.0, 40.0], [0.99, 0.99]),  # more
    ])  # fmt: skip
    assert [r[-1] for r in rows] == ["–", "yes", "fewer evaluations, lower accuracy", "no"]
    assert rows[1][2] == f"{21 / 31:.2f}"


def test_quick_runs_publish_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "results" / "regularisation-quick" / "comparison"
    folder.mkdir(parents=True)
    (folder / "comparison.md").write_text("quick")
    assert cli.main(["reproduce_regularisation", "--quick", "--publish-only"]) == 0
    assert not (tmp_path / "docs").exists()  # the documented results stay as they are
    argv = ["--quick", "--publish-only", "--docs", "d"]
    assert cli.main(["reproduce_regularisation", *argv]) == 0
    assert (tmp_path / "d" / "comparison" / "comparison.md").read_text() == "quick"
