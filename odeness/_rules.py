"""Step-size and tolerance adaptation (Ott et al., ICLR 2021, Sec. 5 and App. B).

During training, check every `interval` iterations whether the model is still an ODE at
the current step size (or tolerance) and adjust the training solver so that it stays
one, without paying for a finer solver than needed.

A rule is an immutable `eqx.Module` whose fields are the algorithm's constants (the
paper's values by default), used in optax's style:

```python
state = rule.init(dt)                                   # a NamedTuple of arrays
integ = rule.integrator(state)                          # the training solver now
state = rule.record(state, forward_nfe)                 # every iteration
check = rule.check(state, evaluate, train_accuracy, forward_nfe)  # every `interval`
state = rule.update(state, check)
```

`check` runs the test (and try) solves through `evaluate(integrator) -> (accuracy, nfe,
success)`, a closure over the current model and batch; `update` is pure arithmetic on
what the check measured. The step size or tolerance lives in the state as a traced
array, so adapting it never recompiles: `odeness.train` threads the state through its
compiled loop and runs the check under `lax.cond`.
"""

import abc
import math
from collections.abc import Callable
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PyTree

from ._checks import fraction, integer
from ._control import StepSize, Tolerances
from ._integrate import Integrator, VectorField
from ._solvers import is_adaptive, order, solver, solver_name

Evaluate = Callable[[Integrator], tuple[Float[Array, ""], Int[Array, ""], Bool[Array, ""]]]
"""`evaluate(integrator) -> (score, forward NFE, success)` on the current batch: the
score is the accuracy, or the run's metric (`odeness.train(..., metric=...)`)."""


class AdaptationCheck(NamedTuple):
    """What one check measured on the training batch (scalars). The `*_accuracy` fields
    hold the run's score: the accuracy, or its metric."""

    train_accuracy: Float[Array, ""]
    """Accuracy with the training solver (from the training step's forward pass)."""
    test_accuracy: Float[Array, ""]
    """Accuracy with the test solver."""
    try_accuracy: Float[Array, ""]
    """Accuracy with the training solver at the coarser trial step size / tolerance."""
    test_ok: Bool[Array, ""]
    """False if the test solve failed (hit its `max_steps`): counted as not an ODE."""
    nfe: Int[Array, ""]
    """Vector-field evaluations the check's solves cost (forward passes only)."""


# --- Initial step size -------------------------------------------------------------


def _mean_norm(y: Float[Array, "batch ..."]) -> Float[Array, ""]:
    return jnp.mean(jnp.sqrt(jnp.sum(jnp.reshape(y, (y.shape[0], -1)) ** 2, axis=1)))


def initial_step_size(
    field: VectorField, y0: Float[Array, "batch ..."], order: int, t0: float = 0.0
) -> Float[Array, ""]:
    """Hairer, Nørsett & Wanner's starting step size (*Solving ODEs I*, p. 169).

    Norms are Euclidean per example, averaged over the batch (as the authors' code does):

    ```
    d0 = mean‖y0‖, d1 = mean‖f(y0)‖
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 · d0 / d1
    d2 = mean‖f(y0 + h0 f(y0)) − f(y0)‖ / h0
    h1 = max(1e-6, 1e-3 h0) if max(d1, d2) < 1e-15 else (0.01 / max(d1, d2))^(1/(p+1))
    h  = min(100 h0, h1)
    ```

    **Arguments:** the vector field `field(t, y, args)`, the batch `y0` and the order
    `p` of the training solver.
    """
    f0 = field(t0, y0, None)
    d0, d1 = _mean_norm(y0), _mean_norm(f0)
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / jnp.maximum(d1, 1e-30))
    f1 = field(t0 + h0, y0 + h0 * f0, None)
    d2 = _mean_norm(f1 - f0) / h0
    d12 = jnp.maximum(d1, d2)
    h1 = jnp.where(
        d12 < 1e-15,
        jnp.maximum(1e-6, 1e-3 * h0),
        (0.01 / jnp.maximum(d12, 1e-30)) ** (1.0 / (order + 1)),
    )
    return jnp.minimum(100 * h0, h1)


# --- Step size (fixed-step solvers) ------------------------------------------------

DEFAULT_TEST_SOLVER = {"euler": "midpoint", "midpoint": "rk4", "heun": "rk4"}
"""Test solver of each fixed-step training solver: the paper's (its appendix also uses
euler → rk4), and rk4 for heun as for midpoint, the other 2nd-order method."""


