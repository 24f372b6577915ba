"""Bad input and failed runs, from the command line: one line naming the value, exit
status 2, and the output folder as it was; a diverged run is never reported as an ODE."""

import hashlib
import json
import math
import subprocess
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scripts import Script, call_main, run_main, run_script

import odeness
from experiments.lab import sweep_runs as ott2021_sweep
from experiments.lab.axes import StepsAxis
from odeness import files as io
from odeness._run_folder import checkpointable as _checkpointable
from odeness._training import init_state

SMALL = ["--channels", "4", "--seeds", "0", "--no-progress"]
adapt_cli, figure1_cli, sweep_cli = Script("adapt"), Script("figure1"), Script("sweep")
resnet_ode_cli, table1_cli = Script("resnets"), Script("table1")


def command(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run `experiments/<script>.py` as a user would."""
    return run_script(f"{script}.py", *args)


def main(module, argv: list[str], capsys) -> tuple[int, str]:
    """A script's `main` in this process: its exit status and what it printed on stderr."""
    ran = call_main(module.main, argv, capsys)
    return ran.returncode, ran.stderr


def one_line(code, err: str, message: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err


def snapshot(folder: Path) -> dict[str, bytes] | None:
    if not folder.exists():
        return None
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).digest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# A diverged run is reported as diverged, never evaluated or called an ODE.


@pytest.mark.slow
def test_a_diverged_sweep_reports_it_and_runs_the_other_configurations(tmp_path, capsys):
    out = tmp_path / "sweep"
    done = run_main("sweep", "--steps", "1", "2", "--iterations", "300", "--lr", "1e6",
                    "--jobs", "1", *SMALL, "--out", str(out), capsys=capsys)  # fmt: skip
    one_line(done.returncode, done.stderr, "2 of 2 training configurations gave no result")
    assert (
        "training diverged: seed 0" in done.stderr and "learning rate 1e+06" in done.stderr
    )
    # Both configurations ran (the first failure did not stop the sweep).
    assert done.stdout.count("FAILED") == 2
    critical = json.loads((out / "critical_step.json").read_text())
    assert critical["h_star"] is None and set(critical["failed"]) == {
        "euler-n0001",
        "euler-n0002",
    }
    summary = (out / "summary.md").read_text()
    assert "ODE? |" in summary and "| yes |" not in summary and "no result" in summary
    assert (out / "results.jsonl").read_text() == ""
    # No NaN model was saved: a run that got as far as a checkpoint saved a finite one
    # (its swap then failed on outputs that overflow under another solver).
    for checkpoint in out.rglob("checkpoint.eqx"):
        odeness.load_run(checkpoint.parent)
    assert not list(out.rglob("swap.jsonl"))


def test_a_failed_configuration_is_not_an_ode_in_the_critical_step_size(tmp_path):
    row = {"seed": 0, "train_solver": "euler", "train_accuracy": 1.0, "train_nfe": 1,
           "test_solver": "midpoint", "factor": 1.0, "accuracy": 1.0, "nfe": 2,
           "reference": False, "at_least_as_accurate": True, "max_gap": 0.0}  # fmt: skip
    rows = [
        ott2021_sweep.SweepRow.from_json(
            {**row, "train_steps": n, "train_dt": 1 / n, "test_steps": n}
        )
        for n in (2, 8)
    ]
    failure = ott2021_sweep.Failure(
        "euler-n0004", odeness.Steps(4), "training diverged: ..."
    )
    ott2021_sweep.write_summary(rows, tmp_path, threshold=0.1, along=StepsAxis(),
                                train_solver="euler", failures=[failure])  # fmt: skip
    critical = json.loads((tmp_path / "critical_step.json").read_text())
    # n = 8 passes; n = 4 has no result, so h* cannot reach 1/4 or 1/2.
    assert critical["h_star"] == 1 / 8 and critical["failed"] == {
        "euler-n0004": "training diverged: ..."
    }
    assert (
        "| 4 | 0.25 | — | — | — | no result (below) |"
        in (tmp_path / "summary.md").read_text()
    )


def test_a_diverged_adapted_run_stops_and_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "adapt"
    code, err = main(adapt_cli, [*SMALL, "--steps", "2", "--iterations", "100", "--lr",
                                 "1e6", "--out", str(out)], capsys)  # fmt: skip
    one_line(code, err, "training diverged: seed 0 has a non-finite loss or parameter")
    assert not out.exists()


def test_divergence_after_a_checkpoint_keeps_the_last_finite_one(tmp_path, tiny_sphere):
    config = odeness.TrainConfig(seeds=(0,), channels=4, iterations=20, log_every=10,
                                 checkpoint_every=10, learning_rate=1e-3)  # fmt: skip
    odeness.train(config, run_dir=tmp_path, data=tiny_sphere, progress=False)
    before = snapshot(tmp_path)
    # The same run trained on with data that makes every later loss infinite.
    huge = tiny_sphere._replace(x_train=tiny_sphere.x_train * np.float32(3e38))
    with pytest.raises(odeness.Diverged, match="seed 0 .* at iteration 21") as info:
        odeness.train(config.replace(iterations=30), run_dir=tmp_path, data=huge,
                      progress=False)  # fmt: skip
    assert (info.value.seed, info.value.iteration) == (0, 21)
    after = snapshot(tmp_path)
    assert after is not None and before is not None
    assert after["checkpoint.eqx"] == before["checkpoint.eqx"]
    rows = io.read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [10, 20]


def test_non_finite_training_data_is_refused(tiny_sphere):
    x = tiny_sphere.x_train.copy()
    x[7, 1] = np.nan
    with pytest.raises(ValueError, match="1 non-finite values .* example 7"):
        odeness.train(odeness.TrainConfig(seeds=(0,), channels=4, iterations=1),
                      data=tiny_sphere._replace(x_train=x), progress=False)  # fmt: skip


def test_a_nan_model_is_not_evaluated(tiny_sphere, getkey):
    model = odeness.make_classifier("conv", (2,), 2, channels=4, key=getkey())
    nan = eqx.tree_at(lambda m: m.head.weight, model, replace_fn=lambda w: w * jnp.nan)
    integ = odeness.Integrator(odeness.solver("euler"), steps=2)
    with pytest.raises(odeness.RunFailed, match="outputs with solver=euler, steps=2, "):
        odeness.evaluate_solver_swap(nan, integ, tiny_sphere.x_test, tiny_sphere.y_test)


def test_a_diverged_checkpoint_is_not_loaded(tmp_path, tiny_sphere):
    config = odeness.TrainConfig(seeds=(0,), channels=4, iterations=10, log_every=10,
                                 checkpoint_every=10)  # fmt: skip
    odeness.train(config, run_dir=tmp_path, data=tiny_sphere, progress=False)
    # Overwrite the checkpoint with NaN parameters, as an older odeness could have saved.
    init, _ = init_state(config, tiny_sphere)
    nan = init._replace(params=jax.tree.map(lambda a: a * np.nan, init.params))
    io.save_checkpoint(tmp_path / "checkpoint.eqx", _checkpointable(nan))
    with pytest.raises(ValueError, match="holds non-finite parameters"):
        odeness.load_run(tmp_path, data=tiny_sphere)


# Everything is checked before anything is written.


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "100000"], "batch_size 100000 exceeds the 2000 training"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent"], "mnist: archive folder"),
        (["--factors", "0"], "factors must be finite numbers > 0, got (0.0,)"),
        (["--factors", "0.5", "--reference", "none"], "add a factor ≥ 1"),
        (["--threshold", "nan"], "threshold must lie in [0, 1], got nan"),
        (["--seeds", "4294967296"], "seeds must be one or more integers in [0, 2**32 - 1]"),
        (["--channels", "0"], "channels must be an integer >= 1, got 0"),
        (["--test-solvers", "eular"], "--test-solvers: unknown solver 'eular'"),
        (["--reference", "rk5:256"], "--reference: unknown solver 'rk5'"),
        (["--lr", "-1e-3"], "learning_rate must be a finite number > 0, got -0.001"),
        (["--solver", "dopri5", "--tols", "-1e-3"], "tol must be a finite number > 0"),
        (["--iter", "50"], "unrecognized arguments: --iter 50"),
    ],
)
def test_sweep_bad_input_writes_nothing(tmp_path, capsys, monkeypatch, offline, args,
                                        message):  # fmt: skip
    monkeypatch.setenv("ODENESS_TFDS_DIR", str(tmp_path / "tfds"))
    out = tmp_path / "sweep"
    code, err = main(sweep_cli, ["--quick", *SMALL, *args, "--out", str(out)], capsys)
    one_line(code, err, message)
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", "1000"], "steps 1000 exceeds the adaptation's cap of max_steps=500"),
        (["--test-solver", "rk5"], "--test-solver: unknown solver 'rk5'"),
        (["--test-solvers", "rk5"], "--test-solvers: unknown solver 'rk5'"),
        (["--factors", "0.5"], "add a factor ≥ 1 with a test solver of order ≥ 1"),
        (["--seeds", "-1"], "seeds must be one or more integers in [0, 2**32 - 1]"),
        (["--it", "5"], "unrecognized arguments: --it 5"),
    ],
)
def test_adapt_bad_input_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "adapt"
    code, err = main(adapt_cli, [*SMALL, *args, "--out", str(out)], capsys)
    one_line(code, err, message)
    assert not out.exists()


