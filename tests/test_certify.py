"""`experiments/certify.py`: the three verdicts of trained run folders, resumable, and
its bad input."""

import pytest

import odeness
from experiments import certify, study
from experiments.certification import CERTIFY_EULER


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
    with pytest.raises(SystemExit):
        certify.main([str(tmp_path), "--within", "0"])
    assert "--within must be a finite number > 0, got 0.0" in capsys.readouterr().err


def test_the_certification_study_reads_the_sweeps_runs(tmp_path):
    argv = CERTIFY_EULER.argv(tmp_path)
    assert argv[0] == str(tmp_path / "sweep-euler" / "runs" / "euler-n0001")
    assert len([a for a in argv if "/runs/" in a]) == 8
    assert "certify-euler" in study.STUDIES


def test_make_certification_reports_missing_models_and_publishes(tmp_path, capsys):
    from experiments import reproduce_certification

    results, docs = tmp_path / "results", tmp_path / "docs"
    results.mkdir()
    argv = ["--results", str(results), "--docs", str(docs)]
    assert reproduce_certification.main(argv) == 2  # no trained models: both stages fail
    err = capsys.readouterr().err
    assert "stages that failed: 1 (certify.py, exit status 2), 2 (certify.py" in err
    assert not docs.exists() or not any(docs.rglob("summary.md"))
    (results / "certify-mnist").mkdir()
    (results / "certify-mnist" / "summary.md").write_text("verdicts")
    assert reproduce_certification.main([*argv, "--publish-only"]) == 0
    assert (docs / "certify-mnist" / "summary.md").read_text() == "verdicts"
    assert not (docs / "certify-euler").exists()
