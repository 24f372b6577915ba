"""The studies' one definition: `make ott2021`'s plan (every stage a valid command of its
script), what it publishes into the documentation, and the `make` targets."""

import subprocess
from pathlib import Path

import pytest

from experiments import certification, ott2021, reproduce_ott2021, sander2022, study
from experiments._cli import script_main

REPO = Path(__file__).resolve().parents[1]


def test_every_stage_is_a_valid_command(tmp_path, parse_only):
    stages = reproduce_ott2021.plan(tmp_path)
    outs = [Path(argv[argv.index("--out") + 1]).name for _, argv in stages]
    assert len(set(outs)) == len(outs)  # no two stages share a folder
    assert {"figure1", "figure2", "figure3", "sweep-euler", "sweep-rk4", "sweep-dopri5",
            "sweep-fehlberg2", "sweep-euler-backsolve", "sweep-sphere3", "sweep-sphere10",
            "sweep-sphere900", "table1.md"} <= set(outs)  # fmt: skip
    for stage, argv in stages:
        with pytest.raises(parse_only):
            script_main(stage.script)(argv)


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
    for stage, argv in reproduce_ott2021.plan(tmp_path, seeds=2):
        if stage.trains:
            with pytest.raises(parse_only) as parsed:
                script_main(stage.script)(argv)
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


def test_every_study_is_a_valid_command_and_a_make_target_runs_it(tmp_path, parse_only):
    names = set()
    for studies in study.STUDIES.values():
        for s in studies:
            names.add(s.name)
            with pytest.raises(parse_only):  # the study's command, and with options
                script_main(s.script)(s.argv(tmp_path))
            assert s.command().startswith(f"python experiments/{s.script}.py ")
    defined = (*ott2021.STUDIES, *sander2022.STUDIES, *certification.STUDIES)
    assert len(names) == len({s.name for s in defined}) + 1  # and sweep-midpoint
    # The Makefile runs a study by its name, with ARGS after its own options.
    done = subprocess.run(
        ["make", "-n", "sweep-euler", "ARGS=--quick"], cwd=REPO, capture_output=True
    )
    assert done.returncode == 0
    assert "experiments/study.py sweep-euler --quick" in done.stdout.decode()


def test_options_given_override_the_studys_own(tmp_path, parse_only):
    argv = ott2021.SWEEP_EULER.argv(tmp_path, ["--steps", "2", "--out", "elsewhere"])
    with pytest.raises(parse_only) as parsed:
        script_main("sweep")(argv)
    args = parsed.value.args[0]
    assert args.steps == [2] and args.out == "elsewhere" and args.solver == "euler"


def test_the_study_runner_names_a_bad_study_in_one_line(capsys):
    assert study.main(["sweep-eulr"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown study 'sweep-eulr'; expected one of figure3, ")
    assert len(err.strip().splitlines()) == 1
    assert study.main(["--list"]) == 0
    assert "sweep-euler: the Euler step-size sweep" in capsys.readouterr().out


def test_each_parameter_list_is_defined_once():
    """The Fehlberg2 tolerances (and every other study's grid) are written in one place."""
    needles = ["1e-1 1e-2 1e-3 1e-4 1e-5", "1e-1, 1e-2, 1e-3, 1e-4, 1e-5", "0.1 0.01 0.001"]
    hits = []
    for path in [REPO / "Makefile", *(REPO / "experiments").rglob("*.py")]:
        text = path.read_text()
        hits += [(path.name, n) for n in needles if n in text]
    assert hits == [("__init__.py", "1e-1, 1e-2, 1e-3, 1e-4, 1e-5")], hits