def test_an_unusable_out_path_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me\n")
    done = command("sweep", "--quick", "--out", str(a_file))
    one_line(done.returncode, done.stderr, "is a file; give a folder")
    done = command("adapt", "--quick", "--out", str(a_file / "below"))
    one_line(done.returncode, done.stderr, f"is below {a_file}, which is a file")
    for module in (figure1_cli, resnet_ode_cli):
        for out, problem in ((a_file, "is a file"), (a_file / "below", "which is a file")):
            one_line(*main(module, ["--quick", "--out", str(out)], capsys), problem)
    code, err = main(table1_cli, ["--row", str(tmp_path), str(tmp_path), "--out",
                                  str(a_file / "t.md")], capsys)  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err
    assert a_file.read_text() == "keep me\n"


def test_a_seed_too_large_for_an_int64_is_one_line(tmp_path, capsys):
    out = tmp_path / "s"
    code, err = main(
        sweep_cli, ["--quick", "--seeds", str(2**64), "--out", str(out)], capsys
    )
    one_line(code, err, "seeds must be one or more integers")
    assert not out.exists()


def test_distinct_seeds_give_distinct_models(tiny_sphere):
    config = odeness.TrainConfig(channels=4, iterations=1, seeds=(0, 1, 2**32 - 1))
    models = odeness.train(config, data=tiny_sphere, progress=False).models
    weights = np.asarray(models.head.weight).reshape(3, -1)
    assert len({w.tobytes() for w in weights}) == 3
    with pytest.raises(ValueError, match=r"integers in \[0, 2\*\*32 - 1\]"):
        odeness.TrainConfig(seeds=(2**32,))
    with pytest.raises(ValueError, match=r"data_seed must be an integer in \[0, 2\*\*32"):
        odeness.TrainConfig(data_seed=-1)


