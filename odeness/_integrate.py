"""`Integrator` (how to solve) and `solve` (solve it), on top of `diffrax.diffeqsolve`."""

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from ._checks import integer
from ._regularisers import (
    AbstractIntegralPenalty,
    AbstractPenalty,
    AbstractRegulariser,
    ErrorEstimate,
    RandomEndTime,
    check_regularisers,
)
from ._solvers import is_adaptive, nfe, order, solver_name, with_error_estimate

VectorField = Callable[[Any, PyTree, Any], PyTree]
"""A vector field `f(t, y, args) -> dy/dt`, as `diffrax.ODETerm` takes it."""


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _num_steps(length: float, dt: float) -> int:
    # diffrax clips a step that ends within ~100 eps of t1 to t1: a float32 dt = 1/n
    # (slightly under or over 1/n) takes exactly n steps.
    return max(1, math.ceil(length / dt * (1 - 1e-5)))


class RESULTS(diffrax.RESULTS):  # pyright: ignore[reportGeneralTypeIssues]
    """diffrax's outcomes of a solve, and one of odeness's own."""

    bad_step_size = "the step size is not a finite number > 0"


def _positive_finite(name: str, value) -> None:
    if _is_concrete(value):
        v = float(value)
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _fixed_or_adaptive(steps, dt, rtol, atol) -> bool:
    """Whether `Integrator`'s arguments ask for fixed steps (else tolerances); one of
    the two, and steps= or dt=, not both."""
    fixed = steps is not None or dt is not None
    if fixed == (rtol is not None or atol is not None):
        raise ValueError(
            "give either fixed steps (steps= or dt=) or tolerances (rtol=/atol=), "
            f"got steps={steps!r}, dt={dt!r}, rtol={rtol!r}, atol={atol!r}"
        )
    if steps is not None and dt is not None:
        raise ValueError(f"give steps= or dt=, not both (steps={steps!r}, dt={dt!r})")
    return fixed


def _adjoint_and_checkpoints(adjoint, checkpoints):
    """`(checkpoints, adjoint)` as `Integrator` keeps them: a
    `RecursiveCheckpointAdjoint` is backpropagation with its checkpoints (adjoint None);
    checkpoints apply to backpropagation only."""
    if isinstance(adjoint, diffrax.RecursiveCheckpointAdjoint):
        if checkpoints is not None:
            raise ValueError(
                "give checkpoints= or adjoint=RecursiveCheckpointAdjoint(...), not both"
            )
        return adjoint.checkpoints, None
    if adjoint is not None:
        if not isinstance(adjoint, diffrax.AbstractAdjoint):
            raise ValueError(
                "adjoint must be a diffrax adjoint object such as "
                f"diffrax.BacksolveAdjoint(), got {adjoint!r}"
            )
        if checkpoints is not None:
            raise ValueError(
                "checkpoints= applies to backpropagation through the solver, not to "
                f"adjoint={type(adjoint).__name__}()"
            )
    return checkpoints, adjoint


def _fixed_grid(length: float, steps, dt, max_steps: int | None):
    """The step size and step budget of a fixed grid over an interval of `length`."""
    if steps is not None:
        dt = length / integer("steps", steps)
    _positive_finite("dt", dt)
    if not _is_concrete(dt):
        if max_steps is None:
            raise ValueError("a traced dt needs an explicit max_steps")
        return dt, max_steps
    needed = _num_steps(length, float(dt))
    if max_steps is None:
        # A step that does not divide the interval: diffrax adds up the times in
        # floating point, and over thousands of steps the sum can fall one step short
        # of t1; one spare step covers it.
        ratio = length / float(dt)
        return dt, needed + (abs(ratio - round(ratio)) > 1e-3)
    if needed > max_steps:
        raise ValueError(
            f"dt={float(dt)!r} needs {needed} steps, more than max_steps={max_steps}"
        )
    return dt, max_steps


