"""Continuous normalising flows: the log-likelihood of a linear flow in closed form."""

import diffrax
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest

import odeness

A = jnp.array([[-0.4, 0.9], [-0.6, 0.3]])
X = jax.random.normal(jax.random.key(1), (6, 2)) * 1.5


def linear(t, z, args):
    return z @ A.T


def closed_form(x, t0, t1):
    """`log N(e^{-A (t1 - t0)} x) − tr(A) (t1 − t0)`."""
    z0 = x @ jsl.expm(-A * (t1 - t0)).T
    base = jnp.sum(-0.5 * (z0**2 + jnp.log(2 * jnp.pi)), axis=1)
    return base - jnp.trace(A) * (t1 - t0)


def rk4(t0=0.0, t1=1.0, **kwargs):
    return odeness.Integrator(odeness.RK4(), steps=64, t0=t0, t1=t1, **kwargs)


@pytest.mark.parametrize("t0, t1", [(0.0, 1.0), (0.0, 0.5), (1.0, 0.0)])
@pytest.mark.parametrize("per_sample", [False, True])
def test_exact_trace_gives_the_closed_form(t0, t1, per_sample):
    cnf = odeness.CNF(linear)
    loglik, stats = cnf(X, rk4(t0, t1, per_sample=per_sample))
    np.testing.assert_allclose(loglik, closed_form(X, t0, t1), rtol=1e-5, atol=1e-5)
    assert loglik.shape == (6,) and np.all(stats.success)
    # 2 Jacobian-vector products per evaluation of the field: the exact trace of 2-D.
    np.testing.assert_array_equal(stats.penalty_nfe, 2 * stats.nfe)


def test_a_field_of_one_state_gives_the_same():
    one = odeness.CNF(lambda t, z, args: A @ z, batched=False)
    np.testing.assert_allclose(
        one(X, rk4())[0], odeness.CNF(linear)(X, rk4())[0], rtol=1e-6
    )


@pytest.mark.slow
@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("per_sample", [False, True])
def test_hutchinson_mean_over_keys_gives_the_closed_form(gaussian, per_sample):
    trace = odeness.HutchinsonTrace(gaussian=gaussian)
    integ = odeness.Integrator(odeness.RK4(), steps=16, per_sample=per_sample)

    @jax.jit
    def draw(key):
        return odeness.CNF(linear, trace=trace, key=key)(X, integ)[0]

    draws = jax.vmap(draw)(jax.random.split(jax.random.key(2), 400))
    mean, error = draws.mean(0), draws.std(0) / np.sqrt(len(draws))
    assert np.all(draws.std(0) > 1e-3)  # it is an estimate
    assert np.all(np.abs(mean - closed_form(X, 0.0, 1.0)) < 4 * error + 1e-4)


