"""Training by the continuous adjoint (`adjoint="backsolve"`): its gradients against
backpropagation through a fine solve, and its bad combinations."""

import json

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from scripts import run_main

import odeness
from odeness._train_step import loss_fn


def _flat(tree):
    return jnp.concatenate(
        [a.ravel() for a in jax.tree.leaves(eqx.filter(tree, eqx.is_array))]
    )


@pytest.fixture(scope="module")
def problem(tiny_sphere):
    model = odeness.make_classifier("conv", (2,), 2, channels=8, key=jax.random.key(0))
    x, y = jnp.asarray(tiny_sphere.x_train[:128]), jnp.asarray(tiny_sphere.y_train[:128])

    def gradient(integ):
        return _flat(eqx.filter_grad(lambda m: loss_fn(m, integ, x, y)[0])(model))

    exact = gradient(odeness.Integrator(odeness.solver("rk4"), steps=256))
    return gradient, exact


def _error(g, exact):
    return float(jnp.linalg.norm(g - exact) / jnp.linalg.norm(exact))


def test_backsolve_gradient_matches_backprop_through_a_fine_solve(problem):
    gradient, exact = problem
    backsolve = odeness.Integrator(
        odeness.solver("rk4"), steps=64, adjoint=diffrax.BacksolveAdjoint()
    )
    # Float32 round-off in the backward reconstruction of the state dominates here;
    # Euler's discretisation error at the same step count is 100x larger (below).
    assert _error(gradient(backsolve), exact) < 1e-3


def test_backsolve_gradient_converges_with_the_step(problem):
    gradient, exact = problem
    errors = [
        _error(
            gradient(
                odeness.Integrator(
                    odeness.solver("euler"), steps=n, adjoint=diffrax.BacksolveAdjoint()
                )
            ),
            exact,
        )
        for n in (4, 16, 64)
    ]
    # Euler's error is first order: each 4x finer step shrinks it about 4x.
    assert errors[0] > 2.5 * errors[1] > 2.5**2 * errors[2], errors
    assert errors[2] < 0.03, errors


def test_adjoint_bad_input():
    euler = odeness.solver("euler")
    with pytest.raises(ValueError, match="adjoint must be a diffrax adjoint object"):
        odeness.Integrator(euler, steps=2, adjoint="backsolve")  # pyright: ignore
    with pytest.raises(ValueError, match="checkpoints= applies to backpropagation"):
        odeness.Integrator(
            euler, steps=2, checkpoints=1, adjoint=diffrax.BacksolveAdjoint()
        )
    with pytest.raises(ValueError, match="not both"):
        odeness.Integrator(
            euler,
            steps=2,
            checkpoints=1,
            adjoint=diffrax.RecursiveCheckpointAdjoint(checkpoints=2),
        )
    with pytest.raises(ValueError, match="unknown adjoint 'adjoint'; expected one of"):
        odeness.TrainConfig(adjoint="adjoint")
    with pytest.raises(ValueError, match="does not combine with adapt=True"):
        odeness.TrainConfig(adjoint="backsolve", adapt=True)


def test_a_recursive_checkpoint_adjoint_is_backpropagation():
    integ = odeness.Integrator(
        odeness.solver("euler"),
        steps=4,
        adjoint=diffrax.RecursiveCheckpointAdjoint(checkpoints=2),
    )
    assert integ.adjoint is None and integ.checkpoints == 2


def test_the_cli_refuses_a_bad_adjoint_in_one_line(tmp_path, capsys):
    out = tmp_path / "sweep"
    done = run_main(
        "sweep", "--steps", "2", "--adjoint", "backsolv", "--out", str(out), capsys=capsys
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: unknown adjoint 'backsolv'; expected one of backprop, backsolve"
    ]
    assert not out.exists()


def test_backsolve_training_saves_its_choice_and_refuses_the_other(tmp_path, tiny_sphere):
    config = odeness.TrainConfig(
        seeds=(0,),
        adjoint="backsolve",
        iterations=20,
        log_every=10,
        checkpoint_every=10,
        channels=8,
    )
    run = odeness.train(config, run_dir=tmp_path, data=tiny_sphere, progress=False)
    assert run.integrator.adjoint == diffrax.BacksolveAdjoint()
    assert json.loads((tmp_path / "config.json").read_text())["adjoint"] == "backsolve"
    with pytest.raises(ValueError, match="adjoint is 'backsolve' there, 'backprop' here"):
        odeness.check_run_folder(tmp_path, config.replace(adjoint="backprop"))


def test_a_config_saved_before_the_adjoint_option_loads_as_backprop():
    saved = odeness.TrainConfig().to_dict()
    del saved["adjoint"]
    assert odeness.TrainConfig.from_dict(saved).adjoint == "backprop"
