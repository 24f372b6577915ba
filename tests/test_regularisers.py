"""The regularisers (odeness.KineticEnergy, JacobianFrobenius, TaylorDerivative,
ErrorEstimate, RandomEndTime): closed forms on linear fields, Hutchinson's estimate in
mean, gradients against finite differences, and what training does with them."""

import json

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeness

RATES = np.array([-0.5, 0.3])
DIAGONAL = np.diag(RATES)
OMEGA = 0.7
ROTATION = np.array([[0.0, -OMEGA], [OMEGA, 0.0]])
Y0 = np.array([[1.0, 2.0], [0.5, -1.0]])  # float64 under x64


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


class LinearField(eqx.Module):
    """`dy/dt = A y` on a batch of states."""

    a: jax.Array | np.ndarray

    def __call__(self, t, y, args):
        return y @ self.a.T


def closed_form(a, y0, k: int, t1: float = 1.0):
    """`∫₀ᵗ¹ ‖Aᵏ y(t)‖² dt` per example, for `A` diagonal or a rotation."""
    if bool(jnp.all(a == jnp.diag(jnp.diag(a)))):
        rates = jnp.diag(a)
        return jnp.sum(
            rates ** (2 * k) * y0**2 * (jnp.exp(2 * rates * t1) - 1) / (2 * rates), 1
        )
    omega = a[1, 0]  # a rotation keeps the norm: ‖Aᵏ y‖ = ωᵏ ‖y0‖
    return omega ** (2 * k) * jnp.sum(y0**2, axis=1) * t1


REGULARISERS = (
    odeness.KineticEnergy(),
    odeness.TaylorDerivative(order=1),
    odeness.TaylorDerivative(order=2),
    odeness.TaylorDerivative(order=3),
)


@pytest.mark.parametrize("a", [DIAGONAL, ROTATION], ids=["diagonal", "rotation"])
@pytest.mark.parametrize(
    "integ",
    [
        odeness.Integrator(odeness.solver("rk4"), steps=64),
        odeness.Integrator(odeness.solver("rk4"), steps=64, per_sample=True),
        odeness.Integrator(odeness.solver("dopri5"), rtol=1e-10),
    ],
    ids=["rk4", "rk4-per-sample", "dopri5"],
)
def test_penalties_integrate_to_their_closed_forms(x64, a, integ):
    field = LinearField(jnp.asarray(a, dtype=float))
    y, stats = odeness.solve(field, jnp.asarray(Y0), integ.regularised(REGULARISERS))
    expected = {"kinetic": 1, "taylor1": 1, "taylor2": 2, "taylor3": 3}
    for name, k in expected.items():
        np.testing.assert_allclose(
            stats.penalties[name], closed_form(field.a, jnp.asarray(Y0), k), rtol=1e-7
        )
    # The solution and its cost are those of the solve without penalties.
    plain, plain_stats = odeness.solve(field, jnp.asarray(Y0), integ)
    np.testing.assert_array_equal(y, plain)
    np.testing.assert_array_equal(stats.nfe, plain_stats.nfe)
    # Per evaluation: nothing for the kinetic energy, K - 1 Taylor-mode passes each.
    assert np.all(np.asarray(stats.penalty_nfe) == 3 * np.asarray(stats.nfe))


def test_time_derivatives_include_the_dependence_on_time(x64):
    # dy/dt = t y, y(0) = 1: y = exp(t²/2), y'' = (1 + t²) y, y''' = (3t + t³) y.
    t, y = 0.7, jnp.exp(0.7**2 / 2) * jnp.ones((1, 1))
    d1, d2, d3 = odeness.time_derivatives(lambda t, y, a: t * y, t, y, None, 3)
    np.testing.assert_allclose(d1, t * y)
    np.testing.assert_allclose(d2, (1 + t**2) * y)
    np.testing.assert_allclose(d3, (3 * t + t**3) * y)
    given = odeness.time_derivatives(lambda t, y, a: t * y, t, y, None, 3, f=t * y)
    np.testing.assert_allclose(given[2], d3)  # the field's value given: the same


