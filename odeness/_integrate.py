"""`Integrator` (how to solve) and `solve` (solve it), on top of `diffrax.diffeqsolve`."""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from ._checks import integer
from ._control import AbstractControl, AbstractGrid, control_of
from ._regularisers import (
    AbstractIntegralPenalty,
    AbstractPenalty,
    AbstractRegulariser,
    ErrorEstimate,
    RandomEndTime,
    check_error_estimate,
    check_regularisers,
)
from ._solvers import nfe, order, solver_name, with_error_estimate

VectorField = Callable[[Any, PyTree, Any], PyTree]
"""A vector field `f(t, y, args) -> dy/dt`, as `diffrax.ODETerm` takes it."""

EVALUATION_MAX_STEPS = 4096
"""The step budget of the solves that evaluate a trained model at other step counts (the
solver swap, the convergence tests, the deployment candidates): the larger of 4096 and
the next power of two above the most steps (`evaluation_budget`). Forward solves run only
the steps they need, so one budget serves every step count, and each solver's solves
share one compiled program (the step size is traced)."""


def evaluation_budget(most: int) -> int:
    """The `max_steps` of evaluation solves whose most steps are `most`
    (`EVALUATION_MAX_STEPS`)."""
    return max(EVALUATION_MAX_STEPS, 1 << max(0, most - 1).bit_length())


class RESULTS(diffrax.RESULTS):  # pyright: ignore[reportGeneralTypeIssues]
    """diffrax's outcomes of a solve, and one of odeness's own."""

    bad_step_size = "the step size is not a finite number > 0"


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


class Setting(NamedTuple):
    """An integrator as tables and files name it (`Integrator.setting`): `str()` gives
    its label, `to_json()` its JSON form."""

    solver: str
    """The solver's table name (`odeness.solver_name`)."""
    control: AbstractControl
    """The control with its numbers as written: `Steps(8)`, `StepSize(0.3)`,
    `Tolerances(0.001, 0.001)` (a grid that divides the interval evenly is `Steps`)."""
    t0: float = 0.0
    t1: float = 1.0
    adjoint: str | None = None
    """The class name of the adjoint, None for backpropagation through the solver."""

    @property
    def length(self) -> float:
        """`|t1 - t0|`."""
        return abs(self.t1 - self.t0)

    @property
    def label(self) -> str:
        """`euler at 8 steps`, `dopri5 at tol 1e-6` (rtol)."""
        return f"{self.solver} at {self.control.label(self.length)}"

    def __str__(self) -> str:
        return self.label

    def to_json(self) -> dict[str, Any]:
        """`{"solver": ..., "steps": ..., "dt": ...}` or `{..., "rtol": ..., "atol": ...}`,
        and `"adjoint"` where there is one."""
        out: dict[str, Any] = {"solver": self.solver, **self.control.to_json(self.length)}
        if self.adjoint is not None:
            out["adjoint"] = self.adjoint
        return out


