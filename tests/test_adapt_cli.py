"""experiments/adapt.py and experiments/table1.py from the command line's side."""

import json
from pathlib import Path

import numpy as np
import pytest
from archives import accept, write_cifar
from scripts import Script

from experiments import _cli as cli, ott2021
from experiments.lab.options import TrainingOptions
from odeness.data import _images as images

REPO = Path(__file__).resolve().parents[1]
adapt_cli, sweep_cli, table1_cli = Script("adapt"), Script("sweep"), Script("table1")


SMALL = ["--channels", "8", "--no-progress", "--seeds", "0", "1"]


@pytest.mark.slow
def test_adapt_writes_a_run_folder_and_resumes(tmp_path, capsys):
    out = tmp_path / "adapt"
    argv = [
        *SMALL,
        "--steps",
        "2",
        "--iterations",
        "100",
        "--lr",
        "3e-3",
        "--out",
        str(out),
    ]
    assert adapt_cli.main(argv) == 0
    for name in ("config.json", "metrics.jsonl", "checkpoint.eqx", "swap.jsonl",
                 "summary.json", "summary.md", "adaptation.png"):  # fmt: skip
        assert (out / name).exists(), name
    assert (out / "adaptation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((out / "config.json").read_text())
    assert config["adapt"] is True and config["interval"] == 50 and config["steps"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["check_step"] for r in rows] == [0, 0, 50, 50]
    assert all({"dt", "nfe", "train_accuracy", "test_accuracy", "loss"} <= set(r)
               for r in rows)  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert [s["seed"] for s in summary["seeds"]] == [0, 1]
    swap = [json.loads(line) for line in (out / "swap.jsonl").read_text().splitlines()]
    assert len(swap) == 2 * 3 * 5
    assert "final steps" in capsys.readouterr().out
    # Training on: the run resumes from its checkpoint and keeps its metrics.
    assert adapt_cli.main([*argv[:-2], "--iterations", "150", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [50, 50, 100, 100, 150, 150]


def test_adapt_tolerance_quick(tmp_path):
    out = tmp_path / "dopri5"
    argv = ["--solver", "dopri5", "--tol", "1e-3", "--quick", "--iterations", "50",
            *SMALL, "--out", str(out)]  # fmt: skip
    assert adapt_cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "tol" in summary["seeds"][0]
    swap = [json.loads(line) for line in (out / "swap.jsonl").read_text().splitlines()]
    assert {r["solver"] for r in swap} == {"dopri5"} and len(swap) == 2 * 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "cifar100"], "error: unknown dataset 'cifar100'"),
        (["--solver", "rk5"], "error: --solver: unknown solver 'rk5'"),
        (["--solver", "dopri5", "--steps", "4"], "adapts its tolerance: give --tol"),
        (["--tol", "1e-3"], "has fixed steps: give --steps"),
        (["--test-solver", "euler"], "must be of higher order"),
        (["--threshold", "2"], "threshold must lie in [0, 1], got 2.0"),
        (["--interval", "0"], "interval must be an integer >= 1, got 0"),
        (["--solver", "rk4"], "no default test solver for training solver 'rk4'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert adapt_cli.main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_cifar10_missing_says_what_to_do(tmp_path, capsys, monkeypatch, offline):
    monkeypatch.setenv("ODENESS_TFDS_DIR", str(tmp_path / "tfds"))
    out = tmp_path / "run"
    argv = ["--dataset", "cifar10", "--data-dir", str(tmp_path / "none"), "--out", str(out)]
    assert adapt_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cifar-10-python.tar.gz" in err
    assert "ODENESS_CIFAR10_DIR" in err and "--data-dir" in err
    assert err.count("\n") == 1
    assert not out.exists()


@pytest.mark.slow
def test_cifar10_from_a_local_archive(tmp_path, monkeypatch, offline):
    made = write_cifar(tmp_path / "src", np.random.default_rng(2), per_batch=4, test=6)
    accept(monkeypatch, images.OdenessCifar10, made["digests"])
    monkeypatch.setenv("ODENESS_TFDS_DIR", str(tmp_path / "tfds"))
    out = tmp_path / "run"
    argv = ["--dataset", "cifar10", "--data-dir", str(tmp_path / "src"), "--channels", "2",
            "--batch-size", "8", "--iterations", "4", "--interval", "2", "--steps", "2",
            "--seeds", "0", "--no-progress", "--out", str(out)]  # fmt: skip
    assert adapt_cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "cifar10" and len(summary["seeds"]) == 1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["check_step"] for r in rows] == [0, 2]


@pytest.mark.slow
def test_table1_from_a_sweep_and_an_adapted_run(tmp_path, capsys):
    sweep_dir, adapt_dir = tmp_path / "sweep", tmp_path / "adapt"
    common = ["--seeds", "0", "--iterations", "50", "--channels", "8", "--no-progress"]
    assert sweep_cli.main([*common, "--steps", "1", "4", "--reference", "none",
                           "--out", str(sweep_dir)]) == 0  # fmt: skip
    assert adapt_cli.main([*common, "--steps", "4", "--out", str(adapt_dir)]) == 0
    out = tmp_path / "table1.md"
    argv = ["--row", str(sweep_dir), str(adapt_dir), "--out", str(out)]
    assert table1_cli.main(argv) == 0
    text = out.read_text()
    assert "| sphere2 | euler | adapted from h 1/4 | 50 |" in text
    critical = json.loads((sweep_dir / "critical_step.json").read_text())
    if critical["steps_star"] is not None:
        n = critical["steps_star"]
        assert f"grid search (h*) | 50 | 1/{n} | {n:.1f} ± 0.0" in text
        assert f"{n * 50:,} ± 0" in text  # training NFE of the run at h*
        assert f"| {float(n):.1f} ± 0.0 | 1 | – |" in text  # per iteration: n steps
        seed = json.loads((adapt_dir / "summary.json").read_text())["seeds"][0]
        adapted_nfe = seed["train_nfe_total"]
        per_iteration = (adapted_nfe + seed["check_nfe_total"]) / 50
        assert (
            f"| {adapted_nfe:,} ± 0 | {per_iteration:.1f} ± 0.0 | "
            f"{adapted_nfe / (n * 50):.2f} |" in text
        )
    else:
        assert "no ODE on the grid" in text
    capsys.readouterr()
    # A missing folder or mismatched pair is a one-line error, and nothing is written.
    out.unlink()
    assert table1_cli.main(["--row", str(sweep_dir), str(tmp_path / "x"),
                            "--out", str(out)]) == 2  # fmt: skip
    assert "run experiments/adapt.py first" in capsys.readouterr().err
    assert table1_cli.main(["--row", str(sweep_dir), "--out", str(out)]) == 2
    assert "names no adapted run" in capsys.readouterr().err
    assert not out.exists()


def test_reproduce_table1_plans_every_run_and_checks_them_first(tmp_path, capsys):
    adjust = cli.group_changes(None, False, "--seeds 0")
    runs = [adjust(s.resolved(tmp_path)) for s in ott2021.TABLE1_MNIST.studies()]
    assert [o.command for o in runs] == ["sweep", "adapt", "sweep"] + ["adapt"] * 3 + [
        "sweep", "adapt", "table1"
    ]  # fmt: skip
    assert [o.folder.name for o in runs] == [
        "sweep-euler", "adapt-sphere2-euler", "sweep-dopri5", "adapt-sphere2-dopri5",
        "adapt-sphere2-dopri5-tol1e-4", "adapt-sphere2-dopri5-tol1e-3",
        "sweep-mnist-euler", "adapt-mnist-euler", "table1.md",
    ]  # fmt: skip
    assert all(o.seeds == (0,) for o in runs[:-1] if isinstance(o, TrainingOptions))
    # Bad options are refused before anything is written, naming the study.
    argv = ["--mnist", "--results", str(tmp_path / "r"), "--args", "--threshold 2"]
    assert cli.main(["reproduce_table1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "error: sweep-euler: threshold must lie in [0, 1], got 2.0" in err
    assert not (tmp_path / "r").exists()