def _tolerances(solver: diffrax.AbstractSolver, rtol, atol):
    """`(rtol, atol)` of an adaptive solve, one standing for both where only one is
    given; the solver must have an error estimate."""
    if not is_adaptive(solver):
        raise ValueError(
            f"solver {solver_name(solver)!r} has no error estimate and cannot run "
            "adaptively (rtol/atol); give steps= or dt=, or use an adaptive "
            "solver such as dopri5, bosh3, fehlberg2, midpoint or heun"
        )
    rtol = atol if rtol is None else rtol
    atol = rtol if atol is None else atol
    _positive_finite("rtol", rtol)
    _positive_finite("atol", atol)
    return rtol, atol


class Integrator(eqx.Module):
    """How to integrate a vector field from `t0` to `t1`: solver and step size or tolerance.

    Either fixed steps (`steps=n` or `dt=h`) or adaptive (`rtol`/`atol`, with a solver that
    has an error estimate). The step size and tolerances are traced arrays: integrators
    that differ only in them share one compiled program. The solver class, `max_steps`,
    `t0`, `t1` and the batch mode are static.

    **Arguments:**

    - `solver`: a `diffrax.AbstractSolver` (see `odeness.solver`).
    - `steps`: number of equal fixed steps on `[t0, t1]`.
    - `dt`: fixed step size, instead of `steps` (the last step is clipped at `t1`).
    - `rtol`, `atol`: tolerances of adaptive stepping; either alone sets both.
    - `t0`, `t1`: the time interval, `[0, 1]` by default.
    - `max_steps`: bound on the number of steps (static). Fixed steps default to exactly
        the steps needed; adaptive solves to 4096.
    - `checkpoints`: checkpoints for backpropagation through the solve
        (`diffrax.RecursiveCheckpointAdjoint`); fixed steps default to one per step (no
        recomputation beyond re-running each step), adaptive to diffrax's `log(max_steps)`.
    - `per_sample`: integrate each row of the batch as its own ODE (own step sizes when
        adaptive) instead of the whole batch as one state (the paper's choice, default).
    - `adjoint`: how gradients go through the solve. None (default): backpropagation
        through the solver's operations (discretise-then-optimise, diffrax's
        `RecursiveCheckpointAdjoint` with `checkpoints`); `diffrax.BacksolveAdjoint()`:
        the continuous adjoint (optimise-then-discretise), which solves the adjoint ODE
        backwards in time with the same solver and steps and stores no trajectory.
    - `throw`: raise when the solve fails (e.g. `max_steps` reached), as diffrax does. With
        `throw=False` failure is reported in the `success` statistic instead (a traced
        step size that is not a finite number > 0 too), and the compiled program holds
        no host callback, so that JAX's persistent compilation cache can keep it.
    - `regularisers`: regularisers to apply along the solve (`odeness.KineticEnergy()`,
        ...; see `regularised`); `key`: the random key of those that draw random
        numbers (Hutchinson's probes, STEER's end time).

    **Raises:** `ValueError` for `steps < 1`, a non-positive or non-finite step size or
    tolerance, both or neither of fixed and adaptive settings, a solver without an error
    estimate asked to run adaptively, `t1 <= t0`, more steps than `max_steps`, an
    `adjoint` that is not a diffrax adjoint, `checkpoints` with another adjoint than
    backpropagation, or regularisers that cannot apply (see `regularised`).
    """

    solver: diffrax.AbstractSolver
    dt: Float[Array, ""] | None
    rtol: Float[Array, ""] | None
    atol: Float[Array, ""] | None
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    checkpoints: int | None = eqx.field(static=True)
    per_sample: bool = eqx.field(static=True)
    throw: bool = eqx.field(static=True)
    adjoint: diffrax.AbstractAdjoint | None
    regularisers: tuple[AbstractRegulariser, ...] = eqx.field(static=True)
    key: PRNGKeyArray | None
    _dt_traced: bool = eqx.field(static=True, init=False)  # checked in the program

    def __init__(
        self,
        solver: diffrax.AbstractSolver,
        *,
        steps: int | np.integer | None = None,
        dt: float | Float[Array, ""] | None = None,
        rtol: float | Float[Array, ""] | None = None,
        atol: float | Float[Array, ""] | None = None,
        t0: float = 0.0,
        t1: float = 1.0,
        max_steps: int | None = None,
        checkpoints: int | None = None,
        per_sample: bool = False,
        throw: bool = True,
        adjoint: diffrax.AbstractAdjoint | None = None,
        regularisers: tuple[AbstractRegulariser, ...] = (),
        key: PRNGKeyArray | None = None,
    ):
        if not isinstance(solver, diffrax.AbstractSolver):
            raise ValueError(
                "solver must be a diffrax solver object (see odeness.solver), "
                f"got {solver!r}"
            )
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
            raise ValueError(f"need finite t0 < t1, got t0={t0!r}, t1={t1!r}")
        fixed = _fixed_or_adaptive(steps, dt, rtol, atol)
        checkpoints, adjoint = _adjoint_and_checkpoints(adjoint, checkpoints)
        if max_steps is not None:
            max_steps = integer("max_steps", max_steps)
        if fixed:
            dt, max_steps = _fixed_grid(t1 - t0, steps, dt, max_steps)
            self._dt_traced = not _is_concrete(dt)
            self.dt = jnp.asarray(dt, dtype=float)
            self.rtol = self.atol = None
            if adjoint is not None:
                self.checkpoints = None
            else:
                self.checkpoints = max_steps if checkpoints is None else checkpoints
        else:
            rtol, atol = _tolerances(solver, rtol, atol)
            self.dt = None
            self._dt_traced = False
            self.rtol = jnp.asarray(rtol, dtype=float)
            self.atol = jnp.asarray(atol, dtype=float)
            max_steps = 4096 if max_steps is None else max_steps
            self.checkpoints = checkpoints
        self.solver = solver
        self.t0 = float(t0)
        self.t1 = float(t1)
        self.max_steps = max_steps
        self.per_sample = per_sample
        self.throw = throw
        self.adjoint = adjoint
        self.regularisers = check_regularisers(regularisers, self.t0, self.t1)
        self.key = key
        _check_regularised(self)

    def regularised(self, regularisers, *, key: PRNGKeyArray | None = None) -> "Integrator":
        """This integrator with `regularisers` applied along its solves: `solve`
        accumulates each penalty along the same solve as the model, in an augmented
        state integrated by this solver, and returns the per-example values in
        `SolveStats.penalties` (see `odeness.KineticEnergy` and the others).

        With adaptive steps the penalties stay out of the step-size controller's error
        norm, so the steps (and the NFE) are those of the solve without them. Batched
        and per-sample solves, fixed and adaptive steps, backpropagation and the
        continuous adjoint all work, but `ErrorEstimate` needs backpropagation.

        **Arguments:** `regularisers`: a sequence of `odeness.AbstractRegulariser`
        (distinct names); `key`: a PRNG key, required by those that draw random numbers
        (`JacobianFrobenius`, `RandomEndTime`; one draw per solve).

        **Raises:** `ValueError` for two regularisers of one name, a missing key, a
        `RandomEndTime` whose spread reaches `t0`, or an `ErrorEstimate` with the
        continuous adjoint or a solver that has no error estimate and none to embed.
        """
        return dataclasses.replace(self, regularisers=tuple(regularisers), key=key)

    @property
    def adaptive(self) -> bool:
        return self.dt is None

    @property
    def order(self) -> int:
        return order(self.solver)

    @property
    def steps(self) -> int:
        """Number of fixed steps (concrete integrators only)."""
        if self.dt is None:
            raise ValueError("an adaptive integrator has no fixed number of steps")
        return _num_steps(self.t1 - self.t0, float(self.dt))

    @property
    def step_size(self) -> float:
        """The fixed step as it was asked for (concrete integrators only): `(t1 - t0) /
        steps` in Python's double precision when the stored step is that quotient
        rounded (0.1 for `steps=100` on `[0, 10]`, not its float32 0.10000000149),
        else the shortest decimal that rounds to the stored step (`dt=0.3` gives 0.3).
        """
        if self.dt is None:
            raise ValueError("an adaptive integrator has no fixed step size")
        stored = np.asarray(self.dt)
        even = (self.t1 - self.t0) / self.steps
        if np.asarray(even, dtype=stored.dtype) == stored:
            return even
        return _as_written(stored)

    @property
    def setting(self) -> str:
        """How tables name it: `euler at 8 steps`, `dopri5 at tol 1e-6` (rtol)."""
        d = self.describe()
        if "steps" in d:
            return f"{d['solver']} at {d['steps']} steps"
        tol = np.format_float_scientific(d["rtol"], trim="-", exp_digits=1)
        return f"{d['solver']} at tol {tol}"

    def describe(self) -> dict:
        """A JSON-ready description: solver name and steps / step size (as asked for,
        `step_size`) or tolerances (likewise the shortest decimal of the stored value)."""
        out: dict[str, Any] = {"solver": solver_name(self.solver)}
        if self.dt is None:
            assert self.rtol is not None and self.atol is not None
            out["rtol"] = _as_written(self.rtol)
            out["atol"] = _as_written(self.atol)
        else:
            out["steps"] = self.steps
            out["dt"] = self.step_size
        if self.adjoint is not None:
            out["adjoint"] = type(self.adjoint).__name__
        return out


