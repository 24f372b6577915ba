"""Figure 2: the ODE block's outputs over the decision regions, at two test steps."""

import json

import numpy as np
import pytest
from scripts import run_main

import odeness
from experiments.ott2021.decision_regions import Figure2Options, run_figure2, train_config


@pytest.fixture(scope="module")
def figure(tmp_path_factory):
    out = tmp_path_factory.mktemp("figure2")
    return out, run_figure2(Figure2Options(out=str(out), iterations=200, progress=False))


def test_figure2_writes_its_files(figure):
    out, numbers = figure
    assert {p.name for p in out.iterdir()} >= {"figure2.png", "figure2.json", "figure2.md"}
    assert json.loads((out / "figure2.json").read_text()) == json.loads(json.dumps(numbers))
    assert [p["test_steps"] for p in numbers["panels"]] == [2, 4]
    assert "| 1/2 |" in (out / "figure2.md").read_text()


def test_the_panels_are_the_models_predictions(figure):
    out, numbers = figure
    data = odeness.load_dataset("sphere2")
    run = odeness.load_run(out / "runs" / "euler-n0002", data=data)
    labels = data.y_test
    for p in numbers["panels"]:
        integ = odeness.Integrator(odeness.solver("euler"), steps=p["test_steps"])
        accuracy, _ = odeness.score(run.model(0), integ, data.x_test, labels)
        assert p["accuracy"] == pytest.approx(accuracy, abs=1e-6)
        # The misplaced points of each class are exactly the errors.
        counts = np.bincount(labels)
        errors = sum(p["misplaced"][str(c)] * counts[c] for c in (0, 1))
        assert errors / len(labels) == pytest.approx(1 - p["accuracy"], abs=1e-6)


def test_figure2_refuses_a_run_folder_of_another_configuration(figure):
    out, _ = figure
    with pytest.raises(ValueError, match="seeds"):
        run_figure2(Figure2Options(out=str(out), iterations=200, seed=1, progress=False))
    odeness.check_run_folder(out / "runs" / "euler-n0002", train_config(iterations=200))


def test_figure2_script_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "f2"
    done = run_main("figure2", "--iterations", "0", "--out", str(out), capsys=capsys)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: iterations must be an integer >= 1")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "f2").exists()