def test_the_jacobian_estimate_is_unbiased(x64):
    """Hutchinson's estimate of `∫ ‖A‖²_F dt = ‖A‖²_F` (T = 1) over many keys, within
    four standard errors; with many probes, one solve is close already."""
    a = jnp.array([[-0.5, 1.0], [0.2, 0.3]])
    field, integ = LinearField(a), odeness.Integrator(odeness.solver("euler"), steps=4)

    def estimate(key, probes):
        regularised = integ.regularised([odeness.JacobianFrobenius(probes)], key=key)
        return odeness.solve(field, jnp.asarray(Y0), regularised)[1].penalties["jacobian"]

    keys = jax.random.split(jax.random.key(0), 2000)
    draws = np.asarray(jax.jit(jax.vmap(lambda k: estimate(k, 1)))(keys)).ravel()
    exact = float(jnp.sum(a**2))
    assert abs(draws.mean() - exact) < 4 * draws.std() / np.sqrt(draws.size)
    assert draws.std() > 0.1 * exact  # one probe is noisy ...
    many = np.asarray(estimate(jax.random.key(1), 4000))
    np.testing.assert_allclose(many, exact, rtol=0.05)  # ... many are not


def test_the_error_estimate_is_eulers_local_error(x64):
    """Euler (with Heun's embedded pair) on `A y`: each step's error estimate is
    `h²/2 A² y`, so the penalty is `(h²/2) ∫ rms(A² y) dt` to leading order: it falls
    four times when the step halves."""
    field, t = LinearField(DIAGONAL), jnp.linspace(0, 1, 2001)
    y = jnp.exp(t[:, None, None] * RATES) * Y0  # (time, batch, d)
    rms = jnp.sqrt(jnp.mean((y * RATES**2) ** 2, axis=2))
    integral = jnp.trapezoid(rms, t, axis=0)
    values = []
    for n in (64, 128):
        integ = odeness.Integrator(odeness.solver("euler"), steps=n)
        _, stats = odeness.solve(
            field, jnp.asarray(Y0), integ.regularised([odeness.ErrorEstimate()])
        )
        h = 1 / n
        np.testing.assert_allclose(stats.penalties["error"], h**2 / 2 * integral, rtol=0.02)
        assert int(stats.nfe) == n and int(stats.penalty_nfe) == 1  # Heun's stage: FSAL
        values.append(np.asarray(stats.penalties["error"]))
    np.testing.assert_allclose(values[0] / values[1], 4, rtol=0.02)
    # An adaptive solver's own estimate, scaled by the tolerance: the same steps.
    dopri5 = odeness.Integrator(odeness.solver("dopri5"), rtol=1e-6)
    _, stats = odeness.solve(
        field, jnp.asarray(Y0), dopri5.regularised([odeness.ErrorEstimate()])
    )
    _, plain = odeness.solve(field, jnp.asarray(Y0), dopri5)
    assert int(stats.nfe) == int(plain.nfe) and int(stats.penalty_nfe) == 0
    assert np.all(
        (0 < np.asarray(stats.penalties["error"])) & (stats.penalties["error"] < 2)
    )


def test_a_random_end_time_solves_to_a_drawn_time(x64):
    field, spread = LinearField(DIAGONAL), 0.4
    integ = odeness.Integrator(odeness.solver("rk4"), steps=64)
    ends = []
    for i in range(40):
        regularised = integ.regularised(
            [odeness.RandomEndTime(spread)], key=jax.random.key(i)
        )
        y, stats = odeness.solve(field, jnp.asarray(Y0), regularised)
        end = float(jnp.log(y[0, 0] / Y0[0, 0]) / RATES[0])  # y = exp(a t) y0
        np.testing.assert_allclose(y, jnp.exp(end * RATES) * Y0, rtol=1e-8)
        assert stats.penalties == {}
        ends.append(end)
    assert 1 - spread <= min(ends) and max(ends) <= 1 + spread
    assert max(ends) - min(ends) > spread  # spread over the interval, not a constant
    assert abs(np.mean(ends) - 1) < 3 * spread / np.sqrt(3 * len(ends))