def _as_written(value) -> float:
    """The shortest decimal that rounds to `value` in its own precision (1e-3, not
    float32's 0.0010000000474974513)."""
    scalar: Any = np.asarray(value)[()]  # a NumPy scalar of the stored precision
    return float(np.format_float_positional(scalar, unique=True, trim="-"))


def _check_regularised(integ: "Integrator") -> None:
    regularisers = integ.regularisers
    if any(r.needs_key for r in regularisers) and integ.key is None:
        needs = ", ".join(type(r).__name__ for r in regularisers if r.needs_key)
        raise ValueError(
            f"{needs} draws random numbers: give a key (regularised(..., key=))"
        )
    if any(isinstance(r, ErrorEstimate) for r in regularisers):
        if integ.adjoint is not None:
            raise ValueError(
                "ErrorEstimate needs backpropagation through the solver: the continuous "
                f"adjoint ({type(integ.adjoint).__name__}) differentiates the ODE, not the "
                "solver's error estimates"
            )
        if with_error_estimate(integ.solver) is None:
            raise ValueError(
                f"ErrorEstimate needs a solver with an error estimate: "
                f"{solver_name(integ.solver)!r} has none, and none can be embedded"
            )


class SolveStats(eqx.Module):
    """What a solve cost, and what its regularisers accumulated. Arrays, so that it can
    leave `jit` and `vmap`."""

    num_steps: Int[Array, "*batch"]
    """Attempted steps (accepted + rejected)."""
    num_accepted_steps: Int[Array, "*batch"]
    nfe: Int[Array, "*batch"]
    """Vector-field evaluations of the forward solve (`odeness.solvers.nfe`)."""
    result: RESULTS
    """The outcome of the solve, diffrax's `RESULTS` and odeness's `bad_step_size` (per
    row with `per_sample`); a failure is only returned, not raised, with
    `throw=False`."""
    penalties: dict[str, Float[Array, " batch"]] = eqx.field(default_factory=dict)
    """Each penalty of the integrator's regularisers, per example (`regularised`)."""
    penalty_nfe: Int[Array, "*batch"] | int = 0
    """Evaluations the penalties cost beyond `nfe`: Jacobian-vector products, Taylor-mode
    passes and embedded error estimates' extra stages, each counted as one."""

    @property
    def success(self) -> Bool[Array, "*batch"]:
        """False where the solve failed (e.g. hit `max_steps`)."""
        return self.result == RESULTS.successful

    def message(self) -> str:
        """diffrax's message for the first failed row, or "" if every row succeeded
        (outside `jit` only)."""
        failed = ~np.asarray(self.success).reshape(-1)
        if not failed.any():
            return ""
        first = int(np.flatnonzero(failed)[0])
        one = jax.tree.map(
            lambda v: np.asarray(np.asarray(v).reshape(-1)[first]), self.result
        )
        return str(RESULTS[one])