def test_a_failed_training_solve_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "adapt"
    code, err = main(adapt_cli, ["--solver", "dopri5", "--tol", "1e-12", "--max-steps",
                                 "4", *SMALL, "--out", str(out)], capsys)  # fmt: skip
    one_line(code, err, "did not reach t1 within max_steps=4 at iteration 1")
    assert not out.exists()


def test_a_failed_test_solve_is_an_error_not_a_row(tiny_sphere, getkey):
    model = odeness.make_classifier("conv", (2,), 2, channels=4, key=getkey())
    integ = odeness.Integrator(odeness.solver("dopri5"), rtol=1e-3, max_steps=2)
    with pytest.raises(
        odeness.SolveFailed,
        match=r"max_steps=2\) failed .*: The maximum number of solver steps was reached",
    ):
        odeness.score(model, integ, tiny_sphere.x_test, tiny_sphere.y_test)


def test_data_errors_are_the_only_line(tmp_path):
    env_out = tmp_path / "s"
    argv = [
        "--dataset",
        "mnist",
        "--data-dir",
        str(tmp_path / "none"),
        "--out",
        str(env_out),
    ]
    done = run_script("sweep.py", *argv, env={"ODENESS_TFDS_DIR": str(tmp_path / "tfds")})
    one_line(done.returncode, done.stderr, "mnist: archive folder")
    assert done.stdout == ""  # no "Downloading and preparing dataset"
    assert not env_out.exists()


# A run folder of another configuration is refused, naming the field and both values.


@pytest.fixture(scope="module")
def finished_adapted_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("adapted") / "run"
    argv = [*SMALL, "--iterations", "50", "--interval", "25", "--out", str(out)]
    assert adapt_cli.main(argv) == 0
    return out, argv


@pytest.mark.parametrize(
    "change, message",
    [
        (["--threshold", "0.2"], "threshold is 0.1 there, 0.2 here"),
        (["--lr", "1e-3"], "learning_rate is 0.0001 there, 0.001 here"),
        (["--test-solver", "rk4"], "test_solver is None there, 'rk4' here"),
        (["--seeds", "0", "1"], "seeds is (0,) there, (0, 1) here"),
        (["--iterations", "25"], "has trained 50 iterations, more than the 25 asked for"),
        (["--solver", "dopri5", "--tol", "1e-3"], "solver is 'euler' there, 'dopri5' here"),
    ],
)
def test_a_finished_adapted_run_refuses_another_configuration(
    finished_adapted_run, capsys, change, message
):
    out, argv = finished_adapted_run
    before = snapshot(out)
    code, err = main(adapt_cli, [*argv, *change], capsys)
    one_line(code, err, message)
    assert snapshot(out) == before


