"""The studies' one definition: `make ott2021`'s plan (every stage a valid command of its
script), what it publishes into the documentation, and the `make` targets."""

import subprocess
from pathlib import Path

import pytest

from experiments import (
    _catalogue as catalogue,
    _cli as cli,
    certification,
    ott2021,
    sander2022,
)
from experiments.lab.options import TrainingOptions, command_line
from experiments.lab.runner import Group, publish
from experiments.lab.sweep_runs import SweepOptions

REPO = Path(__file__).resolve().parents[1]
STAGES = ott2021.OTT2021.studies()


def test_every_stage_is_a_valid_command(tmp_path):
    outs = [s.folder(tmp_path).name for s in STAGES]
    assert len(set(outs)) == len(outs)  # no two stages share a folder
    assert {"figure1", "figure2", "figure3", "sweep-euler", "sweep-rk4", "sweep-dopri5",
            "sweep-fehlberg2", "sweep-euler-backsolve", "sweep-sphere3", "sweep-sphere10",
            "sweep-sphere900", "table1.md"} <= set(outs)  # fmt: skip
    for stage in STAGES:  # its command line, parsed by its script, gives its options
        options = stage.resolved(tmp_path)
        assert cli.parse(type(options), command_line(options)) == options, stage.name


def test_publish_copies_what_exists(tmp_path):
    results, docs = tmp_path / "results", tmp_path / "docs"
    (results / "sweep-euler").mkdir(parents=True)
    (results / "sweep-euler" / "summary.md").write_text("euler")
    (results / "sweep-euler" / "results.jsonl").write_text("{}")  # not published
    (results / "table1.md").write_text("table")
    copied = publish(STAGES, results, docs)
    assert sorted(p.relative_to(docs).as_posix() for p in copied) == [
        "sweep-euler/summary.md",
        "table1.md",
    ]
    assert (docs / "sweep-euler" / "summary.md").read_text() == "euler"
    argv = ["--results", str(results), "--docs", str(tmp_path / "again"), "--publish-only"]
    assert cli.main(["reproduce_ott2021", *argv]) == 0
    assert (tmp_path / "again" / "table1.md").read_text() == "table"


def test_seeds_override_every_training_stage(tmp_path):
    adjust = cli.group_changes(seeds=2, quick=False, args="")
    trained = 0
    for stage in STAGES:
        options = adjust(stage.resolved(tmp_path))
        assert not getattr(options, "progress", False)  # a group shows no progress bars
        if isinstance(options, TrainingOptions):
            assert options.seeds == (0, 1), stage.name
            trained += 1
    assert trained == 12  # 8 sweeps, 4 adapted runs


def test_seeds_must_be_positive(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["reproduce_ott2021", "--seeds", "0"])
    assert e.value.code == 2
    assert "--seeds must be an integer >= 1, got 0" in capsys.readouterr().err


def test_seeds_runs_publish_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "results" / "ott2021-seeds1"
    (folder / "sweep-euler").mkdir(parents=True)
    (folder / "sweep-euler" / "summary.md").write_text("one seed")
    assert cli.main(["reproduce_ott2021", "--seeds", "1", "--publish-only"]) == 0
    assert not (tmp_path / "docs").exists()  # the documented results stay as they are
    argv = ["--seeds", "1", "--publish-only", "--docs", "d"]
    assert cli.main(["reproduce_ott2021", *argv]) == 0
    assert (tmp_path / "d" / "sweep-euler" / "summary.md").read_text() == "one seed"


def test_every_study_is_a_valid_command_and_a_make_target_runs_it(tmp_path):
    names = set()
    for target in catalogue.CATALOGUE.values():
        for s in target.studies() if isinstance(target, Group) else [target]:
            names.add(s.name)
            options = s.resolved(tmp_path)
            assert cli.parse(type(options), command_line(options)) == options
            assert s.command().startswith(f"python experiments/{options.command}.py ")
    defined = (*ott2021.STUDIES, *sander2022.STUDIES, *certification.STUDIES)
    assert names >= {s.name for s in defined}
    # The Makefile runs a study by its name, with ARGS after its own options.
    done = subprocess.run(
        ["make", "-n", "sweep-euler", "ARGS=--quick"], cwd=REPO, capture_output=True
    )
    assert done.returncode == 0
    assert "experiments/study.py sweep-euler --quick" in done.stdout.decode()


def test_options_given_override_the_studys_own(tmp_path):
    study = ott2021.SWEEP_EULER.resolved(tmp_path)
    options = cli.parse(SweepOptions, ["--steps", "2", "--out", "elsewhere"], study)
    assert isinstance(options, SweepOptions) and isinstance(study, SweepOptions)
    assert (
        options.steps == (2,) and options.out == "elsewhere" and options.solver == "euler"
    )
    assert options.seeds == study.seeds  # the others as the study has them


def test_the_study_runner_names_a_bad_study_in_one_line(capsys):
    assert cli.main(["study", "sweep-eulr"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown study 'sweep-eulr'; expected one of figure3, ")
    assert len(err.strip().splitlines()) == 1
    assert cli.main(["study", "--list"]) == 0
    assert "sweep-euler: the Euler step-size sweep" in capsys.readouterr().out


def test_each_parameter_list_is_defined_once():
    """The Fehlberg2 tolerances (and every other study's grid) are written in one place."""
    needles = ["1e-1 1e-2 1e-3 1e-4 1e-5", "1e-1, 1e-2, 1e-3, 1e-4, 1e-5", "0.1 0.01 0.001"]
    hits = []
    for path in [REPO / "Makefile", *(REPO / "experiments").rglob("*.py")]:
        text = path.read_text()
        hits += [(path.name, n) for n in needles if n in text]
    assert hits == [("__init__.py", "1e-1, 1e-2, 1e-3, 1e-4, 1e-5")], hits
