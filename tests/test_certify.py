"""`experiments/certify.py`: the three verdicts of trained run folders, resumable, and
its bad input."""

import pytest
from scripts import Script

import odeness
from experiments import _catalogue as catalogue, _cli as cli
from experiments.certification import CERTIFY_EULER
from experiments.lab.certification import CertifyOptions

certify = Script("certify")


@pytest.mark.slow
def test_certify_writes_each_model_and_resumes(tmp_path, capsys):
    runs = []
    for n in (2, 64):
        config = odeness.TrainConfig(
            dataset="sphere2",
            steps=n,
            seeds=(0, 1),
            iterations=300,
            learning_rate=3e-3,
            channels=8,
        )
        folder = tmp_path / f"euler-n{n:04d}"
        odeness.train(config, run_dir=folder, progress=False)
        runs.append(str(folder))
    out = tmp_path / "certify"
    argv = [*runs, "--out", str(out), "--points", "300"]
    assert certify.main(argv) == 0
    text = (out / "summary.md").read_text()
    assert "| euler at 2 steps | 2 |" in text and "| euler at 64 steps | 2 |" in text
    models = sorted(p.name for p in (out / "models").iterdir())
    assert models == [f"euler-n{n:04d}-seed{s}.json" for n in (2, 64) for s in (0, 1)]
    rows = odeness.files.read_jsonl(out / "certify.jsonl")
    assert {r["training"] for r in rows} == {"euler at 2 steps", "euler at 64 steps"}
    for r in rows:  # only a model the threshold calls an ODE gets a deployment solver
        assert r["ode"] or r["chosen"] is None
    assert any(not r["ode"] for r in rows)  # the 2-step models are not ODEs
    assert any(r["chosen"] for r in rows)  # the 64-step ones are, and get a solver
    capsys.readouterr()
    assert certify.main(argv) == 0  # every model read back: nothing tested again
    assert "seed" not in capsys.readouterr().out.split("# Three verdicts")[0]
    assert (out / "summary.md").read_text() == text


def test_certify_names_bad_input(tmp_path, capsys):
    assert certify.main([str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {tmp_path} is not a run folder (no config.json); give folders written "
        "by odeness.train"
    )
    assert certify.main([str(tmp_path), "--within", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--within must be a finite number > 0, got 0.0" in err


def test_the_certification_study_reads_the_sweeps_runs(tmp_path):
    options = CERTIFY_EULER.resolved(tmp_path)
    assert isinstance(options, CertifyOptions) and options.runs is not None
    runs = options.runs
    assert runs[0] == str(tmp_path / "sweep-euler" / "runs" / "euler-n0001")
    assert len([a for a in runs if "/runs/" in a]) == 8
    assert "certify-euler" in catalogue.CATALOGUE


def test_make_certification_reports_missing_models_and_publishes(tmp_path, capsys):
    results, docs = tmp_path / "results", tmp_path / "docs"
    results.mkdir()
    argv = ["reproduce_certification", "--results", str(results), "--docs", str(docs)]
    assert cli.main(argv) == 2  # no trained models: both stages fail
    err = capsys.readouterr().err
    assert (
        err.startswith("error: 2 of 2 studies failed: certify-euler (")
        and err.count("\n") == 1
    )
    assert "; certify-mnist (" in err and "is not a run folder" in err
    assert not docs.exists() or not any(docs.rglob("summary.md"))
    (results / "certify-mnist").mkdir()
    (results / "certify-mnist" / "summary.md").write_text("verdicts")
    assert cli.main([*argv, "--publish-only"]) == 0
    assert (docs / "certify-mnist" / "summary.md").read_text() == "verdicts"
    assert not (docs / "certify-euler").exists()