class _FixedStep(diffrax.AbstractStepSizeController):
    """`diffrax.ConstantStepSize` with its step size as a field instead of `dt0`.

    Given a traced `dt0`, `diffrax.diffeqsolve` checks its sign with a host callback,
    and JAX never writes a program with host callbacks to its persistent compilation
    cache. `Integrator` has checked a concrete `dt` already; this controller keeps the
    check out of the program (the steps are the same as `ConstantStepSize`'s). The step
    is in diffrax's normalised time, forwards, so `wrap` keeps it: a backward solve
    (`BacksolveAdjoint`) takes the same steps.
    """

    dt: Float[Array, ""]
    constant: diffrax.ConstantStepSize = diffrax.ConstantStepSize()

    def wrap(self, direction):
        return self

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        del dt0
        dt = jnp.asarray(self.dt, dtype=jnp.result_type(t0))  # diffrax's time dtype
        return self.constant.init(terms, t0, t1, y0, dt, args, func, error_order)

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, state):
        return self.constant.adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, state
        )


def _backward_controlled(adjoint, integ: Integrator):
    """`adjoint` for a forward solve whose controller sees part of the state: a
    `BacksolveAdjoint` without a controller of its own gets one on all of the backward
    state (the adjoint's), at `integ`'s tolerances; its other options stay."""
    if not isinstance(adjoint, diffrax.BacksolveAdjoint):
        return adjoint
    if "stepsize_controller" in adjoint.kwargs:
        return adjoint
    assert integ.rtol is not None and integ.atol is not None  # an adaptive solve
    backward = diffrax.PIDController(rtol=integ.rtol, atol=integ.atol)
    return diffrax.BacksolveAdjoint(**{**adjoint.kwargs, "stepsize_controller": backward})