@pytest.mark.parametrize(
    "integ",
    [
        odeness.Integrator(odeness.solver("midpoint"), steps=8),
        odeness.Integrator(odeness.solver("dopri5"), rtol=1e-3),
    ],
    ids=["midpoint", "dopri5"],
)
def test_gradients_match_finite_differences(x64, integ):
    # Every penalty, accumulated along one solve; with adaptive steps through the
    # controller's choices too (at a tolerance loose enough that a finite difference
    # keeps the same steps).
    regularisers = [
        odeness.KineticEnergy(),
        odeness.JacobianFrobenius(2),
        odeness.TaylorDerivative(order=2),
        odeness.TaylorDerivative(order=3),
        odeness.ErrorEstimate(),
    ]
    regularised = integ.regularised(regularisers, key=jax.random.key(3))

    @jax.jit
    def penalties(a):
        stats = odeness.solve(LinearField(a), jnp.asarray(Y0), regularised)[1]
        return jnp.stack([jnp.sum(stats.penalties[r.name]) for r in regularisers])

    a = jnp.array([[-0.5, 1.0], [0.2, 0.3]])
    grads = jax.jit(jax.jacrev(penalties))(a)  # (penalty, i, j)
    eps = 1e-6
    for i, j in np.ndindex(2, 2):
        step = jnp.zeros((2, 2)).at[i, j].set(eps)
        numeric = (penalties(a + step) - penalties(a - step)) / (2 * eps)
        np.testing.assert_allclose(grads[:, i, j], numeric, rtol=1e-5, atol=1e-8)


def test_the_continuous_adjoint_differentiates_the_penalties_too(x64):
    a = jnp.array([[-0.5, 1.0], [0.2, 0.3]])
    regs = [odeness.KineticEnergy(), odeness.TaylorDerivative(order=2)]

    def grad(adjoint):
        integ = odeness.Integrator(odeness.solver("rk4"), steps=32, adjoint=adjoint)

        def total(a):
            stats = odeness.solve(LinearField(a), jnp.asarray(Y0), integ.regularised(regs))[
                1
            ]
            return sum(jnp.sum(v) for v in stats.penalties.values())

        return jax.grad(total)(a)

    np.testing.assert_allclose(grad(diffrax.BacksolveAdjoint()), grad(None), rtol=1e-6)


def test_a_users_backsolve_options_stay_when_the_penalties_run_adaptively(x64):
    a = jnp.array([[-0.5, 1.0], [0.2, 0.3]])
    regs = [odeness.KineticEnergy()]
    own = diffrax.BacksolveAdjoint(solver=diffrax.Tsit5())

    def grad(adjoint):
        integ = odeness.Integrator(
            odeness.solver("dopri5"), rtol=1e-9, atol=1e-9, adjoint=adjoint
        )

        def total(a):
            stats = odeness.solve(LinearField(a), jnp.asarray(Y0), integ.regularised(regs))
            return jnp.sum(stats[1].penalties["kinetic"])

        return jax.grad(total)(a), integ

    got, integ = grad(own)
    # The backward solve keeps the user's solver and gets a controller on its whole state.
    backward = integ.control.backward(own)
    assert isinstance(backward, diffrax.BacksolveAdjoint)
    assert isinstance(backward.kwargs["solver"], diffrax.Tsit5)
    assert isinstance(backward.kwargs["stepsize_controller"], diffrax.PIDController)
    theirs = diffrax.BacksolveAdjoint(stepsize_controller=diffrax.ConstantStepSize())
    assert integ.control.backward(theirs) is theirs
    np.testing.assert_allclose(got, grad(None)[0], rtol=1e-6)


