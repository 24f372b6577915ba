"""The cures of the Neural ODE literature: regularisers that make a model smoother or
cheaper to solve, as drop-ins for any model built on `odeness.solve`.

A regulariser rides on the `Integrator` (`integ.regularised(...)`): the solve then
accumulates each penalty along the same solve as the model, in an augmented state
`(y, penalties)` integrated by the training solver itself, and returns the per-example
values in `SolveStats.penalties`; training adds them to the loss, each times its weight.
The accumulated penalties never steer an adaptive step-size controller (its error norm
sees `y` alone), so the steps and the NFE are those of the unregularised solve.

- `KineticEnergy()`: `∫ ‖f(t, y)‖² dt` (Finlay et al. 2020, RNODE);
- `JacobianFrobenius(probes)`: `∫ ‖∂f/∂y‖²_F dt`, Hutchinson's estimate (Finlay et al.);
- `TaylorDerivative(order=K)`: `∫ ‖dᴷy/dtᴷ‖² dt`, Taylor mode (Kelly et al. 2020,
  TayNODE);
- `ErrorEstimate()`: `Σ_j |h_j| E_j`, the solver's local error estimates (Pal et al.
  2021);
- `RandomEndTime(spread)`: no penalty; the end time of each training solve is random
  (Ghosh et al. 2020, STEER).
"""

import abc
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.extend as jex
import jax.numpy as jnp
from jax.experimental import jet
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from . import _checks as check
from ._solvers import solver_name, with_error_estimate


def per_example(values: Float[Array, "batch ..."]) -> Float[Array, " batch"]:
    """The sum over every axis but the first (the batch): one number per example."""
    return jnp.sum(jnp.reshape(values, (values.shape[0], -1)), axis=1)