class AbstractRule(eqx.Module):
    """An adaptation rule: how training's step size or tolerance changes as it goes.

    Subclass it to write a rule of your own; `odeness.train` (through `adapt_step`)
    calls only these methods. The state is a pytree of arrays (a `NamedTuple`), so that
    it rides in the compiled training loop's carry: every method is pure.

    - `init(value)`: the state at a starting step size or tolerance;
    - `value(state)`: the current step size or tolerance;
    - `integrator(state)`: the training integrator (traced values; report failure in
      `success`, do not throw);
    - `final_integrator(state)`: the concrete integrator of a state on the host;
    - `record(state, nfe)`: remember each iteration's forward NFE;
    - `check(state, evaluate, train_accuracy, nfe)` every `interval` iterations, then
      `update(state, check)`.
    """

    solver: eqx.AbstractVar[diffrax.AbstractSolver]
    """The training solver."""
    test_solver: eqx.AbstractVar[diffrax.AbstractSolver]
    """The more accurate solver the checks compare with."""
    threshold: eqx.AbstractVar[float]
    """The accuracy gap that marks the model as not an ODE."""
    interval: eqx.AbstractVar[int]
    """Iterations between checks (static)."""
    growth: eqx.AbstractVar[float]
    """The factor a passed check tries on the step size or tolerance."""
    max_steps: eqx.AbstractVar[int]
    """The cap on the training solve's steps (static)."""

    @abc.abstractmethod
    def init(self, value: float | Float[Array, ""]) -> PyTree: ...

    @abc.abstractmethod
    def value(self, state: PyTree) -> Float[Array, ""]: ...

    @abc.abstractmethod
    def integrator(self, state: PyTree) -> Integrator: ...

    @abc.abstractmethod
    def final_integrator(self, state: PyTree) -> Integrator: ...

    @abc.abstractmethod
    def record(self, state: PyTree, nfe: Int[Array, ""]) -> PyTree: ...

    @abc.abstractmethod
    def check(
        self,
        state: PyTree,
        evaluate: Evaluate,
        train_accuracy: Float[Array, ""],
        nfe: Int[Array, ""],
    ) -> AdaptationCheck: ...

    @abc.abstractmethod
    def update(self, state: PyTree, check: AdaptationCheck) -> PyTree: ...


class StepSizeState(NamedTuple):
    """`StepSizeRule`'s state: arrays, carried through the training loop."""

    dt: Float[Array, ""]
    """The training step size in use."""
    test_accuracy: Float[Array, ""]
    """Test-solver accuracy at the last check (NaN before the first)."""


def test_step_size(
    dt: Float[Array, ""], train_order: int, test_order: int, error_ratio: float = 50.0
) -> Float[Array, ""]:
    """The test solver's step: error about `error_ratio` times below the training solver's.

    With training order p and test order q > p: the same step `h` if `h^(q−p)` is below
    `1/error_ratio` already, else `(h^p / error_ratio)^(1/q)`. This is the paper's
    `test_config` in one formula (euler → midpoint: `h` if `1/h > 50` else
    `sqrt(h/50)`; midpoint → rk4: `h` if `1/h² > 50` else `(h²/50)^(1/4)`; euler → rk4:
    `h` if `1/h³ > 50` else `(h/50)^(1/4)`). Never coarser than `h`.
    """
    p, q = train_order, test_order
    return jnp.where(
        1.0 / dt ** (q - p) > error_ratio, dt, (dt**p / error_ratio) ** (1.0 / q)
    )