def test_penalties_of_any_model_built_on_solve(getkey):
    field = eqx.nn.MLP(2, 2, 8, 1, activation=jnp.tanh, key=getkey())

    class Batched(eqx.Module):
        mlp: eqx.nn.MLP

        def __call__(self, t, y, args):
            return jax.vmap(self.mlp)(y)

    class Own(odeness.AbstractODEModel):
        """A model of one's own: its own solve, its own head."""

        field: Batched

        def initial_state(self, x):
            return 2 * x

        def vector_field(self, t, y, args):
            return self.field(t, y, args)

        def __call__(self, x, integ):
            y, stats = odeness.solve(self.field, self.initial_state(x), integ)
            return y.sum(axis=1), stats

    x = jax.random.normal(getkey(), (5, 2))
    integ = odeness.Integrator(odeness.solver("euler"), steps=4)
    regs = [odeness.KineticEnergy(), odeness.TaylorDerivative(order=2)]
    neural = odeness.NeuralODE(Batched(field), encoder=lambda x: 2 * x)
    for model in (neural, Own(Batched(field))):
        values = odeness.penalties(model, integ, x, regs)
        assert set(values) == {"kinetic", "taylor2"}
        direct = odeness.solve(Batched(field), 2 * x, integ.regularised(regs))[1]
        np.testing.assert_allclose(values["kinetic"], direct.penalties["kinetic"].mean())
    classifier = odeness.make_classifier("conv", (2,), 2, channels=4, key=getkey())
    assert set(odeness.penalties(classifier, integ, x, regs)) == {"kinetic", "taylor2"}
    with pytest.raises(ValueError, match="the model returned no penalty 'kinetic'"):
        odeness.penalties(
            lambda x, integ: (x, odeness.SolveStats(0, 0, 0, None)),  # pyright: ignore
            integ,
            x,
            regs,
        )


def test_taylor_mode_goes_through_custom_derivative_rules():
    """K = 2 is one Jacobian-vector product; K >= 3 is Taylor mode (`jet`), which knows
    no custom derivative rule: `jax.nn.relu`'s (a `custom_jvp` inside a `jit`) and
    `jax.nn.softplus`'s are evaluated as the functions they stand for, with the values
    and gradients of a field written without them."""
    integ = odeness.Integrator(odeness.solver("euler"), steps=2)

    def field(activation):
        return lambda t, y, a: activation(y * jnp.array([1.0, -2.0])) - y

    def where(x):
        return jnp.where(x > 0, x, 0 * x)

    regs = integ.regularised([odeness.TaylorDerivative(order=3)])

    def penalty(scale, activation):
        y0 = scale * jnp.asarray(Y0)
        return jnp.sum(odeness.solve(field(activation), y0, regs)[1].penalties["taylor3"])

    got, expected = (jax.value_and_grad(penalty)(1.5, f) for f in (jax.nn.relu, where))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(penalty(1.5, jax.nn.softplus), penalty(1.5, _softplus),
                               rtol=1e-5)  # fmt: skip


def _softplus(x):
    """`log(1 + e^x)` without `jax.nn.softplus`'s custom derivative rule."""
    return jnp.log1p(jnp.exp(x))