def _diffeqsolve(
    field: VectorField,
    y0,
    integ: Integrator,
    args,
    saveat,
    *,
    solver: diffrax.AbstractSolver | None = None,
    norm: Callable | None = None,
):
    """`diffrax.diffeqsolve` as `integ` says; `solver` replaces its solver, `norm` the
    adaptive controller's error norm (the augmented solves of the regularisers)."""
    bad_dt = None
    adjoint = integ.adjoint
    if integ.rtol is not None and integ.atol is not None:
        controller = (
            diffrax.PIDController(rtol=integ.rtol, atol=integ.atol)
            if norm is None
            else diffrax.PIDController(rtol=integ.rtol, atol=integ.atol, norm=norm)
        )
        if norm is not None:
            adjoint = _backward_controlled(adjoint, integ)
    else:
        assert integ.dt is not None
        dt = integ.dt
        if integ._dt_traced:  # unknown at construction: checked in the program
            bad_dt = ~(jnp.isfinite(dt) & (dt > 0))
            if integ.throw:
                dt = eqx.error_if(dt, bad_dt, "dt must be a finite number > 0")
            else:  # no host callback: the solve reports a failure instead
                dt = jnp.where(bad_dt, 1.0, dt)
        controller = _FixedStep(dt)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        integ.solver if solver is None else solver,
        integ.t0,
        integ.t1,
        None,
        y0,
        args,
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=integ.max_steps,
        adjoint=(
            diffrax.RecursiveCheckpointAdjoint(checkpoints=integ.checkpoints)
            if adjoint is None
            else adjoint
        ),
        throw=integ.throw,
    )
    result = RESULTS.promote(sol.result)
    if bad_dt is not None and not integ.throw:
        result = RESULTS.where(bad_dt, RESULTS.bad_step_size, result)
    num_steps = sol.stats["num_steps"]
    stats = SolveStats(
        num_steps=num_steps,
        num_accepted_steps=sol.stats["num_accepted_steps"],
        nfe=nfe(integ.solver, num_steps),
        result=result,
    )
    return sol, stats


def _solve_joint(field: VectorField, y0, integ: Integrator, args, ts):
    if integ.regularisers:
        return _solve_regularised(field, y0, integ, args, ts)
    saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=ts)
    sol, stats = _diffeqsolve(field, y0, integ, args, saveat)
    if ts is None:
        return jax.tree.map(lambda y: y[0], sol.ys), stats
    return sol.ys, stats


