"""`make ott2021`'s plan: every stage a valid command of its script, and what it
publishes into the documentation."""

from pathlib import Path

import pytest

from experiments import reproduce_ott2021


def test_every_stage_is_a_valid_command(tmp_path, parse_only):
    stages = reproduce_ott2021.plan(tmp_path)
    outs = [Path(argv[argv.index("--out") + 1]).name for _, argv in stages]
    assert len(set(outs)) == len(outs)  # no two stages share a folder
    assert {"figure1", "figure2", "figure3", "sweep-euler", "sweep-rk4", "sweep-dopri5",
            "sweep-fehlberg2", "sweep-euler-backsolve", "sweep-sphere3", "sweep-sphere10",
            "sweep-sphere900", "table1.md"} <= set(outs)  # fmt: skip
    for script, argv in stages:
        with pytest.raises(parse_only):
            reproduce_ott2021.SCRIPTS[script](argv)


def test_publish_copies_what_exists(tmp_path):
    results, docs = tmp_path / "results", tmp_path / "docs"
    (results / "sweep-euler").mkdir(parents=True)
    (results / "sweep-euler" / "summary.md").write_text("euler")
    (results / "sweep-euler" / "results.jsonl").write_text("{}")  # not published
    (results / "table1.md").write_text("table")
    copied = reproduce_ott2021.publish(results, docs)
    assert sorted(p.relative_to(docs).as_posix() for p in copied) == [
        "sweep-euler/summary.md",
        "table1.md",
    ]
    assert (docs / "sweep-euler" / "summary.md").read_text() == "euler"
    argv = ["--results", str(results), "--docs", str(tmp_path / "again"), "--publish-only"]
    assert reproduce_ott2021.main(argv) == 0
    assert (tmp_path / "again" / "table1.md").read_text() == "table"


def test_seeds_override_every_training_stage(tmp_path, parse_only):
    trained = 0
    for script, argv in reproduce_ott2021.plan(tmp_path, seeds=2):
        if script in ("sweep", "adapt"):
            with pytest.raises(parse_only) as parsed:
                reproduce_ott2021.SCRIPTS[script](argv)
            assert parsed.value.args[0].seeds == [0, 1], argv
            trained += 1
    assert trained == 12  # 8 sweeps, 4 adapted runs


def test_seeds_must_be_positive(capsys):
    with pytest.raises(SystemExit) as e:
        reproduce_ott2021.main(["--seeds", "0"])
    assert e.value.code == 2
    assert "--seeds must be an integer >= 1, got 0" in capsys.readouterr().err


def test_seeds_runs_publish_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "results" / "ott2021-seeds1"
    (folder / "sweep-euler").mkdir(parents=True)
    (folder / "sweep-euler" / "summary.md").write_text("one seed")
    assert reproduce_ott2021.main(["--seeds", "1", "--publish-only"]) == 0
    assert not (tmp_path / "docs").exists()  # the documented results stay as they are
    argv = ["--seeds", "1", "--publish-only", "--docs", "d"]
    assert reproduce_ott2021.main(argv) == 0
    assert (tmp_path / "d" / "sweep-euler" / "summary.md").read_text() == "one seed"