class StepSizeRule(AbstractRule):
    """The paper's step-size adaptation for fixed-step training solvers.

    Every `interval` iterations, on the current training batch: if the test solver's
    accuracy differs from the training accuracy by more than `threshold`, the model is
    not an ODE at this step size and the step is refined (halved, or moved halfway to
    the `max_steps` cap in step count, `h ← 2h / (max_steps·h + 1)`, once halving would
    pass it; kept at the cap). Otherwise a coarser step `min(growth·h, max_dt)` is tried
    and kept if its accuracy is within `threshold` of the test solver's.

    **Arguments:** `solver` (training) and `test_solver` (higher order) as diffrax
    solvers; the constants, with the paper's values as defaults. Scores are compared
    in threshold units: accuracies, or a metric divided by its scale (`odeness.train`
    hands the rule `metric.mean / metric.scale`).

    **Raises:** `ValueError` if a solver is adaptive-only material (the training solver
    must run with fixed steps) or the test solver's order is not above the training
    solver's, or a constant is out of range.
    """

    solver: diffrax.AbstractSolver
    test_solver: diffrax.AbstractSolver
    threshold: float = eqx.field(static=True, default=0.1)
    interval: int = eqx.field(static=True, default=50)
    growth: float = eqx.field(static=True, default=1.1)
    max_dt: float = eqx.field(static=True, default=1.0)
    max_steps: int = eqx.field(static=True, default=500)
    error_ratio: float = eqx.field(static=True, default=50.0)

    def __check_init__(self):
        p, q = order(self.solver), order(self.test_solver)
        if q <= p:
            raise ValueError(
                f"test solver {solver_name(self.test_solver)!r} (order {q}) must be of "
                f"higher order than the training solver {solver_name(self.solver)!r} "
                f"(order {p})"
            )
        _check_constants(self)
        if not (0 < self.max_dt <= 1) or self.error_ratio <= 1 or self.max_steps < 1:
            raise ValueError(
                f"need 0 < max_dt <= 1, error_ratio > 1 and max_steps >= 1, got "
                f"max_dt={self.max_dt!r}, error_ratio={self.error_ratio!r}, "
                f"max_steps={self.max_steps!r}"
            )

    @property
    def min_dt(self) -> float:
        return 1.0 / self.max_steps

    def init(self, dt: float | Float[Array, ""]) -> StepSizeState:
        """The state at step size `dt`, clipped to `[1/max_steps, max_dt]`."""
        dt = jnp.clip(jnp.asarray(dt, dtype=float), self.min_dt, self.max_dt)
        return StepSizeState(dt, jnp.asarray(jnp.nan, dtype=float))

    def value(self, state: StepSizeState) -> Float[Array, ""]:
        return state.dt

    def final_integrator(self, state: StepSizeState) -> Integrator:
        return Integrator(self.solver, StepSize(float(self.value(state))))

    def integrator(self, state: StepSizeState) -> Integrator:
        """The training integrator at the state's step size (failures are reported in
        `success`: a failed training solve stops `odeness.train`)."""
        return Integrator(
            self.solver, StepSize(state.dt), max_steps=self.max_steps, throw=False
        )

    def test_integrator(self, state: StepSizeState) -> Integrator:
        dt = test_step_size(
            state.dt, order(self.solver), order(self.test_solver), self.error_ratio
        )
        # h >= 1/max_steps, and a test step below h is >= error_ratio^(-1/(q-p)).
        max_steps = max(self.max_steps, math.ceil(self.error_ratio))
        # A failed test solve counts as not an ODE (`AdaptationCheck.test_ok`).
        return Integrator(self.test_solver, StepSize(dt), max_steps=max_steps, throw=False)

    def try_integrator(self, state: StepSizeState) -> Integrator:
        dt = jnp.minimum(self.growth * state.dt, self.max_dt)
        return Integrator(self.solver, StepSize(dt), max_steps=self.max_steps, throw=False)

    def record(self, state: StepSizeState, nfe: Int[Array, ""]) -> StepSizeState:
        """Per-iteration bookkeeping (none for this rule)."""
        del nfe
        return state

    def check(
        self,
        state: StepSizeState,
        evaluate: Evaluate,
        train_accuracy: Float[Array, ""],
        nfe: Int[Array, ""],
    ) -> AdaptationCheck:
        """Run the test solve and the trial solve on the batch."""
        del nfe
        test_acc, test_nfe, ok = evaluate(self.test_integrator(state))
        try_acc, try_nfe, _ = evaluate(self.try_integrator(state))
        return AdaptationCheck(train_accuracy, test_acc, try_acc, ok, test_nfe + try_nfe)

    def update(self, state: StepSizeState, check: AdaptationCheck) -> StepSizeState:
        """The new step size after `check`."""
        dt = state.dt
        n = 1.0 / dt
        at_cap = n >= self.max_steps * (1 - 1e-4)
        refined = jnp.where(
            2 * n > self.max_steps,
            jnp.where(at_cap, dt, 2 * dt / (self.max_steps * dt + 1)),
            dt / 2,
        )
        tried = jnp.minimum(self.growth * dt, self.max_dt)
        new = jnp.where(
            _not_an_ode(check, self.threshold),
            refined,
            jnp.where(
                jnp.abs(check.test_accuracy - check.try_accuracy) <= self.threshold,
                tried,
                dt,
            ),
        )
        return StepSizeState(new, check.test_accuracy)


# --- Tolerance (adaptive solvers) --------------------------------------------------

DEFAULT_TOLERANCE_TEST = {"dopri5": ("dopri5", 0.1), "fehlberg2": ("dopri5", 0.2)}
"""The paper's `(test solver, tol_test / tol)` for each adaptive training solver."""