class _Stretched(eqx.Module):
    """`dz/ds = α f(t0 + α (s − t0), z)`: the flow of `f` from `t0` over `α` times the
    interval, solved on the interval itself (STEER's random end time)."""

    field: VectorField
    t0: float = eqx.field(static=True)
    alpha: Float[Array, ""]

    def __call__(self, s, z, args):
        return self.alpha * self.field(self.t0 + self.alpha * (s - self.t0), z, args)


class _ErrorAccumulating(diffrax.AbstractWrappedSolver):
    """A solver on the augmented state `(y, penalties)` that adds, after each step, the
    step's `|h| E` to `penalties[name]` (`ErrorEstimate`): `E` the root mean square of
    the error estimate of `y`, per example, scaled as the step-size controller scales
    it when there are tolerances."""

    solver: diffrax.AbstractSolver
    name: str = eqx.field(static=True)
    rtol: Float[Array, ""] | None
    atol: Float[Array, ""] | None

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):  # pyright: ignore[reportIncompatibleVariableOverride]
        return self.solver.interpolation_cls

    @property
    def term_compatible_contr_kwargs(self):
        return self.solver.term_compatible_contr_kwargs

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return self.solver.strong_order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, args)

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y1, y_error, dense, solver_state, result = self.solver.step(
            terms, t0, t1, y0, args, solver_state, made_jump
        )
        assert y_error is not None  # an embedded solver (`with_error_estimate`)
        (y_prev, _), (y_next, penalties), error = y0, y1, y_error[0]
        if self.rtol is not None and self.atol is not None:
            error = error / (self.atol + self.rtol * jnp.maximum(abs(y_prev), abs(y_next)))
        square = jnp.mean(jnp.reshape(error, (error.shape[0], -1)) ** 2, axis=1)
        # 0 for a rejected step (an infinite error) and, with a zero gradient, for an
        # exact step (the square root has none at 0).
        positive = jnp.isfinite(square) & (square > 0)
        estimate = jnp.where(positive, jnp.sqrt(jnp.where(positive, square, 1.0)), 0.0)
        penalties = {**penalties, self.name: penalties[self.name] + abs(t1 - t0) * estimate}
        y_error = (y_error[0], jax.tree.map(jnp.zeros_like, y_error[1]))
        return (y_next, penalties), y_error, dense, solver_state, result


_DEFAULT_EVALUATE = AbstractIntegralPenalty.evaluate


class _Augmented(eqx.Module):
    """The vector field of `(y, penalties)`: `(f(t, y), {name: rate(t, y)})`, the rates
    from the same evaluation of `f`; the error penalties' rates are 0 (they accumulate
    after each step). A module, so that the continuous adjoint sees the field's
    parameters."""

    field: VectorField
    integrals: tuple[AbstractIntegralPenalty, ...] = eqx.field(static=True)
    errors: tuple[str, ...] = eqx.field(static=True)
    noise: PyTree

    def __call__(self, t, state, args):
        y, _ = state
        # A penalty with its own `evaluate` (one pass for the field and its rate) gives
        # the field's value; the others reuse it.
        own = [p for p in self.integrals if type(p).evaluate is not _DEFAULT_EVALUATE]
        if own:
            dy, rate = own[0].evaluate(self.field, t, y, args, self.noise[own[0].name])
            rates = {own[0].name: rate}
        else:
            dy, rates = self.field(t, y, args), {}
        for p in self.integrals:
            if p.name not in rates:
                rates[p.name] = p.rate(self.field, t, y, args, dy, self.noise[p.name])
        zeros = jnp.zeros(y.shape[0], dy.dtype)
        return dy, {**rates, **{name: zeros for name in self.errors}}


def _rms_of_state(error):
    """The controller's norm on an augmented error `(y, penalties)`: `y`'s alone."""
    return optx.rms_norm(error[0])


