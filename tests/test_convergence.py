"""Certification beside the threshold: self-convergence, convergence against the
targets, per-example verdicts, the cheapest faithful solver, fields written one example
at a time and step sizes as they were asked for."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

import odeness
from tests.test_swap import threshold_model

A_TRUE = np.array([[0.0, 1.0], [-4.0, -0.4]])  # a damped oscillator, ω = 2, ζ = 0.1
T = 2.0


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


class LinearField(eqx.Module):
    a: jax.Array

    def __call__(self, t, y, args):
        return self.a @ y  # one state: diffrax's convention (batched=False)


def _oscillator_data(n=64):
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return x, x @ scipy.linalg.expm(T * A_TRUE).T


def _fitted(steps: int) -> tuple[odeness.NeuralODE, odeness.Integrator]:
    """A linear Neural ODE fitted to the oscillator's flow over [0, T] with RK4."""
    x, y = map(jnp.asarray, _oscillator_data())
    integ = odeness.Integrator(odeness.solver("rk4"), steps=steps, t1=T)
    model = odeness.NeuralODE(LinearField(jnp.zeros((2, 2))), batched=False)
    opt = optax.adam(0.02)

    def loss(m):
        return jnp.mean((m(x, integ)[0] - y) ** 2)

    def step(carry, _):
        m, state = carry
        value, grads = eqx.filter_value_and_grad(loss)(m)
        updates, state = opt.update(grads, state)
        return (eqx.apply_updates(m, updates), state), value

    state = opt.init(eqx.filter(model, eqx.is_array))
    (model, _), losses = jax.lax.scan(step, (model, state), length=3000)
    assert float(losses[-1]) < 1e-6, float(losses[-1])  # both fit their training solver
    return model, integ


@pytest.mark.slow
def test_a_coarse_rk4_fit_fails_both_tests_and_a_fine_one_passes(x64):
    x, y = _oscillator_data()
    coarse, c_integ = _fitted(1)
    fine, f_integ = _fitted(8)
    # The fine fit's exact flow maps the inputs to the targets: it learned an ODE (one
    # with the oscillator's flow at T; the data at T alone do not fix A).
    flow = scipy.linalg.expm(T * np.asarray(fine.field.a))
    np.testing.assert_allclose(x @ flow.T, y, atol=1e-3)

    bad = odeness.self_convergence(coarse, c_integ, x)
    assert not bad.asymptotic and bad.errors[0] > 0.1  # moves by its own size
    good = odeness.self_convergence(fine, f_integ, x)
    assert good.asymptotic and good.expected_order == 4
    assert good.steps == (8, 16, 32, 64) and good.errors[0] < 1e-2
    assert all(abs(o - 4) < 1 for o in good.orders if not math.isnan(o)), good.orders

    bad_targets = odeness.convergence_test(coarse, c_integ, x, y, metric="mse")
    assert not bad_targets.converges and bad_targets.trend < 0  # worse with refinement
    assert bad_targets.scores[-1] > 100 * bad_targets.scores[0]
    good_targets = odeness.convergence_test(fine, f_integ, x, y, metric="mse")
    assert good_targets.converges and good_targets.degradation < 1e-3
    assert good_targets.settings[:2] == ("rk4 at 8 steps", "rk4 at 16 steps")

    # The coarse fit is not an ODE under the swap either: no solver is faithful to it.
    swap = odeness.evaluate_solver_swap(coarse, c_integ, x, y, metric="mse")
    assert not swap.is_ode()
    with pytest.raises(ValueError, match=r"^the model is not an ODE under the solver swap"):
        odeness.cheapest_solver(coarse, x, within=1e-3, swap=swap)