class AbstractRegulariser(eqx.Module):
    """A regulariser: something training adds to its solves to keep a model an ODE, or
    make it cheaper to solve.

    Subclass `AbstractIntegralPenalty` for a penalty of your own; `name` is how results
    and `TrainConfig.regularise` call it.
    """

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The name penalties are reported under (`SolveStats.penalties`, metrics)."""

    @property
    def needs_key(self) -> bool:
        """Whether each solve draws random numbers (then `regularised` needs a `key`)."""
        return False

    def check(self, t0: float, t1: float) -> None:
        """**Raises:** `ValueError` if the regulariser cannot apply on `[t0, t1]`."""
        del t0, t1


class AbstractPenalty(AbstractRegulariser):
    """A penalty accumulated along the solve, one value per example; training adds its
    batch mean, times its weight, to the loss."""


class AbstractIntegralPenalty(AbstractPenalty):
    """`∫ rate(t, y) dt` along the solve: an extra component of the state, integrated by
    the training solver from the same stage evaluations as the model.

    Subclass it for a penalty of your own: implement `name` and `rate` (and `noise` for
    random probes, drawn once per solve).
    """

    def noise(self, key: PRNGKeyArray, y0: Float[Array, "batch ..."]) -> PyTree:
        """Random numbers held fixed for one solve (default: none)."""
        del key, y0
        return None

    @property
    def names(self) -> tuple[str, ...]:
        """The integrals it accumulates, each in `SolveStats.penalties`: its `name`
        alone, unless its `evaluate` returns several rates (a dict by name)."""
        return (self.name,)

    @property
    def extra_evaluations(self) -> int:
        """Passes through the field (or its derivatives) each stage evaluation costs
        beyond the evaluation itself: a Jacobian-vector product or a Taylor-mode pass
        counts as one. Reported as `SolveStats.penalty_nfe`."""
        return 0

    def evaluate(
        self, field: Callable, t, y: Float[Array, "batch ..."], args, noise: PyTree
    ):
        """`(field(t, y, args), rate)`: the field's value and the integrand, for a
        penalty that computes both in one pass (the solve then takes the field's value
        from the first penalty); `rate` may be a dict of the rates of `names`. By
        default the field, then `rate`."""
        f = field(t, y, args)
        return f, self.rate(field, t, y, args, f, noise)

    @abc.abstractmethod
    def rate(
        self,
        field: Callable,
        t,
        y: Float[Array, "batch ..."],
        args,
        f: Float[Array, "batch ..."],
        noise: PyTree,
    ) -> Float[Array, " batch"]:
        """The integrand at `(t, y)`, per example; `f = field(t, y, args)` is already
        evaluated."""


class KineticEnergy(AbstractIntegralPenalty):
    """`∫ ‖f(t, y)‖² dt`: the kinetic energy of the flow (Finlay et al., *How to train
    your neural ODE*, ICML 2020). It reuses the stage evaluations of the solve: no extra
    evaluation.

    Finlay et al.'s code integrates `½ ‖f‖² / d` (d the state's size): their weight λ is
    `λ / (2 d)` here.
    """

    @property
    def name(self) -> str:
        return "kinetic"

    def rate(self, field, t, y, args, f, noise):
        del field, t, y, args, noise
        return per_example(f**2)


class JacobianFrobenius(AbstractIntegralPenalty):
    """`∫ ‖∂f/∂y‖²_F dt`, by Hutchinson's estimator (Finlay et al., ICML 2020):
    `‖∂f/∂y‖²_F = E ‖(∂f/∂y) ε‖²` for Gaussian `ε`, estimated with `probes` draws per
    example, each one Jacobian-vector product per stage evaluation, from the same
    linearisation that gives the field's value (`jax.linearize`). The probes are drawn
    once per solve (from the integrator's `key`) and held fixed along it, as Finlay et
    al. do.

    The field must act on each example of the batch alone (no batch statistics): the
    Jacobian-vector product of the batch then holds each example's own. Finlay et al.'s
    code integrates `‖εᵀ ∂f/∂y‖² / d` (a vector-Jacobian product; the same expectation).

    **Raises:** `ValueError` for `probes` not an integer >= 1.
    """

    probes: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check.integer("probes", self.probes)

    @property
    def name(self) -> str:
        return "jacobian"

    @property
    def needs_key(self) -> bool:
        return True

    @property
    def extra_evaluations(self) -> int:
        return self.probes

    def noise(self, key, y0):
        return jax.random.normal(key, (self.probes, *y0.shape), y0.dtype)

    def evaluate(self, field, t, y, args, noise):
        f, jvp = jax.linearize(lambda z: field(t, z, args), y)
        return f, self._mean_square(jax.vmap(jvp)(noise.astype(f.dtype)))

    def rate(self, field, t, y, args, f, noise):
        del f
        return self.evaluate(field, t, y, args, noise)[1]

    @staticmethod
    def _mean_square(products):
        return jnp.mean(jax.vmap(lambda p: per_example(p**2))(products), axis=0)


def _inlined(jaxpr: jex.core.Jaxpr, consts, *args) -> list:
    """Evaluate `jaxpr`, with the functions of its custom derivative rules (and of its
    `jit`s, which may hold such rules) evaluated in their place."""
    env: dict = {}

    def read(v):
        return v.val if isinstance(v, jex.core.Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        values = [read(v) for v in eqn.invars]
        inner = _INNER.get(eqn.primitive)
        if inner is not None:
            closed = eqn.params[inner]
            out = _inlined(closed.jaxpr, closed.consts, *values)
        else:
            out = eqn.primitive.bind(*values, **eqn.primitive.get_bind_params(eqn.params))
            out = out if eqn.primitive.multiple_results else [out]
        env.update(zip(eqn.outvars, out, strict=True))
    return [read(v) for v in jaxpr.outvars]


_INNER = {
    jex.core.primitives.custom_jvp_call_p: "call_jaxpr",
    jex.core.primitives.jit_p: "jaxpr",
}
"""The primitives `without_custom_rules` opens, and the parameter that holds the function
each one calls."""


def without_custom_rules(fn: Callable) -> Callable:
    """`fn` of one array, traced once and evaluated with each custom derivative rule
    (`jax.custom_jvp`, e.g. `jax.nn.relu`'s) replaced by the function it stands for:
    what `jax.experimental.jet` can differentiate, which ignores such rules and fails on
    them (an `UnexpectedTracerError` in JAX 0.10). The values are `fn`'s."""

    def inlined(z):
        closed = jax.make_jaxpr(fn)(z)
        (out,) = _inlined(closed.jaxpr, closed.consts, z)
        return out

    return inlined


def time_derivatives(
    field: Callable,
    t,
    y: Float[Array, "batch ..."],
    args,
    order: int,
    *,
    f: Float[Array, "batch ..."] | None = None,
):
    """`[dy/dt, d²y/dt², …, dᴷy/dtᴷ]` along the solution of `dy/dt = field(t, y, args)`
    through `(t, y)`, by the recursion of Kelly et al. (NeurIPS 2020): time is appended
    to the state, so a field that depends on `t` has its total derivatives. One
    evaluation of the field (none if `f = field(t, y, args)` is given), a
    Jacobian-vector product for d²y/dt², and one Taylor-mode pass
    (`jax.experimental.jet`) for each higher derivative.

    Taylor mode does not know custom derivative rules (`jax.custom_jvp`, e.g.
    `jax.nn.relu`, `jax.nn.softplus`, `jax.nn.gelu`): the higher derivatives are taken
    through the functions those rules stand for (`without_custom_rules`); their first
    derivatives are those of the rules.
    """
    shape = y.shape
    t = jnp.asarray(t, dtype=y.dtype)

    def g(z):
        dy = field(z[-1], z[:-1].reshape(shape), args)
        return jnp.concatenate([jnp.ravel(dy), jnp.ones((1,), z.dtype)])

    z = jnp.concatenate([jnp.ravel(y), t[None]])
    if f is None:
        derivatives = [g(z)]
    else:
        derivatives = [jnp.concatenate([jnp.ravel(f), jnp.ones((1,), z.dtype)])]
    for _ in range(order - 1):
        if len(derivatives) == 1:  # the first pass is a Jacobian-vector product
            series = [jax.jvp(g, (z,), (derivatives[0],))[1]]
        else:
            _, series = jet.jet(without_custom_rules(g), (z,), (tuple(derivatives),))
        derivatives = [derivatives[0], *series]
    return [d[:-1].reshape(shape) for d in derivatives]


class TaylorDerivative(AbstractIntegralPenalty):
    """`∫ ‖dᴷy/dtᴷ‖² dt`, the `order`-th total time derivative of the solution (Kelly,
    Bettencourt, Johnson & Duvenaud, *Learning differential equations that are easy to
    solve*, NeurIPS 2020), by `time_derivatives`: `order` - 1 passes per stage
    evaluation (a Jacobian-vector product, then Taylor mode). `order=1` is the kinetic
    energy.

    Kelly et al.'s code integrates `‖dᴷy/dtᴷ‖² / d`, with K = 2 or 3 in their
    experiments.

    **Raises:** `ValueError` for `order` not an integer >= 1.
    """

    order: int = eqx.field(static=True, default=2)

    def __check_init__(self):
        check.integer("order", self.order)

    @property
    def name(self) -> str:
        return f"taylor{self.order}"

    @property
    def extra_evaluations(self) -> int:
        return self.order - 1

    def rate(self, field, t, y, args, f, noise):
        del noise
        if self.order == 1:
            return per_example(f**2)
        highest = time_derivatives(field, t, y, args, self.order, f=f)[-1]
        return per_example(highest**2)


class ErrorEstimate(AbstractPenalty):
    """`Σ_j |h_j| E_j`: the solver's local error estimates, weighted by the step sizes,
    summed over the accepted steps of the solve (Pal, Ma, Shah & Rackauckas, *Opening
    the blackbox*, ICML 2021).

    `E_j` is the root mean square, over the example's state, of the solver's error
    estimate (diffrax's `y_error`) scaled as the step-size controller scales it,
    `atol + rtol · max(|y_j|, |y_{j+1}|)`, for an adaptive solve; unscaled for fixed
    steps. A solver without an error estimate gets an embedded lower-order one: Euler
    is paired with Heun's method (`E` estimates Euler's own local error; Heun's stage is
    Euler's next step, so the pair costs one evaluation per solve); classic RK4 and the
    3/8 rule with Euler's step (their first stage: no extra evaluation).

    Pal et al.'s code averages the terms over the steps instead of summing them. It
    needs backpropagation through the solver (the continuous adjoint differentiates the
    ODE, not the solver's estimates).
    """

    @property
    def name(self) -> str:
        return "error"


class RandomEndTime(AbstractRegulariser):
    """STEER (Ghosh, Behl, Dupont, Torr & Namboodiri, *STEER: Simple temporal
    regularization for neural ODEs*, NeurIPS 2020): the end time of each training solve
    is drawn uniformly from `[t1 − spread, t1 + spread]`, one draw per solve (the batch
    shares it). The solve keeps its step count (a fixed step size scales with the end
    time); evaluation and the solver swap stay at `t1`.

    **Raises:** `ValueError` for `spread` not a finite number > 0; when used, for
    `spread >= |t1 - t0|` (the end time must stay beyond `t0`).
    """

    spread: float = eqx.field(static=True)

    def __check_init__(self):
        check.positive("spread", self.spread)

    @property
    def name(self) -> str:
        return "steer"

    @property
    def needs_key(self) -> bool:
        return True

    def check(self, t0: float, t1: float) -> None:
        if not self.spread < abs(t1 - t0):
            raise ValueError(
                f"RandomEndTime: spread must be < |t1 - t0| = {abs(t1 - t0):g} (the end "
                f"time stays beyond t0), got {self.spread!r}"
            )

    def end_time(self, key: PRNGKeyArray, t1: float):
        """One draw of the end time."""
        return t1 + self.spread * jax.random.uniform(key, (), minval=-1.0, maxval=1.0)


REGULARISERS: dict[str, Callable[[float], tuple[AbstractRegulariser, float]]] = {
    "kinetic": lambda w: (KineticEnergy(), w),
    "jacobian": lambda w: (JacobianFrobenius(), w),
    "error": lambda w: (ErrorEstimate(), w),
    "steer": lambda spread: (RandomEndTime(spread), 0.0),
}
"""The named regularisers of `TrainConfig.regularise` (and `--regularise NAME:VALUE`),
with `taylorK` (K >= 1) for `TaylorDerivative(order=K)`: each value is the penalty's
weight, or for `steer` the spread of the end time."""


def named_regulariser(name: str, value: float) -> tuple[AbstractRegulariser, float]:
    """`(regulariser, weight)` of the named one (see `REGULARISERS`).

    **Raises:** `ValueError` for an unknown name, a weight that is not a finite number
    >= 0, an order K < 1 or a spread that is not a finite number > 0.
    """
    if name.startswith("taylor") and name not in REGULARISERS:
        digits = name[len("taylor") :]
        if not digits.lstrip("-").isdigit():
            raise ValueError(_unknown(name))
        order = int(digits)
        if order < 1:
            raise ValueError(f"TaylorDerivative needs an order K >= 1, got {name!r}")
        return TaylorDerivative(order=order), check.non_negative(f"weight of {name}", value)
    if name not in REGULARISERS:
        raise ValueError(_unknown(name))
    if name == "steer":
        return REGULARISERS[name](check.positive("spread of steer", value))
    return REGULARISERS[name](check.non_negative(f"weight of {name}", value))


def _unknown(name: str) -> str:
    return (
        f"unknown regulariser {name!r}; expected one of kinetic, jacobian, taylorK "
        "(K >= 1, e.g. taylor2), error, steer"
    )


def check_regularisers(regularisers, t0: float, t1: float) -> tuple:
    """The regularisers as a tuple, checked: `AbstractRegulariser`s, distinct names,
    each applicable on `[t0, t1]`.

    **Raises:** `ValueError` naming the problem.
    """
    regularisers = tuple(regularisers)
    for r in regularisers:
        if not isinstance(r, AbstractRegulariser):
            raise ValueError(
                "regularisers must be odeness regularisers (e.g. odeness.KineticEnergy()), "
                f"got {r!r}"
            )
        r.check(t0, t1)
    names = [r.name for r in regularisers]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"regulariser {twice[0]!r} given twice")
    if sum(isinstance(r, RandomEndTime) for r in regularisers) > 1:
        raise ValueError("give at most one RandomEndTime")
    return regularisers


def check_error_estimate(solver, adjoint) -> None:
    """**Raises:** `ValueError` unless `ErrorEstimate` applies to solves with `solver`
    and `adjoint`: backpropagation through the solver (None), and a solver with an error
    estimate or one that can be embedded (`odeness.solvers.with_error_estimate`)."""
    if adjoint is not None:
        raise ValueError(
            "ErrorEstimate needs backpropagation through the solver: the continuous "
            f"adjoint ({type(adjoint).__name__}) differentiates the ODE, not the "
            "solver's error estimates"
        )
    if with_error_estimate(solver) is None:
        raise ValueError(
            f"ErrorEstimate needs a solver with an error estimate: {solver_name(solver)!r} "
            "has none, and none can be embedded"
        )


def weight_ok(weight) -> bool:
    return check.is_number(weight) and math.isfinite(weight) and weight >= 0
