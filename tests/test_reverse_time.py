"""Solves backwards in time (`t1 < t0`), as diffrax integrates them."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeness

A = jnp.array([[-0.5, 1.0], [-1.0, -0.2]])


def linear(t, y, args):
    return y @ A.T * (1 + t)


Y = jax.random.normal(jax.random.key(0), (4, 2))


def diffrax_solve(solver, t0, t1, y, **kwargs):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(linear), solver, t0, t1, y0=y, max_steps=4096, **kwargs
    )
    return sol.ys[-1]


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("name", ["euler", "rk4", "dopri5"])
def test_backwards_solves_equal_diffrax(name, per_sample):
    solver = odeness.solver(name)
    if name == "dopri5":
        integ = odeness.Integrator(solver, rtol=1e-5, t0=1.0, t1=0.0, per_sample=per_sample)
        control = diffrax.PIDController(rtol=1e-5, atol=1e-5)
        kwargs = dict(dt0=None, stepsize_controller=control)
    else:
        integ = odeness.Integrator(solver, steps=8, t0=1.0, t1=0.0, per_sample=per_sample)
        kwargs = dict(dt0=-1 / 8)
    y, stats = odeness.solve(linear, Y, integ)
    if per_sample:
        expected = jax.vmap(lambda r: diffrax_solve(solver, 1.0, 0.0, r, **kwargs))(Y)
    else:
        expected = diffrax_solve(solver, 1.0, 0.0, Y, **kwargs)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert np.all(stats.success)
    if name != "dopri5":
        assert np.all(stats.num_steps == 8) and integ.steps == 8
        assert integ.step_size == 0.125 and integ.length == 1.0


def test_a_backwards_solve_undoes_the_forward_one():
    forward = odeness.Integrator(odeness.solver("dopri5"), rtol=1e-7, atol=1e-8)
    back = forward.reversed()
    assert (back.t0, back.t1, back.control, back.max_steps) == (
        1.0,
        0.0,
        forward.control,
        forward.max_steps,
    )
    y1, _ = odeness.solve(linear, Y, forward)
    y0, _ = odeness.solve(linear, y1, back)
    np.testing.assert_allclose(y0, Y, atol=1e-5)
    assert str(back.setting) == "dopri5 at tol 1e-7"
    assert str(odeness.Integrator(odeness.RK4(), steps=4, t0=0.5, t1=0.0).setting) == (
        "rk4 at 4 steps"
    )


def test_backwards_gradients_agree_between_backprop_and_the_adjoint():
    scale = jnp.array(0.7)

    def loss(s, adjoint):
        integ = odeness.Integrator(
            odeness.solver("dopri5"), rtol=1e-7, atol=1e-8, t0=1.0, t1=0.0, adjoint=adjoint
        )
        y, _ = odeness.solve(lambda t, y, a: a * linear(t, y, None), Y, integ, s)
        return jnp.sum(y**2)

    backprop = jax.grad(loss)(scale, None)
    backsolve = jax.grad(loss)(scale, diffrax.BacksolveAdjoint())
    np.testing.assert_allclose(backprop, backsolve, rtol=1e-4)
    assert np.isfinite(backprop) and abs(backprop) > 0


def test_backwards_save_times_run_in_its_direction():
    integ = odeness.Integrator(odeness.solver("euler"), steps=4, t0=1.0, t1=0.0)
    ys, _ = odeness.solve(linear, Y, integ, ts=jnp.array([0.75, 0.5, 0.0]))
    final, _ = odeness.solve(linear, Y, integ)
    assert ys.shape == (3, 4, 2)
    np.testing.assert_allclose(ys[-1], final, rtol=1e-6)
    with pytest.raises(ValueError, match="must run from t0 = 1 towards t1 = 0, got 0.25"):
        odeness.solve(linear, Y, integ, ts=jnp.array([0.25, 0.5]))
    with pytest.raises(ValueError, match=r"lies outside \[t0, t1\] = \[1, 0\]"):
        odeness.solve(linear, Y, integ, ts=jnp.array([1.5, 0.5]))


def test_backwards_regularised_solves_accumulate_positive_penalties():
    def const(t, y, args):
        return jnp.ones_like(y)

    y = jnp.zeros((3, 2))
    for t0, t1 in ((0.0, 1.0), (1.0, 0.0)):
        integ = odeness.Integrator(odeness.solver("rk4"), steps=4, t0=t0, t1=t1)
        reg = integ.regularised([odeness.KineticEnergy()])
        out, stats = odeness.solve(const, y, reg)
        np.testing.assert_allclose(out, y + (t1 - t0), rtol=1e-6)
        # |f|² = 2 per example, over a length of 1, either way.
        np.testing.assert_allclose(stats.penalties["kinetic"], 2.0, rtol=1e-6)
    steer = odeness.Integrator(odeness.solver("euler"), steps=2, t0=1.0, t1=0.0)
    with pytest.raises(ValueError, match=r"spread must be < \|t1 - t0\| = 1"):
        steer.regularised([odeness.RandomEndTime(1.5)], key=jax.random.key(0))
    out, _ = odeness.solve(
        const, y, steer.regularised([odeness.RandomEndTime(0.5)], key=jax.random.key(1))
    )
    assert np.all((out > -1.5) & (out < -0.5))  # ended at a time in [-0.5, 0.5]