class Integrator(eqx.Module):
    """How to integrate a vector field from `t0` to `t1`: a solver and its control.

    The control is a grid of steps (`odeness.Steps(n)`, `odeness.StepSize(h)`) or tolerances
    (`odeness.Tolerances(rtol, atol)`, with a solver that has an error estimate), given
    as `control` or by the shorthand `steps=n`, `dt=h` or `rtol=`/`atol=`. Its step size
    and tolerances are traced arrays: integrators that differ only in them share one
    compiled program. The solver class, `max_steps`, `t0`, `t1` and the batch mode are
    static. Variants keep every other option: `scaled`, `refined`, `replace`,
    `regularised`.

    **Arguments:**

    - `solver`: a `diffrax.AbstractSolver` (see `odeness.solver`).
    - `control`: an `odeness.AbstractControl`; or one of
    - `steps`: number of equal steps on `[t0, t1]` (`Steps(steps)`);
    - `dt`: a step size (`StepSize(dt)`: the last step is clipped at `t1`);
    - `rtol`, `atol`: tolerances of adaptive stepping; either alone sets both
        (`Tolerances(rtol, atol)`).
    - `t0`, `t1`: where the solve starts and ends, `0` and `1` by default; `t1 < t0`
        integrates backwards in time, as diffrax does (a continuous normalising flow
        maps data back to its base distribution so). Step sizes and tolerances stay
        positive: `Steps(n)` on `[1, 0]` takes steps of `-1/n`.
    - `max_steps`: bound on the number of steps (static). A grid defaults to exactly the
        steps needed; tolerances to 4096.
    - `checkpoints`: checkpoints for backpropagation through the solve
        (`diffrax.RecursiveCheckpointAdjoint`); a grid defaults to one per step (no
        recomputation beyond re-running each step), tolerances to diffrax's
        `log(max_steps)`.
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
    tolerance, a control and a shorthand together (or neither, or two shorthands), a
    solver without an error estimate asked to run adaptively, `t0 == t1`, more steps than
    `max_steps`, an `adjoint` that is not a diffrax adjoint, or `checkpoints` with
    another adjoint than backpropagation.
    """

    solver: diffrax.AbstractSolver
    control: AbstractControl
    """How the solve is controlled, as the program sees it: a `StepSize` (a `Steps(n)`
    is stored as the step size of the interval) or `Tolerances`, with traced arrays.
    `setting.control` is the same with its numbers as written."""
    t0: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    checkpoints: int | None = eqx.field(static=True)
    """As given: None is the default (see above)."""
    per_sample: bool = eqx.field(static=True)
    throw: bool = eqx.field(static=True)
    adjoint: diffrax.AbstractAdjoint | None

    def __init__(
        self,
        solver: diffrax.AbstractSolver,
        control: AbstractControl | None = None,
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
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 != t0):
            raise ValueError(f"need finite t0 ≠ t1, got t0={t0!r}, t1={t1!r}")
        control = control_of(control, steps, dt, rtol, atol)
        self.checkpoints, self.adjoint = _adjoint_and_checkpoints(adjoint, checkpoints)
        if max_steps is not None:
            max_steps = integer("max_steps", max_steps)
        self.solver = solver
        self.t0, self.t1 = float(t0), float(t1)
        self.control = control.resolved(self.length)
        self.max_steps = self.control.budget(self.length, max_steps)
        self.per_sample = per_sample
        self.throw = throw

    def __check_init__(self):
        self.control.check_solver(self.solver)

    @property
    def length(self) -> float:
        """The interval's length, `|t1 - t0|`: what a grid's steps divide."""
        return abs(self.t1 - self.t0)

    def reversed(self) -> "Integrator":
        """The same integrator from `t1` back to `t0` (the same steps, or the same
        tolerances, in the other direction); inside `jit` too."""
        return self.replace(t0=self.t1, t1=self.t0, max_steps=self.max_steps)

    @property
    def order(self) -> int:
        return order(self.solver)

    @property
    def steps(self) -> int:
        """Number of steps of a grid (concrete integrators only).

        **Raises:** `ValueError` for tolerances."""
        if not isinstance(self.control, AbstractGrid):
            raise ValueError("an integrator at tolerances has no set number of steps")
        return self.control.num_steps(self.length)

    @property
    def step_size(self) -> float:
        """The step of a grid as it was asked for (concrete integrators only): `(t1 - t0) /
        steps` in Python's double precision when the stored step is that quotient
        rounded (0.1 for `steps=100` on `[0, 10]`, not its float32 0.10000000149),
        else the shortest decimal that rounds to the stored step (`dt=0.3` gives 0.3).

        **Raises:** `ValueError` for tolerances."""
        if not isinstance(self.control, AbstractGrid):
            raise ValueError("an integrator at tolerances has no set step size")
        return self.control.step_size(self.length)

    @property
    def setting(self) -> Setting:
        """How tables and files name it (concrete integrators only): `str(setting)` is
        `euler at 8 steps` or `dopri5 at tol 1e-6`; `setting.to_json()` its JSON form."""
        return Setting(
            solver_name(self.solver),
            self.control.written(self.length),
            self.t0,
            self.t1,
            None if self.adjoint is None else type(self.adjoint).__name__,
        )

    def replace(self, **options) -> "Integrator":
        """This integrator with some of its arguments changed (`control`, `max_steps`,
        `per_sample`, `throw`, ...), every other kept. A new control without a
        `max_steps` keeps this one's budget where it suffices.

        **Raises:** as `Integrator`."""
        control = options.pop("control", self.control)
        if "max_steps" not in options:
            fits = control.needs(self.length) <= self.max_steps
            options["max_steps"] = self.max_steps if fits else None
        kept = dict(
            t0=self.t0,
            t1=self.t1,
            checkpoints=self.checkpoints,
            per_sample=self.per_sample,
            throw=self.throw,
            adjoint=self.adjoint,
        )
        return Integrator(
            options.pop("solver", self.solver), control, **{**kept, **options}
        )

    def scaled(self, factor: float, *, max_steps: int | None = None) -> "Integrator":
        """The solver swap's test integrator at `factor` (`AbstractControl.scaled`):
        `round(factor × n)` steps, or the tolerances times `factor`."""
        return self._with(self.control.scaled(factor, self.length), max_steps)

    def refined(self, factor: int | float, *, max_steps: int | None = None) -> "Integrator":
        """More accurate by `factor` (`AbstractControl.refined`): `factor` times the steps
        (an integer), or the tolerances divided by `factor`."""
        return self._with(self.control.refined(factor, self.length), max_steps)

    def _with(self, control: AbstractControl, max_steps: int | None) -> "Integrator":
        if max_steps is None:
            return self.replace(control=control)
        return self.replace(control=control, max_steps=max_steps)

    def at_least_as_accurate(self, other: "Integrator") -> bool:
        """Whether this integrator is, by construction, at least as accurate as `other`:
        a solver of order at least as high, and at least as many steps or tolerances no
        looser (`AbstractControl.at_least_as_accurate`). Coarser test solvers can
        degrade any model, ODE or not, so the solver swap's verdict rests on these."""
        return self.order >= other.order and self.control.at_least_as_accurate(
            other.control, self.length
        )

    def regularised(
        self, regularisers, *, key: PRNGKeyArray | None = None
    ) -> "Regularised":
        """This integrator with `regularisers` applied along its solves: `solve`
        accumulates each penalty along the same solve as the model, in an augmented
        state integrated by this solver, and returns the per-example values in
        `SolveStats.penalties` (see `odeness.KineticEnergy` and the others).

        With adaptive steps the penalties stay out of the step-size controller's error
        norm, so the steps (and the NFE) are those of the solve without them. Batched
        and per-sample solves, grids and tolerances, backpropagation and the
        continuous adjoint all work, but `ErrorEstimate` needs backpropagation.

        **Arguments:** `regularisers`: a sequence of `odeness.AbstractRegulariser`
        (distinct names); `key`: a PRNG key, required by those that draw random numbers
        (`JacobianFrobenius`, `RandomEndTime`; one draw per solve).

        **Raises:** `ValueError` for two regularisers of one name, a missing key, a
        `RandomEndTime` whose spread reaches `t0`, or an `ErrorEstimate` with the
        continuous adjoint or a solver that has no error estimate and none to embed.
        """
        return Regularised(self, tuple(regularisers), key)

    def _solve(self, field: VectorField, y0, args, ts):
        saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=ts)
        sol, stats = _diffeqsolve(field, y0, self, args, saveat)
        if ts is None:
            return jax.tree.map(lambda y: y[0], sol.ys), stats
        return sol.ys, stats


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
    controller, bad_dt = integ.control.controller(integ.throw, norm)
    adjoint = integ.adjoint if norm is None else integ.control.backward(integ.adjoint)
    if adjoint is None:
        checkpoints = integ.checkpoints
        if checkpoints is None:
            checkpoints = integ.control.checkpoints(integ.max_steps)
        adjoint = diffrax.RecursiveCheckpointAdjoint(checkpoints=checkpoints)
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
        adjoint=adjoint,
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
    it (`AbstractControl.error_scale`: unscaled on a grid)."""

    solver: diffrax.AbstractSolver
    name: str = eqx.field(static=True)
    control: AbstractControl

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
        error = error / self.control.error_scale(y_prev, y_next)
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
    integrals: tuple[AbstractIntegralPenalty, ...]  # static options; a CNF's holds a key
    errors: tuple[str, ...] = eqx.field(static=True)
    noise: PyTree

    def __call__(self, t, state, args):
        y, _ = state
        # A penalty with its own `evaluate` (one pass for the field and its rate) gives
        # the field's value; the others reuse it.
        own = [p for p in self.integrals if type(p).evaluate is not _DEFAULT_EVALUATE]
        if own:
            dy, rate = own[0].evaluate(self.field, t, y, args, self.noise[own[0].name])
            rates = rate if isinstance(rate, dict) else {own[0].name: rate}
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


class Regularised(eqx.Module):
    """An integrator with regularisers applied along its solves
    (`Integrator.regularised`): `solve` integrates the penalties in an augmented state of
    the same solve, and returns each one per example in `SolveStats.penalties`. Pass it
    where a model takes its integrator: `model(x, integ.regularised(...))`.
    """

    integrator: Integrator
    regularisers: tuple[AbstractRegulariser, ...]
    """Their options are static fields; a regulariser may hold arrays of its own (a
    CNF's divergence holds its probes' key)."""
    key: PRNGKeyArray | None

    def __check_init__(self):
        check_regularisers(self.regularisers, self.integrator.t0, self.integrator.t1)
        if any(r.needs_key for r in self.regularisers) and self.key is None:
            needs = ", ".join(type(r).__name__ for r in self.regularisers if r.needs_key)
            raise ValueError(
                f"{needs} draws random numbers: give a key (regularised(..., key=))"
            )
        if any(isinstance(r, ErrorEstimate) for r in self.regularisers):
            check_error_estimate(self.integrator.solver, self.integrator.adjoint)

    @property
    def t0(self) -> float:
        return self.integrator.t0

    @property
    def t1(self) -> float:
        return self.integrator.t1

    @property
    def per_sample(self) -> bool:
        return self.integrator.per_sample

    def _solve(self, field: VectorField, y0, args, ts):
        """The integrator's solve, the penalties accumulating in an augmented state
        `(y, {name: per-example value})`."""
        if isinstance(y0, np.ndarray):
            y0 = jnp.asarray(y0)
        if not (isinstance(y0, jax.Array) and y0.ndim >= 1):
            raise ValueError(
                "regularisers need the state as one array whose first axis is the "
                f"batch, got {jax.tree.structure(y0)}"
            )
        integ, regularisers = self.integrator, self.regularisers
        keys = (
            [None] * len(regularisers)
            if self.key is None
            else list(jax.random.split(self.key, len(regularisers)))
        )
        # A regulariser that draws random numbers has its key (`__check_init__`).
        key_of: dict[str, Any] = {
            r.name: k for r, k in zip(regularisers, keys, strict=True)
        }
        for r in regularisers:
            if isinstance(r, RandomEndTime):
                alpha = (r.end_time(key_of[r.name], integ.t1) - integ.t0) / (
                    integ.t1 - integ.t0
                )
                field = _Stretched(field, integ.t0, alpha)
        integrals = [r for r in regularisers if isinstance(r, AbstractIntegralPenalty)]
        errors = [r for r in regularisers if isinstance(r, ErrorEstimate)]
        if not integrals and not errors:  # a random end time only
            return integ._solve(field, y0, args, ts)
        noise = {p.name: p.noise(key_of[p.name], y0) for p in integrals}
        augmented = _Augmented(
            field, tuple(integrals), tuple(e.name for e in errors), noise
        )
        solver = integ.solver
        if errors:
            embedded = with_error_estimate(solver)
            assert embedded is not None  # checked by `__check_init__`
            solver = _ErrorAccumulating(embedded, errors[0].name, integ.control)
        saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=ts, t1=True)
        names = [n for p in integrals for n in p.names] + [e.name for e in errors]
        acc0 = {name: jnp.zeros(y0.shape[0], y0.dtype) for name in names}
        sol, stats = _diffeqsolve(
            augmented, (y0, acc0), integ, args, saveat, solver=solver, norm=_rms_of_state
        )
        ys, totals = sol.ys  # pyright: ignore[reportGeneralTypeIssues]
        # An integral accumulated backwards in time is the negative of its penalty.
        sign = {n: 1 if integ.t1 > integ.t0 else -1 for p in integrals for n in p.names}
        y = ys[0] if ts is None else ys[:-1]
        counted = with_error_estimate(integ.solver) if errors else integ.solver
        assert counted is not None  # checked by `__check_init__`
        evaluations = nfe(counted, stats.num_steps)
        extra = (evaluations - stats.nfe) + sum(
            p.extra_evaluations for p in integrals
        ) * evaluations
        stats = SolveStats(
            num_steps=stats.num_steps,
            num_accepted_steps=stats.num_accepted_steps,
            nfe=stats.nfe,
            result=stats.result,
            penalties={
                name: total[-1] * sign.get(name, 1) for name, total in totals.items()
            },
            penalty_nfe=extra,
        )
        return y, stats


def save_times(ts) -> np.ndarray:
    """`ts` as a float array, checked: non-empty, 1-D, finite, strictly monotonic
    (increasing, or decreasing for a solve backwards in time).

    **Raises:** `ValueError` naming the first bad value.
    """
    values = np.asarray(ts, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"save times ts must be a non-empty 1-D array, got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"save times ts must be finite, got {values.tolist()}")
    steps = np.diff(values) * (-1 if values.size > 1 and values[1] < values[0] else 1)
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(
            "save times ts must be strictly increasing (or strictly decreasing, for a "
            f"solve backwards in time), got {float(values[i]):g} then "
            f"{float(values[i + 1]):g}"
        )
    return values


def check_save_times(ts, integ: "Integrator | Regularised") -> None:
    """**Raises:** `ValueError` unless `ts` passes `save_times`, lies between
    `integ.t0` and `integ.t1` and runs in the direction of integration (concrete values
    only)."""
    if isinstance(ts, jax.core.Tracer):
        return
    values = save_times(ts)
    low, high = sorted((integ.t0, integ.t1))
    outside = values[(values < low) | (values > high)]
    if outside.size:
        raise ValueError(
            f"save time {float(outside[0]):g} lies outside [t0, t1] = "
            f"[{integ.t0:g}, {integ.t1:g}]"
        )
    if values.size > 1 and (values[1] > values[0]) != (integ.t1 > integ.t0):
        raise ValueError(
            f"save times ts must run from t0 = {integ.t0:g} towards t1 = {integ.t1:g}, "
            f"got {float(values[0]):g} then {float(values[1]):g}"
        )


def solve(
    field: VectorField,
    y0: PyTree[Float[Array, "batch ..."]],
    integ: Integrator | Regularised,
    args=None,
    *,
    ts: Float[Array, " T"] | np.ndarray | None = None,
) -> tuple[PyTree[Float[Array, "..."]], SolveStats]:
    """Integrate `dy/dt = field(t, y, args)` from `integ.t0` to `integ.t1`.

    **Arguments:**

    - `field`: the vector field, called as `field(t, y, args)`.
    - `y0`: the initial state. With `integ.per_sample`, its leading axis is a batch whose
        rows are solved independently (the field then sees a batch of one).
    - `integ`: the `Integrator`, or an `Integrator.regularised` one (the penalties are
        then in the statistics).
    - `ts`: save times between `t0` and `t1`, strictly monotonic in the direction of
        integration (diffrax's `SaveAt(ts=...)`). The steps do not change: a save time
        between two steps is the solver's dense interpolation between them (for a step
        `h`, a save time on the grid `t0 + k h` is the iterate itself). The solve still
        runs to `t1`.

    **Returns:** `(y, stats)`: the state at `t1` (or at each save time, stacked along a
    new leading axis `(T, batch, ...)`) and a `SolveStats` (per row with `per_sample`).

    **Raises:** `ValueError` for save times that are not monotonic in the direction of
    integration or lie outside `[t0, t1]`.
    """
    if ts is not None:
        check_save_times(ts, integ)
        ts = jnp.asarray(ts, dtype=float)
    if not integ.per_sample:
        return integ._solve(field, y0, args, ts)

    def one(y):
        y1, stats = integ._solve(field, jax.tree.map(lambda a: a[None], y), args, ts)
        row = 0 if ts is None else 1  # the batch of one: axis 0, or 1 after time
        return jax.tree.map(lambda a: jnp.take(a, 0, axis=row), y1), stats

    y, stats = jax.vmap(one)(y0)
    if ts is not None:  # (batch, T, ...) → (T, batch, ...)
        y = jax.tree.map(lambda a: jnp.moveaxis(a, 0, 1), y)
    if stats.penalties:  # each row's penalty of its batch of one
        penalties = {k: v[:, 0] for k, v in stats.penalties.items()}
        stats = eqx.tree_at(lambda s: s.penalties, stats, penalties)
    return y, stats


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
    sol, stats = _diffeqsolve(field, y0, integ, args, saveat)
    return sol.ts, sol.ys, stats  # pyright: ignore[reportReturnType]