def test_observed_orders_of_euler_on_a_linear_field(x64):
    """Euler on dy/dt = A y: errors halve with each halving of the step."""
    model = odeness.NeuralODE(LinearField(jnp.asarray(A_TRUE)), batched=False)
    x, _ = _oscillator_data(8)
    integ = odeness.Integrator(odeness.solver("euler"), steps=256, t1=T)
    result = odeness.self_convergence(model, integ, x, refinements=(1, 2, 4))
    assert result.expected_order == 1 and result.steps == (256, 512, 1024)
    assert result.step_sizes == (T / 256, T / 512, T / 1024)
    assert all(abs(o - 1) < 0.1 for o in result.orders)
    assert result.asymptotic and result.reference == "rk4 at 2048 steps"
    coarse = odeness.self_convergence(model, integ, x, refinements=(1, 2), max_error=0.01)
    assert not coarse.asymptotic  # its error, 0.04, is no regime at a bound of 0.01


def test_rk4_is_the_cheapest_faithful_solver_of_a_linear_field(x64):
    model = odeness.NeuralODE(LinearField(jnp.asarray(A_TRUE)), batched=False)
    x, y = _oscillator_data(16)
    candidates = [
        odeness.Integrator(odeness.solver(name), steps=n, t1=T)
        for name in ("euler", "rk4")
        for n in (4, 16, 64, 256)
    ]
    swap = odeness.evaluate_solver_swap(
        model, odeness.Integrator(odeness.solver("rk4"), steps=64, t1=T), x, y, metric="mse"
    )
    result = odeness.cheapest_solver(
        model, x, within=1e-6, candidates=candidates, swap=swap, repeats=1
    )
    assert result.chosen is not None and result.chosen.setting == "rk4 at 64 steps"
    assert result.chosen.nfe == 256
    assert not result.find("euler at 256 steps").faithful  # Euler needs far more steps
    assert result.find("rk4 at 16 steps").distance > 1e-6
    assert (
        result.speedup("rk4 at 256 steps") > 0 and result.reference == "rk4 at 1024 steps"
    )
    with pytest.warns(UserWarning, match="ODE-ness is not checked"):
        odeness.cheapest_solver(model, x, within=1e-6, candidates=candidates[:1], repeats=1)


def test_bad_input_is_one_line(x64):
    model = odeness.NeuralODE(LinearField(jnp.asarray(A_TRUE)), batched=False)
    x, y = _oscillator_data(4)
    integ = odeness.Integrator(odeness.solver("euler"), steps=4)
    cases = [
        (lambda: odeness.self_convergence(model, integ, x, refinements=()),
         r"refinements needs at least two values, got \(\)"),
        (lambda: odeness.self_convergence(model, integ, x, refinements=(1, 4, 2)),
         r"refinements must start at 1 .* increase strictly, got \(1, 4, 2\)"),
        (lambda: odeness.self_convergence(model, integ, x, refinements=(1, 2.5)),  # pyright: ignore
         r"refinements must be integers >= 1, got \(1, 2.5\)"),
        (lambda: odeness.self_convergence(
            model, odeness.Integrator(odeness.solver("dopri5"), rtol=1e-3), x),
         "self_convergence needs a fixed-step integrator"),
        (lambda: odeness.convergence_test(model, integ, x[:0], y[:0]),
         "cannot test convergence on no inputs"),
        (lambda: odeness.cheapest_solver(model, x, within=0.0),
         r"within must be a finite number > 0, got 0.0"),
        (lambda: odeness.cheapest_solver(model, x, within=math.nan),
         r"within must be a finite number > 0, got nan"),
        (lambda: odeness.cheapest_solver(model, x, within=1e-3, candidates=[]),
         "candidates is empty"),
    ]  # fmt: skip
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as e:
            call()
        assert "\n" not in str(e.value)


def test_outputs_that_are_not_finite_are_a_verdict():
    """A field that overflows float32 under fine solves: no crash, a failed verdict
    that says why."""
    a = jnp.array([[200.0, 0.0], [0.0, 200.0]])  # the exact flow grows by e^200
    model = odeness.NeuralODE(LinearField(a), batched=False)
    x, y = np.ones((4, 2), np.float32), np.ones((4, 2), np.float32)
    integ = odeness.Integrator(odeness.solver("euler"), steps=1)  # 201 x: finite
    result = odeness.self_convergence(model, integ, x)
    assert not result.asymptotic and result.failure == (
        "the reference: the outputs with rk4 at 16 steps are not finite"
    )
    test = odeness.convergence_test(model, integ, x, y, metric="mse", refinements=(1, 64))
    assert not test.converges and test.failure is not None and "not finite" in test.failure
    assert test.scores == (test.scores[0],)  # the training step's score, then none