class ToleranceState(NamedTuple):
    """`ToleranceRule`'s state: arrays, carried through the training loop."""

    tol: Float[Array, ""]
    """The training tolerance in use (rtol = atol)."""
    recent_nfe: Int[Array, " hold"]
    """Forward NFE of the last `hold` iterations (negative: not yet seen)."""
    test_accuracy: Float[Array, ""]
    """Test-solver accuracy at the last check (NaN before the first)."""


class ToleranceRule(AbstractRule):
    """The paper's tolerance adaptation for adaptive training solvers (rtol = atol = tol).

    Every `interval` iterations: the test solver runs at `test_factor · tol`, tightened by
    `tighten` (at most `max_tightenings` times) until it costs more evaluations than the
    training solve. If its accuracy differs from the training accuracy by more than
    `threshold`, the tolerance is multiplied by `shrink`; otherwise `growth · tol` is
    tried and kept unless its accuracy differs from the test solver's by more than
    `threshold`, or the forward NFE was the same in each of the last `hold` iterations.

    **Raises:** `ValueError` if either solver cannot run adaptively, or a constant is out
    of range.
    """

    solver: diffrax.AbstractSolver
    test_solver: diffrax.AbstractSolver
    threshold: float = eqx.field(static=True, default=0.1)
    interval: int = eqx.field(static=True, default=50)
    growth: float = eqx.field(static=True, default=1.1)
    shrink: float = eqx.field(static=True, default=0.5)
    test_factor: float = eqx.field(static=True, default=0.1)
    tighten: float = eqx.field(static=True, default=0.1)
    max_tightenings: int = eqx.field(static=True, default=4)
    hold: int = eqx.field(static=True, default=5)
    max_steps: int = eqx.field(static=True, default=4096)

    def __check_init__(self):
        for s in (self.solver, self.test_solver):
            if not is_adaptive(s):
                raise ValueError(
                    f"solver {solver_name(s)!r} has no error estimate; the tolerance "
                    "rule needs adaptive solvers (dopri5, fehlberg2, bosh3, ...)"
                )
        _check_constants(self)
        for name in ("shrink", "test_factor", "tighten"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in (0, 1), got {getattr(self, name)!r}")
        if self.max_tightenings < 0 or self.hold < 1 or self.max_steps < 1:
            raise ValueError(
                "need max_tightenings >= 0, hold >= 1 and max_steps >= 1, got "
                f"{self.max_tightenings!r}, {self.hold!r}, {self.max_steps!r}"
            )

    def init(self, tol: float | Float[Array, ""] = 1e-6) -> ToleranceState:
        """The state at tolerance `tol` (the paper starts at 1e-6)."""
        return ToleranceState(
            jnp.asarray(tol, dtype=float),
            -1 - jnp.arange(self.hold),  # distinct, so no hold before `hold` iterations
            jnp.asarray(jnp.nan, dtype=float),
        )

    def value(self, state: ToleranceState) -> Float[Array, ""]:
        return state.tol

    def _at(self, s: diffrax.AbstractSolver, tol) -> Integrator:
        # Failures are reported in `success`: a failed check counts as not an ODE, a
        # failed training solve stops `odeness.train`.
        return Integrator(s, Tolerances(tol), max_steps=self.max_steps, throw=False)

    def final_integrator(self, state: ToleranceState) -> Integrator:
        tol = float(self.value(state))
        return Integrator(self.solver, Tolerances(tol), max_steps=self.max_steps)

    def integrator(self, state: ToleranceState) -> Integrator:
        return self._at(self.solver, state.tol)

    def record(self, state: ToleranceState, nfe: Int[Array, ""]) -> ToleranceState:
        """Remember the forward NFE of this iteration."""
        recent = jnp.roll(state.recent_nfe, 1).at[0].set(nfe.astype(state.recent_nfe.dtype))
        return state._replace(recent_nfe=recent)

    def check(
        self,
        state: ToleranceState,
        evaluate: Evaluate,
        train_accuracy: Float[Array, ""],
        nfe: Int[Array, ""],
    ) -> AdaptationCheck:
        """Run the (tightened) test solve and the trial solve on the batch."""

        def test_at(tol):
            return evaluate(self._at(self.test_solver, tol))

        # carry: (tightenings, tol_test, (accuracy, NFE, success) of the last test
        # solve, NFE of all test solves so far)
        def more(carry):
            k, _, (_, last_nfe, ok), _ = carry
            return (k < self.max_tightenings) & ok & (last_nfe <= nfe)

        def tighter(carry):
            k, tol, _, spent = carry
            tol = tol * self.tighten
            result = test_at(tol)
            return k + 1, tol, result, spent + result[1]

        tol0 = state.tol * self.test_factor
        first = test_at(tol0)
        _, _, (test_acc, _, ok), test_nfe = jax.lax.while_loop(
            more, tighter, (jnp.asarray(0), tol0, first, first[1])
        )
        try_acc, try_nfe, _ = evaluate(self._at(self.solver, state.tol * self.growth))
        return AdaptationCheck(train_accuracy, test_acc, try_acc, ok, test_nfe + try_nfe)

    def update(self, state: ToleranceState, check: AdaptationCheck) -> ToleranceState:
        """The new tolerance after `check`."""
        tol = state.tol
        held = jnp.all(state.recent_nfe == state.recent_nfe[0])
        keep_try = (
            jnp.abs(check.test_accuracy - check.try_accuracy) <= self.threshold
        ) & ~held
        new = jnp.where(
            _not_an_ode(check, self.threshold),
            tol * self.shrink,
            jnp.where(keep_try, tol * self.growth, tol),
        )
        return state._replace(tol=new, test_accuracy=check.test_accuracy)


# --- Shared ------------------------------------------------------------------------


def _check_constants(rule: AbstractRule) -> None:
    fraction("threshold", rule.threshold)
    integer("interval", rule.interval)
    if rule.growth <= 1:
        raise ValueError(f"growth must be > 1, got {rule.growth!r}")


def _not_an_ode(check: AdaptationCheck, threshold: float) -> Bool[Array, ""]:
    return ~check.test_ok | (
        jnp.abs(check.test_accuracy - check.train_accuracy) > threshold
    )


def rule_for(
    train_solver: str,
    *,
    adaptive: bool,
    test_solver: str | None = None,
    threshold: float = 0.1,
    interval: int = 50,
    max_steps: int | None = None,
) -> AbstractRule:
    """The paper's rule for a training solver name: a `ToleranceRule` if `adaptive`,
    else a `StepSizeRule`, with the paper's test solver unless `test_solver` is given.

    **Raises:** `ValueError` for an unknown solver, a training solver with no default
    test solver and none given, or a bad constant.
    """
    s = solver(train_solver)
    extra: dict = {} if max_steps is None else {"max_steps": max_steps}
    if adaptive:
        default_test, factor = DEFAULT_TOLERANCE_TEST.get(train_solver, (train_solver, 0.1))
        return ToleranceRule(
            s,
            solver(test_solver or default_test),
            threshold=threshold,
            interval=interval,
            test_factor=factor,
            **extra,
        )
    if test_solver is None:
        if train_solver not in DEFAULT_TEST_SOLVER:
            raise ValueError(
                f"no default test solver for training solver {train_solver!r} (the "
                f"paper's: {DEFAULT_TEST_SOLVER}); give a test solver of higher order"
            )
        test_solver = DEFAULT_TEST_SOLVER[train_solver]
    return StepSizeRule(
        s, solver(test_solver), threshold=threshold, interval=interval, **extra
    )


def adapt_step(
    rule: AbstractRule,
    state: PyTree,
    due: Bool[Array, ""],
    evaluate: Evaluate,
    train_accuracy: Float[Array, ""],
    nfe: Int[Array, ""],
    *,
    check_value: bool = True,
) -> tuple[PyTree, AdaptationCheck]:
    """One iteration of the rule: record the NFE; if `due`, check and update.

    `due` must not depend on per-seed data (the training loop derives it from the
    shared iteration counter): then `lax.cond` stays a branch under `vmap` and the
    check's solves run only every `interval` iterations. The returned `AdaptationCheck`
    holds NaN accuracies and zero NFE where no check ran.

    With `check_value` (the default), an update that gives a step size or tolerance that
    is not a finite number > 0 raises in the program (`eqx.error_if`); `odeness.train`
    checks the values on the host instead, so that its program holds no host callback.
    """
    nfe = jnp.asarray(nfe)
    state = rule.record(state, nfe)
    nan = jnp.asarray(jnp.nan, dtype=float)
    skipped = AdaptationCheck(
        train_accuracy, nan, nan, jnp.asarray(True), jnp.zeros((), nfe.dtype)
    )

    def run(state):
        check = rule.check(state, evaluate, train_accuracy, nfe)
        check = check._replace(nfe=jnp.asarray(check.nfe, nfe.dtype))
        state = rule.update(state, check)
        # A rule of one's own could drive the value to 0 or NaN: fail at the update
        # that does, not many solves later. Only checks run this branch.
        if check_value:
            value = rule.value(state)
            state = eqx.error_if(
                state,
                ~(jnp.isfinite(value) & (value > 0)),
                f"{type(rule).__name__}.update gave a step size or tolerance that is not "
                "a finite number > 0",
            )
        return state, check

    return jax.lax.cond(due, run, lambda s: (s, skipped), state)
