import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeness
from odeness._solvers import SOLVERS, backward_nfe, is_adaptive, nfe, order, stages

ORDERS = {
    "euler": 1,
    "midpoint": 2,
    "heun": 2,
    "rk4": 4,
    "rk4_38": 4,
    "fehlberg2": 2,
    "bosh3": 3,
    "dopri5": 5,
    "tsit5": 5,
}


def logistic(t, y, args):
    return y * (1 - y)


def logistic_exact(t, y0):
    return 1 / (1 + (1 / y0 - 1) * jnp.exp(-t))


def test_every_name_has_an_order():
    assert set(ORDERS) == set(SOLVERS)


def pendulum(t, y, args):
    return jnp.stack([y[1], -jnp.sin(y[0])])


@pytest.fixture(scope="module")
def pendulum_reference():
    with jax.enable_x64(True):
        y0 = jnp.array([1.0, 0.5], dtype=jnp.float64)
        fine = odeness.Integrator(diffrax.Dopri8(), steps=2000, t1=2.0)
        return y0, odeness.solve(pendulum, y0, fine)[0]


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_convergence_order(name, pendulum_reference):
    """Slope of log(global error) against log(step size) is the method's order
    (float64; reference: 8th-order Dopri8 with 2,000 steps)."""
    y0, exact = pendulum_reference
    steps = (8, 16, 32, 64)
    errors = []
    with jax.enable_x64(True):
        # One compiled program for the four step sizes (traced dt, a common max_steps).
        solve = eqx.filter_jit(lambda integ: odeness.solve(pendulum, y0, integ))
        for n in steps:
            integ = odeness.Integrator(odeness.solver(name), dt=2.0 / n, t1=2.0,
                                       max_steps=64)  # fmt: skip
            y1, stats = solve(integ)
            assert int(stats.num_steps) == n
            errors.append(float(jnp.max(jnp.abs(y1 - exact))))
    slope = np.polyfit(np.log(2.0 / np.array(steps)), np.log(errors), 1)[0]
    assert order(odeness.solver(name)) == ORDERS[name]
    # At least the order; Tsit5 is pre-asymptotic here (its coefficients shrink the
    # leading error term), so allow a steeper slope, never a shallower one.
    assert ORDERS[name] - 0.3 < slope < ORDERS[name] + 0.7, (slope, errors)


