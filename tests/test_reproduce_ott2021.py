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
