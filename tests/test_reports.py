import json

import pytest
from configs import SMALL
from scripts import run_main

import odeness

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_ode_report_of_a_run_folder(tmp_path, tiny_sphere, capsys):
    run = tmp_path / "run"
    config = odeness.TrainConfig(**SMALL)
    odeness.train(config, run_dir=run, data=tiny_sphere, progress=False)
    proc = run_main(
        "ode_report",
        str(run),
        "--seed-index",
        "1",
        "--points",
        "60",
        "--det-points",
        "10",
        capsys=capsys,
    )
    assert proc.returncode == 0, proc.stderr
    report = run / "report"
    for name in ("swap.png", "trajectories.png", "fan.png"):
        assert (report / name).read_bytes()[:8] == PNG
    numbers = json.loads((report / "report.json").read_text())
    assert numbers["test_points"] == 60 and numbers["nonpositive_det"]["points"] == 10
    assert len(numbers["swap"]) == 16
    text = (report / "report.md").read_text()
    assert "seed 1" in text and "crossing trajectory pairs" in text


def test_ode_report_errors(tmp_path, capsys):
    proc = run_main("ode_report", str(tmp_path / "nothing"), capsys=capsys)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "config.json does not exist" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_figure1_quick(tmp_path, capsys):
    out = tmp_path / "fig"
    proc = run_main(
        "figure1",
        "--quick",
        "--steps",
        "2",
        "8",
        "--iterations",
        "20",
        "--points",
        "40",
        "--out",
        str(out),
        "--no-progress",
        capsys=capsys,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "figure1.png").read_bytes()[:8] == PNG
    assert (out / "fan.png").read_bytes()[:8] == PNG
    numbers = json.loads((out / "figure1.json").read_text())
    assert set(numbers) == {"2", "8"}
    assert len(numbers["2"]["accuracy_by_euler_steps"]) == 12
    assert (out / "runs" / "euler-n0008" / "checkpoint.eqx").exists()


def test_fan_and_trajectories_of_an_image_model_plot(tmp_path, getkey):
    import jax
    import matplotlib.pyplot as plt

    from experiments.lab.figures import draw_fan, save_figure

    model = odeness.make_classifier("conv", (6, 5, 2), 3, channels=4, key=getkey())
    x = jax.random.uniform(getkey(), (2, 6, 5, 2))
    integ = odeness.Integrator(odeness.solver("euler"), steps=3)
    fan = odeness.diagnostics.lady_windermere_fan(model, integ, x[:1], 16)
    fig, ax = plt.subplots()
    draw_fan(ax, fan, 0, title="image fan")  # flattened coordinates 0 and 1
    save_figure(fig, tmp_path / "fan.png")
    assert (tmp_path / "fan.png").stat().st_size > 0