def test_rk4_variants_are_classic_and_three_eighths():
    classic = odeness._solvers.RK4.tableau
    np.testing.assert_allclose(classic.c, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(classic.b_sol, [1 / 6, 1 / 3, 1 / 3, 1 / 6])
    three_eighths = odeness._solvers.RK4ThreeEighths.tableau
    np.testing.assert_allclose(three_eighths.c, [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(three_eighths.b_sol, [1 / 8, 3 / 8, 3 / 8, 1 / 8])
    # One step of y' = y from 1 with h = 1: both give the degree-4 Taylor polynomial.
    for name in ("rk4", "rk4_38"):
        y1, _ = odeness.solve(
            lambda t, y, a: y,
            jnp.ones(1),
            odeness.Integrator(odeness.solver(name), steps=1),
        )
        np.testing.assert_allclose(y1, [1 + 1 + 1 / 2 + 1 / 6 + 1 / 24], rtol=1e-6)


class Counter:
    """A vector field that counts its evaluations and vector-Jacobian products at run
    time (host callbacks fire once per executed evaluation)."""

    def __init__(self):
        self.primal = 0
        self.vjp = 0

        @jax.custom_vjp
        def f(y):
            jax.debug.callback(self._hit_primal)
            return 0.5 - y * y

        def fwd(y):
            jax.debug.callback(self._hit_primal)
            return 0.5 - y * y, y

        def bwd(y, g):
            jax.debug.callback(self._hit_vjp)
            return (-2 * y * g,)

        f.defvjp(fwd, bwd)
        self.f = f

    def _hit_primal(self):
        self.primal += 1

    def _hit_vjp(self):
        self.vjp += 1

    def __call__(self, t, y, args):
        return self.f(y)


# The adjoint's count does not depend on the method's structure (one evaluation and one
# VJP per forward evaluation): one-stage, multi-stage, FSAL and a Butcher-tableau method.
_BACKSOLVE = [
    ("euler", 5, diffrax.BacksolveAdjoint()),
    ("midpoint", 5, diffrax.BacksolveAdjoint()),
    ("rk4_38", 5, diffrax.BacksolveAdjoint()),
    ("dopri5", 5, diffrax.BacksolveAdjoint()),
]


@pytest.mark.parametrize(
    "name, adjoint",
    [(name, None) for name in sorted(ORDERS)] + [(name, a) for name, _, a in _BACKSOLVE],
    ids=[f"{name}-backprop" for name in sorted(ORDERS)]
    + [f"{name}-backsolve" for name, _, _ in _BACKSOLVE],
)
def test_nfe_fixed_steps_forward_and_backward(name, adjoint):
    # One step and five, through one compiled program (the step size is traced).
    s = odeness.solver(name)
    field = Counter()
    y0 = jnp.array([0.3, 0.1])

    def integ(dt):
        return odeness.Integrator(s, dt=dt, max_steps=5, adjoint=adjoint)

    forward = jax.jit(lambda y, dt: odeness.solve(field, y, integ(dt)))
    backward = jax.jit(jax.grad(lambda y, dt: odeness.solve(field, y, integ(dt))[0].sum()))
    for n in (1, 5):
        field.primal = field.vjp = 0
        y1, stats = forward(y0, 1.0 / n)
        jax.block_until_ready(y1)
        assert field.primal == int(stats.nfe) == nfe(s, n), n
        assert int(stats.num_steps) == n
        field.primal = 0
        jax.block_until_ready(backward(y0, 1.0 / n))
        primal_backward, vjps = backward_nfe(s, n, adjoint=adjoint)
        assert field.vjp == vjps == nfe(s, n), n
        assert field.primal == nfe(s, n) + primal_backward, n


@pytest.mark.parametrize("name", ["dopri5", "tsit5", "bosh3", "fehlberg2", "heun"])
def test_nfe_adaptive(name):
    s = odeness.solver(name)
    field = Counter()
    y0 = jnp.array([0.3, 0.1])
    integ = odeness.Integrator(s, rtol=1e-5, atol=1e-5)
    y1, stats = jax.jit(lambda y: odeness.solve(field, y, integ))(y0)
    jax.block_until_ready(y1)
    assert field.primal == int(stats.nfe)
    assert int(stats.num_steps) >= int(stats.num_accepted_steps) >= 1
    if stages(s) > 1 and odeness._solvers.is_fsal(s):
        assert int(stats.nfe) == 1 + (stages(s) - 1) * int(stats.num_steps)


def test_adaptive_capability():
    assert {n for n in SOLVERS if not is_adaptive(odeness.solver(n))} == {
        "euler",
        "rk4",
        "rk4_38",
    }


def test_unknown_solver_name():
    with pytest.raises(ValueError, match="unknown solver 'rk5'.*euler"):
        odeness.solver("rk5")


def traced_once():
    """`odeness.solve` of the logistic equation, compiled once: a second trace fails."""

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def run(integ, y0):
        return odeness.solve(logistic, y0, integ)

    return run


def test_traced_step_size_does_not_recompile():
    run = traced_once()
    y0 = jnp.array([0.2])
    results = {}
    for n in (2, 7, 32):
        y1, stats = run(
            odeness.Integrator(odeness.solver("midpoint"), dt=1.0 / n, max_steps=64), y0
        )
        assert int(stats.num_steps) == n
        results[n] = y1
    exact, _ = odeness.solve(
        logistic, y0, odeness.Integrator(odeness.solver("midpoint"), steps=7)
    )
    np.testing.assert_allclose(results[7], exact, rtol=1e-6)


def test_traced_tolerance_does_not_recompile():
    run = traced_once()
    y0 = jnp.array([0.2])
    errors = []
    for tol in (1e-2, 1e-4, 1e-6):
        y1, _ = run(odeness.Integrator(odeness.solver("dopri5"), rtol=tol, atol=tol), y0)
        errors.append(float(jnp.abs(y1 - logistic_exact(1.0, y0))[0]))
    assert errors[2] < errors[0]


@pytest.mark.parametrize(
    "integ",
    [
        odeness.Integrator(odeness.solver("euler"), steps=4, throw=False),
        odeness.Integrator(
            odeness.solver("rk4"), steps=4, throw=False, adjoint=diffrax.BacksolveAdjoint()
        ),
        odeness.Integrator(odeness.solver("dopri5"), rtol=1e-3, throw=False),
    ],
    ids=["euler", "rk4-backsolve", "dopri5"],
)
def test_a_solve_that_does_not_throw_has_no_host_callback(integ):
    # JAX never writes a program with a host callback to its persistent compilation
    # cache: the training and swap programs (throw=False) must have none, forward or
    # backward, although the step size is traced.
    def loss(y, integ):
        return odeness.solve(logistic, y, integ)[0].sum()

    for fn in (loss, jax.grad(loss)):
        text = jax.jit(fn).lower(jnp.array([0.2]), integ).as_text()
        assert "callback" not in text


@pytest.mark.parametrize("throw", [True, False])
def test_a_traced_step_size_is_checked_in_the_program(throw):
    @jax.jit
    def run(dt):
        integ = odeness.Integrator(odeness.solver("euler"), dt=dt, max_steps=8, throw=throw)
        return odeness.solve(logistic, jnp.array([0.2]), integ)

    y, stats = run(0.25)
    assert jnp.isfinite(y).all() and bool(stats.success)
    for bad in (-0.25, 0.0, jnp.nan):
        if throw:  # raised in the program, as diffrax raises
            with pytest.raises(Exception, match="dt must be a finite number > 0"):
                jax.block_until_ready(run(bad))
        else:  # reported, with no host callback in the program
            _, stats = run(bad)
            assert not bool(stats.success)
            assert stats.message() == "the step size is not a finite number > 0"
    assert ("callback" in run.lower(0.25).as_text()) == throw


def test_an_adapted_training_program_has_no_host_callback(tiny_sphere):
    """The step-size rule's training, test and trial solves report failures instead of
    raising, and train checks the rule's values on the host: the persistent compilation
    cache keeps the adapted training program."""
    from odeness._train_step import adam, train_chunk
    from odeness._training import init_state

    for config in (
        odeness.TrainConfig(steps=2, adapt=True, channels=4, interval=2),
        odeness.TrainConfig(solver="dopri5", steps=None, tol=1e-3, adapt=True, channels=4),
    ):
        state, static = init_state(config, tiny_sphere)
        x, y = jnp.asarray(tiny_sphere.x_train), jnp.asarray(tiny_sphere.y_train)
        text = train_chunk.lower(
            state, static, config.rule(), adam(1e-3), x, y, batch_size=128, length=3,
            start=jnp.asarray(0),
        ).as_text()  # fmt: skip
        assert "callback" not in text, config.solver


def test_numpy_integer_steps_are_accepted():
    assert odeness.Integrator(odeness.solver("euler"), steps=np.int64(4)).steps == 4


@pytest.mark.parametrize("n", [1, 3, 10, 100, 128, 500, 1000])
def test_fixed_grid_takes_exactly_n_steps(n):
    integ = odeness.Integrator(odeness.solver("euler"), steps=n)
    _, stats = odeness.solve(logistic, jnp.array([0.2]), integ)
    assert int(stats.num_steps) == n == integ.steps


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps must be an integer >= 1, got 0"),
        (dict(steps=-3), "steps must be an integer >= 1, got -3"),
        (dict(steps=2.5), "steps must be an integer >= 1, got 2.5"),
        (dict(steps=True), "steps must be an integer >= 1, got True"),
        (dict(dt=0.0), "dt must be a finite number > 0, got 0.0"),
        (dict(dt=-0.1), "dt must be a finite number > 0, got -0.1"),
        (dict(dt=float("nan")), "dt must be a finite number > 0, got nan"),
        (dict(dt=float("inf")), "dt must be a finite number > 0, got inf"),
        (dict(steps=4, t0=1.0, t1=1.0), "need finite t0 ≠ t1, got t0=1.0, t1=1.0"),
        (dict(steps=4, t0=1.0, t1=float("inf")), "need finite t0 ≠ t1, got t0=1.0, t1=inf"),
        (dict(dt=-0.25, t0=1.0, t1=0.0), "dt must be a finite number > 0, got -0.25"),
        (dict(), "give either fixed steps"),
        (dict(steps=4, dt=0.25), "give steps= or dt=, not both"),
        (dict(dt=0.01, max_steps=10), "needs 100 steps, more than max_steps=10"),
        (dict(steps=4, max_steps=0), "max_steps must be an integer >= 1, got 0"),
    ],
)
def test_bad_fixed_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        odeness.Integrator(odeness.solver("euler"), **kwargs)


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("rk4", dict(rtol=1e-3), "solver 'rk4' has no error estimate"),
        ("rk4_38", dict(rtol=1e-3), "solver 'rk4_38' has no error estimate"),
        ("euler", dict(atol=1e-3), "solver 'euler' has no error estimate"),
        ("dopri5", dict(rtol=0.0), "rtol must be a finite number > 0, got 0.0"),
        ("dopri5", dict(rtol=1e-3, atol=float("nan")), "atol must be a finite number > 0"),
        ("dopri5", dict(rtol=-1.0), "rtol must be a finite number > 0, got -1.0"),
        ("dopri5", dict(steps=3, rtol=1e-3), "give either fixed steps"),
    ],
)
def test_bad_adaptive_configuration(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        odeness.Integrator(odeness.solver(name), **kwargs)


def test_solver_must_be_an_object():
    with pytest.raises(ValueError, match="solver must be a diffrax solver object"):
        odeness.Integrator("euler", steps=2)  # pyright: ignore[reportArgumentType]


def test_max_steps_reached_is_reported():
    stiff = odeness.Integrator(
        odeness.solver("dopri5"), rtol=1e-10, atol=1e-10, max_steps=4
    )
    with pytest.raises(Exception, match="maximum number of solver steps"):
        jax.block_until_ready(odeness.solve(logistic, jnp.array([0.2]), stiff))
    quiet = odeness.Integrator(
        odeness.solver("dopri5"), rtol=1e-10, atol=1e-10, max_steps=4, throw=False
    )
    _, stats = odeness.solve(logistic, jnp.array([0.2]), quiet)
    assert not bool(stats.success)
    _, ok = odeness.solve(
        logistic, jnp.array([0.2]), odeness.Integrator(odeness.solver("dopri5"), rtol=1e-3)
    )
    assert bool(ok.success)


def test_per_sample_matches_joint_for_fixed_steps_and_differs_adaptively():
    y0 = jnp.array([[0.1], [0.9], [0.5]])
    joint, js = odeness.solve(
        logistic, y0, odeness.Integrator(odeness.solver("rk4"), steps=8)
    )
    each, es = odeness.solve(
        logistic, y0, odeness.Integrator(odeness.solver("rk4"), steps=8, per_sample=True)
    )
    np.testing.assert_allclose(joint, each, rtol=1e-6)
    assert es.nfe.shape == (3,) and js.nfe.shape == ()
    _, ad = odeness.solve(
        logistic,
        y0,
        odeness.Integrator(odeness.solver("dopri5"), rtol=1e-6, per_sample=True),
    )
    assert ad.num_steps.shape == (3,)


def test_diffrax_solver_objects_pass_through():
    integ = odeness.Integrator(diffrax.Tsit5(), rtol=1e-4)
    assert isinstance(integ.control, odeness.Tolerances) and integ.order == 5
    assert integ.setting.to_json()["solver"] == "tsit5"


def test_a_step_that_does_not_divide_a_long_interval_reaches_t1():
    # 2.5 / h = 4197.01: the float32 times need one step more than the count of
    # `_num_steps` (diffrax stopped at max_steps = 4197 before).
    h = 0.0005956621435290103
    integ = odeness.Integrator(odeness.solver("euler"), dt=h, t1=2.5)
    y, stats = odeness.solve(lambda t, y, args: -y, jnp.ones((1, 1)), integ)
    assert bool(stats.success.all()) and integ.max_steps == 4198
    np.testing.assert_allclose(y, np.exp(-2.5), rtol=1e-3)
    assert odeness.Integrator(odeness.solver("euler"), steps=8).max_steps == 8