class _NoEstimate(diffrax.AbstractERK):
    """A Runge–Kutta method of one's own without an error estimate (Ralston's)."""

    tableau = diffrax.ButcherTableau(
        a_lower=(np.array([2 / 3]),), b_sol=np.array([1 / 4, 3 / 4]), b_error=np.zeros(2),
        c=np.array([2 / 3]),
    )  # fmt: skip
    interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        return 2


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: odeness.JacobianFrobenius(0), "probes must be an integer >= 1, got 0"),
        (lambda: odeness.TaylorDerivative(order=0), "order must be an integer >= 1, got 0"),
        (lambda: odeness.RandomEndTime(0.0), "spread must be a finite number > 0, got 0.0"),
        (
            lambda: odeness.Integrator(odeness.solver("euler"), steps=2).regularised(
                [odeness.RandomEndTime(1.0)], key=jax.random.key(0)
            ),
            r"spread must be < \|t1 - t0\| = 1 \(the end time stays beyond t0\), got 1.0",
        ),
        (
            lambda: odeness.Integrator(odeness.solver("euler"), steps=2).regularised(
                [odeness.JacobianFrobenius()]
            ),
            "JacobianFrobenius draws random numbers: give a key",
        ),
        (
            lambda: odeness.Integrator(odeness.solver("euler"), steps=2).regularised(
                [odeness.KineticEnergy(), odeness.KineticEnergy()]
            ),
            "regulariser 'kinetic' given twice",
        ),
        (
            lambda: odeness.Integrator(
                odeness.solver("euler"), steps=2, adjoint=diffrax.BacksolveAdjoint()
            ).regularised([odeness.ErrorEstimate()]),
            "ErrorEstimate needs backpropagation through the solver",
        ),
        (
            lambda: odeness.Integrator(_NoEstimate(), steps=2).regularised(
                [odeness.ErrorEstimate()]
            ),
            "ErrorEstimate needs a solver with an error estimate: '_NoEstimate' has none",
        ),
        (
            lambda: odeness.TrainConfig(regularise=(("kinetc", 0.1),)),
            "unknown regulariser 'kinetc'; expected one of kinetic, jacobian, taylorK",
        ),
        (
            lambda: odeness.TrainConfig(regularise=(("kinetic", -0.1),)),
            "weight of kinetic must be a finite number >= 0, got -0.1",
        ),
        (
            lambda: odeness.TrainConfig(regularise=(("jacobian", float("inf")),)),
            "weight of jacobian must be a finite number >= 0, got inf",
        ),
        (
            lambda: odeness.TrainConfig(regularise=(("taylor0", 0.1),)),
            "TaylorDerivative needs an order K >= 1, got 'taylor0'",
        ),
        (
            lambda: odeness.TrainConfig(regularise=(("steer", 1.5),)),
            "spread must be < |t1 - t0|",
        ),
        (
            lambda: odeness.TrainConfig(regularise=(("error", 1.0),), adjoint="backsolve"),
            "ErrorEstimate needs backpropagation through the solver",
        ),
        (
            lambda: odeness.TrainConfig(regularise=("kinetic",)),  # pyright: ignore
            "regularise must be \\(name, weight\\) pairs",
        ),
    ],
)
def test_bad_input_is_one_line(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


class Curvature(odeness.AbstractIntegralPenalty):
    """A sixth regulariser, of a user's own: `∫ ‖y‖² dt`."""

    @property
    def name(self):
        return "size"

    def rate(self, field, t, y, args, f, noise):
        return jnp.sum(y**2, axis=1)


def test_training_with_regularisers(tiny_sphere, tmp_path):
    config = odeness.TrainConfig(channels=4, iterations=20, log_every=10, seeds=(0,))
    plain = odeness.train(config, data=tiny_sphere, progress=False)
    # A zero weight leaves the run as it is, to the byte.
    off = odeness.train(config.replace(regularise=(("kinetic", 0.0), ("steer", 0.0))),
                        data=tiny_sphere, progress=False)  # fmt: skip
    for a, b in zip(
        jax.tree.leaves(plain.models), jax.tree.leaves(off.models), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert plain.metrics == [
        r._replace(seconds=p.seconds)
        for r, p in zip(off.metrics, plain.metrics, strict=True)
    ]
    # Named in the configuration, and one of one's own: logged, and in the loss.
    named = config.replace(regularise=(("kinetic", 1.0), ("taylor2", 0.1), ("steer", 0.3)))
    run = odeness.train(named, data=tiny_sphere, progress=False, run_dir=tmp_path,
                        regularisers=[(Curvature(), 0.5)])  # fmt: skip
    last = run.metrics[-1].to_json()
    assert {"penalty_kinetic", "penalty_taylor2", "penalty_size"} <= set(last)
    assert last["penalty_nfe"] == 2 and last["nfe"] == 2  # a Taylor pass per stage
    assert last["loss"] > plain.metrics[-1].loss
    saved = json.loads((tmp_path / "components.json").read_text())
    assert saved == {"regularisers": "size 0.5"}
    assert json.loads((tmp_path / "config.json").read_text())["regularise"] == [
        ["kinetic", 1.0], ["taylor2", 0.1], ["steer", 0.3]
    ]  # fmt: skip
    with pytest.raises(ValueError, match="regularisers of your own \\(size 0.5\\)"):
        odeness.train(named, data=tiny_sphere, run_dir=tmp_path)
    assert named.label == "n=2, kinetic 1, taylor2 0.1, steer 0.3"