def test_a_finished_adapted_run_reruns_to_the_same_files(finished_adapted_run, capsys):
    out, argv = finished_adapted_run
    before = snapshot(out)
    assert main(adapt_cli, argv, capsys)[0] == 0
    assert snapshot(out) == before


def test_another_sweep_names_the_field_and_both_values(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = [*SMALL, "--steps", "1", "--iterations", "1", "--reference", "none", "--out",
            str(out)]  # fmt: skip
    assert main(sweep_cli, argv, capsys)[0] == 0
    before = snapshot(out)
    code, err = main(sweep_cli, [*argv, "--lr", "1e-3"], capsys)
    one_line(code, err, "another sweep (base.learning_rate is 0.0001 there, 0.001 here)")
    assert snapshot(out) == before


def test_figure1_checks_both_run_folders_before_training(tmp_path, capsys):
    out = tmp_path / "figure1"
    other = odeness.TrainConfig(steps=256, seeds=(0,), iterations=200, learning_rate=1e-3)
    io.write_json(out / "runs" / "euler-n0256" / "config.json", other.to_dict())
    before = snapshot(out)
    code, err = main(figure1_cli, ["--quick", "--no-progress", "--out", str(out)], capsys)
    one_line(code, err, "learning_rate is 0.001 there, 0.0001 here")
    assert snapshot(out) == before  # the 2-step run did not start either


def test_resnet_ode_refuses_a_folder_of_the_other_mode(tmp_path, capsys):
    out = tmp_path / "resnet"
    io.write_json(out / "resnet_ode.json", {"quick": False})
    code, err = main(resnet_ode_cli, ["--quick", "--only", "memory", "--out", str(out)],
                     capsys)  # fmt: skip
    one_line(code, err, "quick is False there, True here")
    assert sorted(p.name for p in out.iterdir()) == ["resnet_ode.json"]


def test_table1_out_folder_is_refused(tmp_path, capsys):
    code, err = main(table1_cli, ["--row", "a", "b", "--out", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1


# Torn files, time columns, and the values printed.


def test_a_torn_metrics_line_is_repaired_on_resume(tmp_path, tiny_sphere):
    config = odeness.TrainConfig(seeds=(0,), channels=4, iterations=30, log_every=10,
                                 checkpoint_every=20)  # fmt: skip
    clean = odeness.train(config, data=tiny_sphere, progress=False)
    short = config.replace(iterations=20)
    odeness.train(short, run_dir=tmp_path, data=tiny_sphere, progress=False)
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 30, "seed": 0, "lo')  # a crash mid-write
    with pytest.raises(ValueError, match="metrics.jsonl line 3 is not valid JSON"):
        io.read_jsonl(tmp_path / "metrics.jsonl")
    resumed = odeness.train(config, run_dir=tmp_path, data=tiny_sphere, progress=False)
    assert np.array_equal(clean.models.head.weight, resumed.models.head.weight)
    assert [r["step"] for r in io.read_jsonl(tmp_path / "metrics.jsonl")] == [10, 20, 30]


def test_a_corrupt_line_inside_a_file_names_the_file_and_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": \n{"step": 3}\n')
    for torn_tail in (False, True):
        with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not valid JSON"):
            io.read_jsonl(path, torn_tail=torn_tail)


def test_no_nan_is_written_as_json(tmp_path):
    with pytest.raises(ValueError, match="Out of range float values"):
        io.write_jsonl(tmp_path / "x.jsonl", [{"loss": math.nan}])
    assert not (tmp_path / "x.jsonl").exists()


def test_time_columns_add_up_across_resumes(tmp_path, tiny_sphere):
    config = odeness.TrainConfig(seeds=(0,), channels=4, iterations=20, log_every=10,
                                 checkpoint_every=10)  # fmt: skip
    odeness.train(config.replace(iterations=10), run_dir=tmp_path, data=tiny_sphere,
                  progress=False)  # fmt: skip
    first = io.read_jsonl(tmp_path / "metrics.jsonl")[-1]["seconds"]
    rows = odeness.train(config, run_dir=tmp_path, data=tiny_sphere, progress=False).metrics
    assert rows[-1].seconds > first > 0


def test_factors_without_one_print_no_nan(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["--quick", *SMALL, "--steps", "2", "--iterations", "20", "--factors", "1.5",
            "2", "--reference", "none", "--jobs", "1", "--out", str(out)]  # fmt: skip
    assert sweep_cli.main(argv) == 0
    printed = capsys.readouterr()
    assert "test acc 0." in printed.out
    assert "nan" not in printed.out + printed.err