def _solve_regularised(field: VectorField, y0, integ: Integrator, args, ts):
    """`_solve_joint` with the integrator's regularisers: the penalties accumulate in an
    augmented state `(y, {name: per-example value})` of the same solve."""
    if isinstance(y0, np.ndarray):
        y0 = jnp.asarray(y0)
    if not (isinstance(y0, jax.Array) and y0.ndim >= 1):
        raise ValueError(
            "regularisers need the state as one array whose first axis is the batch, "
            f"got {jax.tree.structure(y0)}"
        )
    regularisers = integ.regularisers
    keys = (
        [None] * len(regularisers)
        if integ.key is None
        else list(jax.random.split(integ.key, len(regularisers)))
    )
    # A regulariser that draws random numbers has its key (`_check_regularised`).
    key_of: dict[str, Any] = {r.name: k for r, k in zip(regularisers, keys, strict=True)}
    for r in regularisers:
        if isinstance(r, RandomEndTime):
            alpha = (r.end_time(key_of[r.name], integ.t1) - integ.t0) / (
                integ.t1 - integ.t0
            )
            field = _Stretched(field, integ.t0, alpha)
    integrals = [r for r in regularisers if isinstance(r, AbstractIntegralPenalty)]
    errors = [r for r in regularisers if isinstance(r, ErrorEstimate)]
    plain = dataclasses.replace(integ, regularisers=(), key=None)
    if not integrals and not errors:  # a random end time only
        return _solve_joint(field, y0, plain, args, ts)
    noise = {p.name: p.noise(key_of[p.name], y0) for p in integrals}
    batch = y0.shape[0]
    augmented = _Augmented(field, tuple(integrals), tuple(e.name for e in errors), noise)

    solver = integ.solver
    if errors:
        embedded = with_error_estimate(solver)
        assert embedded is not None  # checked by the integrator
        solver = _ErrorAccumulating(embedded, errors[0].name, integ.rtol, integ.atol)
    saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=ts, t1=True)
    acc0 = {r.name: jnp.zeros(batch, y0.dtype) for r in (*integrals, *errors)}
    sol, stats = _diffeqsolve(
        augmented, (y0, acc0), plain, args, saveat, solver=solver, norm=_rms_of_state
    )
    ys, totals = sol.ys  # pyright: ignore[reportGeneralTypeIssues]
    y = ys[0] if ts is None else ys[:-1]
    counted = with_error_estimate(integ.solver) if errors else integ.solver
    assert counted is not None  # checked by the integrator
    evaluations = nfe(counted, stats.num_steps)
    extra = (evaluations - stats.nfe) + sum(
        p.extra_evaluations for p in integrals
    ) * evaluations
    stats = SolveStats(
        num_steps=stats.num_steps,
        num_accepted_steps=stats.num_accepted_steps,
        nfe=stats.nfe,
        result=stats.result,
        penalties={name: total[-1] for name, total in totals.items()},
        penalty_nfe=extra,
    )
    return y, stats