def test_rnode_jacobian_penalty_reuses_the_trace_products():
    frobenius = float(jnp.sum(A**2))  # ‖A‖²_F, along a solve of length 1
    integ = rk4().regularised(
        [odeness.JacobianFrobenius(), odeness.KineticEnergy()], key=jax.random.key(3)
    )
    loglik, stats = odeness.CNF(linear)(X, integ)
    np.testing.assert_allclose(loglik, closed_form(X, 0.0, 1.0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.penalties["jacobian"], frobenius, rtol=1e-5)
    assert set(stats.penalties) == {"jacobian", "kinetic"}
    assert np.all(stats.penalties["kinetic"] > 0)
    np.testing.assert_array_equal(stats.penalty_nfe, 2 * stats.nfe)  # no extra product

    def estimate(key):
        cnf = odeness.CNF(linear, trace=odeness.HutchinsonTrace(), key=key)
        return cnf(X, rk4().regularised([odeness.JacobianFrobenius()], key=key))[1]

    stats = jax.vmap(estimate)(jax.random.split(jax.random.key(4), 400))
    jac = stats.penalties["jacobian"].mean(1)  # one probe per example, mean over them
    assert abs(jac.mean() - frobenius) < 4 * jac.std() / np.sqrt(len(jac))
    np.testing.assert_array_equal(stats.penalty_nfe, stats.nfe)  # one product each


def test_sample_carries_base_samples_to_the_data():
    cnf = odeness.CNF(linear, shape=(2,))
    key = jax.random.key(5)
    samples = cnf.sample(key, 5, rk4())
    expected = jax.random.normal(key, (5, 2)) @ jsl.expm(A).T
    np.testing.assert_allclose(samples, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        cnf.sample(key, 0, rk4())
    with pytest.raises(ValueError, match=r"give CNF\(shape=\)"):
        odeness.CNF(linear).sample(key, 5, rk4())


def test_gradients_through_the_likelihood_agree_with_the_adjoint():
    def nll(scale, adjoint):
        cnf = odeness.CNF(lambda t, z, s: s * linear(t, z, None), args=scale)
        integ = odeness.Integrator(
            odeness.solver("dopri5"), rtol=1e-7, atol=1e-8, adjoint=adjoint
        )
        return -jnp.mean(cnf(X, integ)[0])

    backprop = jax.grad(nll)(jnp.array(0.8), None)
    backsolve = jax.grad(nll)(jnp.array(0.8), diffrax.BacksolveAdjoint())
    np.testing.assert_allclose(backprop, backsolve, rtol=1e-4)


def test_the_swap_scores_a_likelihood_without_targets():
    cnf = odeness.CNF(linear)
    swap = odeness.evaluate_solver_swap(
        cnf, odeness.Integrator(odeness.solver("euler"), steps=4), X, None, metric="loglik"
    )
    assert swap.metric.name == "loglik" and swap.metric.higher_is_better
    exact = float(jnp.mean(closed_form(X, 0.0, 1.0)))
    fine = [r.score for r in swap.rows if r.setting.control == odeness.Steps(8)]
    assert abs(fine[-1] - exact) < abs(swap.train_score - exact)  # more steps, closer
    verdict = odeness.convergence_test(
        cnf, odeness.Integrator(odeness.RK4(), steps=16), X, None, metric="loglik"
    )
    assert verdict.converges
    bpd = odeness.LogLikelihood(bits_per_dim=True, dims=2)
    value, _ = odeness.score(cnf, rk4(), X, None, metric=bpd)
    np.testing.assert_allclose(value, -exact / (2 * np.log(2)), rtol=1e-5)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: odeness.CNF(linear, trace=odeness.HutchinsonTrace()),
            "give CNF(..., key=)",
        ),
        (lambda: odeness.CNF(3.0), "field must be callable"),
        (lambda: odeness.HutchinsonTrace(count=0), "count must be an integer >= 1, got 0"),
        (
            lambda: odeness.CNF(linear)(jnp.ones((2, 20)), rk4()),
            "a state of 20 numbers (> 16) takes Hutchinson's trace estimator",
        ),
        (lambda: odeness.Integrator(odeness.RK4(), steps=2, t0=0.5, t1=0.5), "t0 ≠ t1"),
        (
            lambda: odeness.score(
                odeness.CNF(linear), rk4(), X, np.zeros(5), metric="loglik"
            ),
            "6 inputs and 5 targets: give one target per input",
        ),
        (
            lambda: odeness.score(odeness.CNF(linear), rk4(), X, None),
            "metric 'accuracy' scores outputs against targets: give y",
        ),
        (lambda: odeness.LogLikelihood(bits_per_dim=True), "need the dimensions"),
    ],
)
def test_bad_input_is_one_line(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_density_of_an_accurate_solve_integrates_to_one():
    cnf, accurate = odeness.CNF(linear), rk4()
    grid = odeness.grid_integral(cnf, accurate, -10.0, 10.0, dims=2, points=200)
    assert grid.method == "grid" and grid.evaluations == 40_000
    assert grid.error < 1e-3
    mc = odeness.importance_integral(cnf, accurate, X, jax.random.key(6), samples=20_000)
    assert mc.error < 4 * mc.standard_error + 1e-3 and mc.standard_error < 0.05


def test_one_euler_step_gives_no_density():
    # Backwards, one step of -1: z = (I - A) x and a log-determinant of -tr(A), so
    # ∫p = exp(-tr A) / |det(I - A)|, not 1.
    cnf = odeness.CNF(linear)
    one = odeness.Integrator(odeness.solver("euler"), steps=1)
    expected = float(jnp.exp(-jnp.trace(A)) / abs(jnp.linalg.det(jnp.eye(2) - A)))
    grid = odeness.grid_integral(cnf, one, -12.0, 12.0, dims=2, points=300)
    np.testing.assert_allclose(grid.value, expected, rtol=1e-3)
    assert grid.error > 0.1
    mc = odeness.importance_integral(cnf, one, X, jax.random.key(7), samples=20_000)
    assert abs(mc.value - expected) < 4 * mc.standard_error


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, i: odeness.grid_integral(m, i, -1, 1, dims=3), "got dims=3"),
        (lambda m, i: odeness.grid_integral(m, i, 1, -1, dims=2), "needs high > low"),
        (lambda m, i: odeness.grid_integral(m, i, -1, 1, dims=2, points=1), "points must"),
        (
            lambda m, i: odeness.importance_integral(m, i, X, jax.random.key(0), samples=1),
            "samples must be an integer >= 2, got 1",
        ),
        (
            lambda m, i: odeness.importance_integral(m, i, X[0], jax.random.key(0)),
            "x must be a batch of flat points",
        ),
    ],
)
def test_bad_density_checks_are_one_line(call, message):
    with pytest.raises(ValueError, match=None) as info:
        call(odeness.CNF(linear), rk4())
    assert message in str(info.value)