def test_per_example_changes_are_the_accuracy_change_when_flips_go_one_way():
    # Euler-4 maps x to 2.44 x, finer solvers to e x; threshold 2.5: the inputs in
    # (2.5 / e, 2.5 / 2.44) flip from class 0 to 1 under every finer solver.
    model = threshold_model(2.5)
    x = jnp.linspace(0.5, 1.5, 201)[:, None]
    train = odeness.Integrator(odeness.solver("euler"), steps=4)
    y = (x[:, 0] * 1.25**4 > 2.5).astype(jnp.int32)  # the training solver's answers
    swap = odeness.evaluate_solver_swap(model, train, x, y)
    failing = swap.failing()
    assert swap.failing_fraction() == pytest.approx(swap.max_gap)
    inside = np.flatnonzero((x[:, 0] > 2.5 / math.e) & (x[:, 0] * 1.25**4 < 2.5))
    assert failing.tolist() == inside.tolist() and len(inside) > 10
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\], got 2"):
        swap.failing(2)


def test_a_field_written_for_one_state_trains_and_swaps(tiny_sphere, getkey):
    mlp = eqx.nn.MLP(2, 2, 8, 1, jnp.tanh, key=getkey())

    class Field(eqx.Module):
        mlp: eqx.nn.MLP

        def __call__(self, t, y, args):
            assert y.shape == (4,)  # one state, augmented by two zeros
            return jnp.concatenate([self.mlp(y[:2]), jnp.zeros(2)])

    one = odeness.NeuralODE(
        Field(mlp), decoder=eqx.nn.Linear(4, 2, key=getkey()), augment=2, batched=False
    )
    batched = odeness.NeuralODE(
        lambda t, y, a: jax.vmap(lambda s: Field(mlp)(t, s, a))(y),
        decoder=eqx.filter_vmap(one.decoder),
        augment=2,
    )
    x, y = tiny_sphere.x_test[:50], tiny_sphere.y_test[:50]
    integ = odeness.Integrator(odeness.solver("euler"), steps=4)
    np.testing.assert_allclose(one(x, integ)[0], batched(x, integ)[0], rtol=1e-6)
    swap = odeness.evaluate_solver_swap(one, integ, x, y)
    assert swap.train_score == odeness.score(batched, integ, x, y)[0]
    np.testing.assert_allclose(
        one.vector_field(0.0, one.initial_state(x), None),
        batched.vector_field(0.0, batched.initial_state(x), None),
    )
    config = odeness.TrainConfig(dataset=None, steps=4, iterations=20, seeds=(0,))
    run = odeness.train(
        config,
        data=tiny_sphere,
        model=lambda key: eqx.tree_at(lambda m: m.field.mlp, one, mlp),
        progress=False,
    )
    assert run.metrics[-1].step == 20


def test_step_sizes_are_reported_as_asked_for():
    integ = odeness.Integrator(odeness.solver("euler"), steps=100, t1=10.0)
    assert isinstance(integ.control, odeness.StepSize)
    assert float(integ.control.dt) != 0.1 and integ.step_size == 0.1
    assert integ.setting.to_json()["dt"] == 0.1
    assert odeness.Integrator(odeness.solver("euler"), dt=0.3).step_size == 0.3
    adaptive = odeness.Integrator(odeness.solver("dopri5"), rtol=1e-3)
    assert adaptive.setting.to_json()["rtol"] == 1e-3
    model = threshold_model(0.5)
    x, y = jnp.ones((4, 1)), jnp.ones(4, dtype=jnp.int32)
    swap = odeness.evaluate_solver_swap(model, integ, x, y)
    assert swap.train.step_size == 0.1
    assert odeness.critical_step_size([swap]) == 0.1
    euler = [r.setting.to_json()["dt"] for r in swap.rows if r.setting.solver == "euler"]
    assert euler == [10 / 50, 10 / 75, 10 / 100, 10 / 150, 10 / 200]