def save_times(ts) -> np.ndarray:
    """`ts` as a float array, checked: non-empty, 1-D, finite, strictly increasing.

    **Raises:** `ValueError` naming the first bad value.
    """
    values = np.asarray(ts, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"save times ts must be a non-empty 1-D array, got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"save times ts must be finite, got {values.tolist()}")
    steps = np.diff(values)
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(
            f"save times ts must be strictly increasing, got {float(values[i]):g} then "
            f"{float(values[i + 1]):g}"
        )
    return values


def check_save_times(ts, integ: Integrator) -> None:
    """**Raises:** `ValueError` unless `ts` passes `save_times` and lies inside
    `[integ.t0, integ.t1]` (concrete values only)."""
    if isinstance(ts, jax.core.Tracer):
        return
    values = save_times(ts)
    outside = values[(values < integ.t0) | (values > integ.t1)]
    if outside.size:
        raise ValueError(
            f"save time {float(outside[0]):g} lies outside [t0, t1] = "
            f"[{integ.t0:g}, {integ.t1:g}]"
        )


def solve(
    field: VectorField,
    y0: PyTree[Float[Array, "batch ..."]],
    integ: Integrator,
    args=None,
    *,
    ts: Float[Array, " T"] | np.ndarray | None = None,
) -> tuple[PyTree[Float[Array, "..."]], SolveStats]:
    """Integrate `dy/dt = field(t, y, args)` from `integ.t0` to `integ.t1`.

    **Arguments:**

    - `field`: the vector field, called as `field(t, y, args)`.
    - `y0`: the initial state. With `integ.per_sample`, its leading axis is a batch whose
        rows are solved independently (the field then sees a batch of one).
    - `integ`: the `Integrator`.
    - `ts`: save times, strictly increasing inside `[t0, t1]` (diffrax's
        `SaveAt(ts=...)`). The steps do not change: a save time between two steps is
        the solver's dense interpolation between them (for a fixed step `h`, a save time
        on the grid `t0 + k h` is the iterate itself). The solve still runs to `t1`.

    **Returns:** `(y, stats)`: the state at `t1` (or at each save time, stacked along a
    new leading axis `(T, batch, ...)`) and a `SolveStats` (per row with `per_sample`).

    **Raises:** `ValueError` for save times that are not increasing or lie outside
    `[t0, t1]`.
    """
    if ts is not None:
        check_save_times(ts, integ)
        ts = jnp.asarray(ts, dtype=float)
    if integ.per_sample:

        def one(y):
            y1, stats = _solve_joint(
                field, jax.tree.map(lambda a: a[None], y), integ, args, ts
            )
            row = 0 if ts is None else 1  # the batch of one: axis 0, or 1 after time
            return jax.tree.map(lambda a: jnp.take(a, 0, axis=row), y1), stats

        y, stats = jax.vmap(one)(y0)
        if ts is not None:  # (batch, T, ...) → (T, batch, ...)
            y = jax.tree.map(lambda a: jnp.moveaxis(a, 0, 1), y)
        if stats.penalties:  # each row's penalty of its batch of one
            penalties = {k: v[:, 0] for k, v in stats.penalties.items()}
            stats = eqx.tree_at(lambda s: s.penalties, stats, penalties)
        return y, stats
    return _solve_joint(field, y0, integ, args, ts)


def penalties(
    model: Callable,
    integ: Integrator,
    x,
    regularisers,
    *,
    key: PRNGKeyArray | None = None,
) -> dict[str, Float[Array, ""]]:
    """The batch means of the penalties of `regularisers`, accumulated along one solve of
    `model(x, integ)` (any model that solves with `odeness.solve` and returns its
    statistics, e.g. `odeness.NeuralODE`): `{name: value}`, e.g. `{"kinetic": ...}`.

    In a training loop of one's own, solve once and read both, the outputs and the
    penalties: `outputs, stats = model(x, integ.regularised(regularisers, key=key))`,
    then `stats.penalties` (per example).

    **Raises:** as `Integrator.regularised`; `ValueError` if the model's statistics lack a
    penalty (a model that does not return `odeness.solve`'s statistics).
    """
    regularisers = tuple(regularisers)
    _, stats = model(x, integ.regularised(regularisers, key=key))
    wanted = [r.name for r in regularisers if isinstance(r, AbstractPenalty)]
    missing = [name for name in wanted if name not in stats.penalties]
    if missing:
        raise ValueError(
            f"the model returned no penalty {missing[0]!r}: regularisers need a model that "
            "solves with odeness.solve and returns its SolveStats"
        )
    return {name: jnp.mean(stats.penalties[name]) for name in wanted}


def trajectory(
    field: VectorField, y0: Float[Array, "batch ..."], integ: Integrator, args=None
) -> tuple[Float[Array, " points"], Float[Array, "points batch ..."], SolveStats]:
    """The numerical iterates of a solve: the state at `t0` and after every accepted step.

    The whole batch is solved as one state (as `solve` does by default). Arrays have
    `max_steps + 1` points; those past the last step are `inf` (diffrax's padding), so
    `stats.num_accepted_steps + 1` points are valid.
    """
    saveat = diffrax.SaveAt(t0=True, steps=True)
    plain = dataclasses.replace(integ, regularisers=(), key=None)
    sol, stats = _diffeqsolve(field, y0, plain, args, saveat)
    return sol.ts, sol.ys, stats  # pyright: ignore[reportReturnType]
