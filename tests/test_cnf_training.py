"""Training a continuous normalising flow: unlabelled data, its loss, fresh probes."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from configs import FLOW

import odeness
from odeness._train_step import TrainState, adam, negative_log_likelihood, train_step


@pytest.mark.parametrize("name", sorted(odeness.data.DENSITIES))
def test_the_densities_are_generated_unlabelled_and_reproducible(name):
    data = odeness.load_dataset(name)
    again = odeness.load_dataset(name)
    other = odeness.load_dataset(name, seed=1)
    assert data.x_train.shape == (10_000, 2) and data.x_test.shape == (2000, 2)
    assert data.x_train.dtype == np.float32 and data.unlabelled
    assert not data.y_train.any() and data.num_classes == 0
    np.testing.assert_array_equal(data.x_train, again.x_train)
    assert not np.array_equal(data.x_train, other.x_train)
    assert 0.5 < data.x_train.std() < 3.0  # of order 1, as the flows expect


@pytest.mark.slow
def test_train_fits_a_flow_to_a_density_and_the_run_reloads(tmp_path):
    config = odeness.TrainConfig(**FLOW)
    result = odeness.train(config, run_dir=tmp_path / "run", progress=False)
    first, last = result.metrics[0], result.metrics[-1]
    assert isinstance(result.model(0), odeness.CNF)
    assert last.score > first.score  # the log-likelihood rises
    assert last.metric == "loglik"
    np.testing.assert_allclose(last.loss, -last.score, rtol=1e-5)
    data = config.load_dataset()
    swap = odeness.evaluate_solver_swap(
        result.model(1), result.integrator, data.x_test[:200], None, metric="loglik"
    )
    assert np.isfinite(swap.max_gap) and swap.metric.name == "loglik"
    loaded = odeness.load_run(tmp_path / "run")
    np.testing.assert_array_equal(
        loaded.model(1)(data.x_test[:50], result.integrator)[0],
        result.model(1)(data.x_test[:50], result.integrator)[0],
    )


def _one_step(model, step: int):
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt = adam(1e-3)
    state = TrainState(params, opt.init(params), jax.random.key(0), jnp.asarray(step))
    x = odeness.load_dataset("ring8").x_train[:64]
    integ = odeness.Integrator(odeness.RK4(), steps=2)
    _, metrics = train_step(
        state,
        static,
        integ,
        opt,
        jnp.asarray(x),
        jnp.zeros(64),
        loss=negative_log_likelihood,
        metric=odeness.LogLikelihood(),
    )
    return float(metrics.loss)


def test_training_draws_fresh_probes_each_iteration():
    field = odeness.ConcatSquashField(2, 16, key=jax.random.key(1))
    hutchinson = odeness.CNF(field, trace=odeness.HutchinsonTrace(), key=jax.random.key(2))
    assert _one_step(hutchinson, 0) != _one_step(hutchinson, 1)  # other probes
    assert _one_step(hutchinson, 3) == _one_step(hutchinson, 3)  # a function of the step
    exact = odeness.CNF(field)
    assert _one_step(exact, 0) == _one_step(exact, 1)  # nothing random


@pytest.mark.slow
def test_a_flow_adapts_its_step_and_the_verdicts_reach_it():
    adapted = dict(solver="euler", steps=4, seeds=(0,), iterations=50, adapt=True)
    schedule = dict(interval=25, log_every=25, checkpoint_every=50)
    config = odeness.TrainConfig(**FLOW | adapted | schedule)
    result = odeness.train(config, progress=False)
    checks = [m.check for m in result.metrics if m.check is not None]
    assert checks and all(np.isfinite(c.value) for c in checks)
    x = config.load_dataset().x_test[:50]
    flow = result.model(0)
    fine = odeness.Integrator(odeness.RK4(), steps=64)
    rk4 = odeness.Integrator(odeness.RK4(), steps=4)
    verdict = odeness.self_convergence(flow, rk4, x, refinements=(1, 2, 4), reference=fine)
    assert verdict.asymptotic  # the flow's log-likelihoods converge at RK4's order
    candidates = [odeness.Integrator(odeness.solver("euler"), steps=2), rk4]
    with pytest.warns(UserWarning, match="ODE-ness is not checked"):
        chosen = odeness.cheapest_solver(
            flow, x, within=1e-2, candidates=candidates, reference=fine, repeats=1
        )
    assert chosen.chosen is not None and chosen.chosen.distance <= 1e-2
