"""`Integrator` (how to solve) and `solve` (solve it), on top of `diffrax.diffeqsolve`."""

import math
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PyTree

from ._checks import integer
from ._solvers import is_adaptive, nfe, order, solver_name

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

    **Raises:** `ValueError` for `steps < 1`, a non-positive or non-finite step size or
    tolerance, both or neither of fixed and adaptive settings, a solver without an error
    estimate asked to run adaptively, `t1 <= t0`, more steps than `max_steps`, an
    `adjoint` that is not a diffrax adjoint, or `checkpoints` with another adjoint than
    backpropagation.
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
    ):
        if not isinstance(solver, diffrax.AbstractSolver):
            raise ValueError(
                "solver must be a diffrax solver object (see odeness.solver), "
                f"got {solver!r}"
            )
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
            raise ValueError(f"need finite t0 < t1, got t0={t0!r}, t1={t1!r}")
        fixed = steps is not None or dt is not None
        adaptive = rtol is not None or atol is not None
        if fixed == adaptive:
            raise ValueError(
                "give either fixed steps (steps= or dt=) or tolerances (rtol=/atol=), "
                f"got steps={steps!r}, dt={dt!r}, rtol={rtol!r}, atol={atol!r}"
            )
        if steps is not None and dt is not None:
            raise ValueError(f"give steps= or dt=, not both (steps={steps!r}, dt={dt!r})")
        if isinstance(adjoint, diffrax.RecursiveCheckpointAdjoint):
            if checkpoints is not None:
                raise ValueError(
                    "give checkpoints= or adjoint=RecursiveCheckpointAdjoint(...), not both"
                )
            checkpoints, adjoint = adjoint.checkpoints, None
        elif adjoint is not None:
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
        if max_steps is not None:
            max_steps = integer("max_steps", max_steps)
        length = t1 - t0
        if fixed:
            if steps is not None:
                dt = length / integer("steps", steps)
            assert dt is not None
            _positive_finite("dt", dt)
            if _is_concrete(dt):
                needed = _num_steps(length, float(dt))
                if max_steps is None:
                    # A step that does not divide the interval: diffrax adds up the
                    # times in floating point, and over thousands of steps the sum can
                    # fall one step short of t1; one spare step covers it.
                    ratio = length / float(dt)
                    max_steps = needed + (abs(ratio - round(ratio)) > 1e-3)
                elif needed > max_steps:
                    raise ValueError(
                        f"dt={float(dt)!r} needs {needed} steps, more than "
                        f"max_steps={max_steps}"
                    )
            elif max_steps is None:
                raise ValueError("a traced dt needs an explicit max_steps")
            self._dt_traced = not _is_concrete(dt)
            self.dt = jnp.asarray(dt, dtype=float)
            self.rtol = self.atol = None
            if adjoint is not None:
                self.checkpoints = None
            else:
                self.checkpoints = max_steps if checkpoints is None else checkpoints
        else:
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

    def describe(self) -> dict:
        """A JSON-ready description: solver name and steps / step size or tolerances."""
        out: dict[str, Any] = {"solver": solver_name(self.solver)}
        if self.dt is None:
            assert self.rtol is not None and self.atol is not None
            out["rtol"] = float(self.rtol)
            out["atol"] = float(self.atol)
        else:
            out["steps"] = self.steps
            out["dt"] = float(self.dt)
        if self.adjoint is not None:
            out["adjoint"] = type(self.adjoint).__name__
        return out


class SolveStats(eqx.Module):
    """What a solve cost. Arrays, so that it can leave `jit` and `vmap`."""

    num_steps: Int[Array, "*batch"]
    """Attempted steps (accepted + rejected)."""
    num_accepted_steps: Int[Array, "*batch"]
    nfe: Int[Array, "*batch"]
    """Vector-field evaluations of the forward solve (`odeness.solvers.nfe`)."""
    result: RESULTS
    """The outcome of the solve, diffrax's `RESULTS` and odeness's `bad_step_size` (per
    row with `per_sample`); a failure is only returned, not raised, with
    `throw=False`."""

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


def _diffeqsolve(field: VectorField, y0, integ: Integrator, args, saveat):
    bad_dt = None
    if integ.rtol is not None and integ.atol is not None:
        controller = diffrax.PIDController(rtol=integ.rtol, atol=integ.atol)
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
        integ.solver,
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
            if integ.adjoint is None
            else integ.adjoint
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
    saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=ts)
    sol, stats = _diffeqsolve(field, y0, integ, args, saveat)
    if ts is None:
        return jax.tree.map(lambda y: y[0], sol.ys), stats
    return sol.ys, stats


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
        return y, stats
    return _solve_joint(field, y0, integ, args, ts)


def trajectory(
    field: VectorField, y0: Float[Array, "batch ..."], integ: Integrator, args=None
) -> tuple[Float[Array, " points"], Float[Array, "points batch ..."], SolveStats]:
    """The numerical iterates of a solve: the state at `t0` and after every accepted step.

    The whole batch is solved as one state (as `solve` does by default). Arrays have
    `max_steps + 1` points; those past the last step are `inf` (diffrax's padding), so
    `stats.num_accepted_steps + 1` points are valid.
    """
    saveat = diffrax.SaveAt(t0=True, steps=True)
    sol, stats = _diffeqsolve(field, y0, integ, args, saveat)
    return sol.ts, sol.ys, stats  # pyright: ignore[reportReturnType]
