"""How a solve is controlled: a number of equal steps, a step size, or tolerances.

One typed value instead of either-or keywords, as diffrax's step-size controllers are
objects. Each control knows its label and JSON form, how a solver swap's factor scales it
(`scaled`), how a convergence test refines it (`refined`), and whether it is at least as
accurate as another (`at_least_as_accurate`):

```python
odeness.Steps(8)          # 8 equal steps on [t0, t1]
odeness.StepSize(0.01)    # steps of 0.01, the last one clipped at t1
odeness.Tolerances(1e-3)  # adaptive steps at rtol = atol = 1e-3
odeness.Integrator(solver, odeness.Steps(8))  # or, the shorthand, steps=8
```

A grid's step count and step size depend on the interval it is laid on: the methods that
need it take the interval's `length`, `t1 - t0` (`Integrator`'s own methods pass theirs).
An `Integrator` stores its control with traced arrays (a `Steps(n)` as the `StepSize` of
its interval), so that integrators that differ only in their step size or tolerances
share one compiled program; `written` gives the control back with the numbers as they
were asked for, which is how tables and files name it.
"""

import abc
import math
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._checks import integer
from ._solvers import is_adaptive, solver_name


def is_concrete(x) -> bool:
    """Whether `x` is a value (not a tracer inside `jit`, `vmap` or `grad`)."""
    return not isinstance(x, jax.core.Tracer)


def as_written(value) -> float:
    """The shortest decimal that rounds to `value` in its own precision (1e-3, not
    float32's 0.0010000000474974513)."""
    scalar: Any = np.asarray(value)[()]  # a NumPy scalar of the stored precision
    return float(np.format_float_positional(scalar, unique=True, trim="-"))


def num_steps(length: float, dt: float) -> int:
    """The steps of size `dt` that cover an interval of `length`, the last one clipped."""
    # diffrax clips a step that ends within ~100 eps of t1 to t1: a float32 dt = 1/n
    # (slightly under or over 1/n) takes exactly n steps.
    return max(1, math.ceil(length / dt * (1 - 1e-5)))


def positive_finite(name: str, value) -> None:
    """**Raises:** `ValueError` unless a concrete `value` is a finite number > 0 (a
    traced one is checked in the program)."""
    if is_concrete(value):
        v = float(value)
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _scientific(value: float) -> str:
    return np.format_float_scientific(value, trim="-", exp_digits=1)


def scaled_steps(steps: int, factor: float) -> int:
    """`round(factor * steps)`, halves rounded up, at least 1."""
    return max(1, math.floor(factor * steps + 0.5))


class AbstractControl(eqx.Module):
    """How a solve is controlled: its steps or its tolerances.

    The concrete controls are `Steps`, `StepSize` and `Tolerances`. The methods below
    work on concrete values (outside `jit`); `length` is the integration interval's
    `t1 - t0`, on which a grid's step count and step size depend.
    """

    @abc.abstractmethod
    def label(self, length: float = 1.0) -> str:
        """How tables name it: `8 steps`, `tol 1e-6`."""

    @abc.abstractmethod
    def to_json(self, length: float = 1.0) -> dict[str, Any]:
        """Its JSON form: `{"steps": 8, "dt": 0.125}` or `{"rtol": ..., "atol": ...}`."""

    @abc.abstractmethod
    def scaled(self, factor: float, length: float = 1.0) -> "AbstractControl":
        """The solver swap's test control at `factor`: `round(factor × n)` steps, or the
        tolerances times `factor`."""

    @abc.abstractmethod
    def refined(self, factor: float, length: float = 1.0) -> "AbstractControl":
        """More accurate by `factor`: `factor` times the steps, or the tolerances
        divided by `factor`."""

    @abc.abstractmethod
    def at_least_as_accurate(self, other: "AbstractControl", length: float = 1.0) -> bool:
        """Whether this control is, by construction, at least as accurate as `other` with
        the same solver: at least as many steps, or tolerances no looser. Controls of
        different kinds (a grid and tolerances) are not comparable: False."""

    @abc.abstractmethod
    def size(self, length: float = 1.0) -> float:
        """The number a sweep varies and a critical value is stated in: the step size of a
        grid, the relative tolerance; larger is coarser."""

    @abc.abstractmethod
    def written(self, length: float = 1.0) -> "AbstractControl":
        """This control with its numbers as they were asked for (Python numbers): a grid
        that divides the interval evenly is `Steps(n)`."""

    # What an `Integrator` needs of its control (its `__init__` and its solve).

    @abc.abstractmethod
    def resolved(self, length: float) -> "AbstractControl":
        """The control as an `Integrator` stores it on an interval of `length`: traced
        arrays (a `Steps(n)` becomes the `StepSize` `length / n`)."""

    @abc.abstractmethod
    def needs(self, length: float) -> int:
        """The fewest steps a solve's `max_steps` must allow (a grid's step count)."""

    @abc.abstractmethod
    def budget(self, length: float, max_steps: int | None) -> int:
        """The `max_steps` of a solve: `max_steps` itself if it suffices, else the
        default (a grid's exact step count, 4096 for tolerances).

        **Raises:** `ValueError` if a grid needs more steps than `max_steps`."""

    @abc.abstractmethod
    def check_solver(self, solver: diffrax.AbstractSolver) -> None:
        """**Raises:** `ValueError` if `solver` cannot run under this control."""

    @abc.abstractmethod
    def checkpoints(self, max_steps: int) -> int | None:
        """The default checkpoints of backpropagation through the solve."""

    @abc.abstractmethod
    def controller(
        self, throw: bool, norm: Callable | None = None
    ) -> tuple[diffrax.AbstractStepSizeController, Bool[Array, ""] | None]:
        """`(diffrax's step-size controller, a flag that the control is invalid or
        None)`, inside the program; `norm` is an adaptive controller's error norm."""

    def error_scale(self, y0, y1):
        """How the step-size controller scales an error estimate of the step from `y0` to
        `y1`: 1 for a grid (see `Tolerances`)."""
        del y0, y1
        return 1.0

    def backward(self, adjoint: diffrax.AbstractAdjoint | None):
        """`adjoint` for a solve whose controller sees part of the state (`norm`): as it
        is, unless the control adapts (see `Tolerances`)."""
        return adjoint


class AbstractGrid(AbstractControl):
    """A grid of steps, set before the solve: `Steps` or `StepSize`."""

    @abc.abstractmethod
    def num_steps(self, length: float = 1.0) -> int:
        """The number of steps on an interval of `length`."""

    @abc.abstractmethod
    def step_size(self, length: float = 1.0) -> float:
        """The step as it was asked for, in double precision."""

    def label(self, length=1.0):
        return f"{self.num_steps(length)} steps"

    def to_json(self, length=1.0):
        return {"steps": self.num_steps(length), "dt": self.step_size(length)}

    def scaled(self, factor, length=1.0) -> "Steps":
        return Steps(scaled_steps(self.num_steps(length), factor))

    def refined(self, factor, length=1.0) -> "Steps":
        return Steps(self.num_steps(length) * integer("factor", factor))

    def at_least_as_accurate(self, other, length=1.0):
        if not isinstance(other, AbstractGrid):
            return False
        return self.num_steps(length) >= other.num_steps(length)

    def size(self, length=1.0):
        return self.step_size(length)

    def needs(self, length):
        return self.num_steps(length)

    def check_solver(self, solver):
        del solver

    def checkpoints(self, max_steps):
        return max_steps  # one per step: no recomputation beyond re-running each step


class Steps(AbstractGrid):
    """`n` equal steps on `[t0, t1]` (step size `(t1 - t0) / n`).

    **Raises:** `ValueError` for `n` not an integer >= 1.
    """

    n: int

    def __check_init__(self):
        integer("steps", self.n)

    def num_steps(self, length=1.0):
        return int(self.n)

    def step_size(self, length=1.0):
        return length / int(self.n)

    def written(self, length=1.0):
        return self

    def resolved(self, length):
        return StepSize(jnp.asarray(length / int(self.n), dtype=float))

    def budget(self, length, max_steps):
        return self.resolved(length).budget(length, max_steps)

    def controller(self, throw, norm=None):
        raise AssertionError("an Integrator stores Steps as its StepSize")


class StepSize(AbstractGrid):
    """Fixed steps of size `dt` (the last one clipped at `t1`); `dt` may be a traced
    array, e.g. an adaptation rule's, which the program then checks.

    **Raises:** `ValueError` for a concrete `dt` that is not a finite number > 0.
    """

    dt: float | Float[Array, ""]
    checked: bool = eqx.field(static=True, init=False, repr=False)
    """Whether `dt` was a value when the control was made (and so checked then); a traced
    one is checked inside the program."""

    def __init__(self, dt: float | Float[Array, ""]):
        self.dt = dt
        self.checked = is_concrete(dt)

    def __check_init__(self):
        positive_finite("dt", self.dt)

    def num_steps(self, length=1.0):
        return num_steps(length, float(self.dt))

    def step_size(self, length=1.0):
        """`length / steps` in double precision when the stored step is that quotient
        rounded (0.1 for 100 steps on `[0, 10]`, not its float32 0.10000000149), else the
        shortest decimal that rounds to the stored step (`dt=0.3` gives 0.3)."""
        stored = np.asarray(self.dt)
        even = length / self.num_steps(length)
        if np.asarray(even, dtype=stored.dtype) == stored:
            return even
        return as_written(stored)

    def written(self, length=1.0):
        stored = np.asarray(self.dt)
        n = self.num_steps(length)
        if np.asarray(length / n, dtype=stored.dtype) == stored:
            return Steps(n)
        return StepSize(as_written(stored))

    def resolved(self, length):
        return StepSize(jnp.asarray(self.dt, dtype=float))

    def budget(self, length, max_steps):
        if not self.checked:
            if max_steps is None:
                raise ValueError("a traced dt needs an explicit max_steps")
            return max_steps
        needed = self.num_steps(length)
        if max_steps is None:
            # A step that does not divide the interval: diffrax adds up the times in
            # floating point, and over thousands of steps the sum can fall one step short
            # of t1; one spare step covers it.
            ratio = length / float(self.dt)
            return needed + (abs(ratio - round(ratio)) > 1e-3)
        if needed > max_steps:
            raise ValueError(
                f"dt={float(self.dt)!r} needs {needed} steps, more than "
                f"max_steps={max_steps}"
            )
        return max_steps

    def controller(self, throw, norm=None):
        del norm
        dt, bad = self.dt, None
        if not self.checked:  # unknown when made: checked in the program
            bad = ~(jnp.isfinite(dt) & (dt > 0))
            if throw:
                dt = eqx.error_if(dt, bad, "dt must be a finite number > 0")
            else:  # no host callback: the solve reports a failure instead
                dt = jnp.where(bad, 1.0, dt)
        return FixedStep(dt), bad


class Tolerances(AbstractControl):
    """Adaptive steps at relative and absolute tolerances `rtol`, `atol` (either alone
    sets both), with a solver that has an error estimate (`diffrax.PIDController`).

    **Raises:** `ValueError` for a concrete tolerance that is not a finite number > 0, or
    neither given.
    """

    rtol: float | Float[Array, ""]
    atol: float | Float[Array, ""]

    def __init__(
        self,
        rtol: float | Float[Array, ""] | None = None,
        atol: float | Float[Array, ""] | None = None,
    ):
        if rtol is None:
            if atol is None:
                raise ValueError("Tolerances needs rtol or atol (either alone sets both)")
            rtol = atol
        self.rtol, self.atol = rtol, rtol if atol is None else atol

    def __check_init__(self):
        positive_finite("rtol", self.rtol)
        positive_finite("atol", self.atol)

    def label(self, length=1.0):
        return f"tol {_scientific(as_written(self.rtol))}"

    def to_json(self, length=1.0):
        return {"rtol": as_written(self.rtol), "atol": as_written(self.atol)}

    def scaled(self, factor, length=1.0) -> "Tolerances":
        return Tolerances(self.rtol * factor, self.atol * factor)

    def refined(self, factor, length=1.0) -> "Tolerances":
        return Tolerances(as_written(self.rtol) / factor, as_written(self.atol) / factor)

    def at_least_as_accurate(self, other, length=1.0):
        if not isinstance(other, Tolerances):
            return False
        return bool(self.rtol <= other.rtol) and bool(self.atol <= other.atol)

    def size(self, length=1.0):
        return as_written(self.rtol)

    def written(self, length=1.0):
        return Tolerances(as_written(self.rtol), as_written(self.atol))

    def resolved(self, length):
        return Tolerances(
            jnp.asarray(self.rtol, dtype=float), jnp.asarray(self.atol, dtype=float)
        )

    def needs(self, length):
        return 1

    def budget(self, length, max_steps):
        return 4096 if max_steps is None else max_steps

    def error_scale(self, y0, y1):
        """`atol + rtol · max(|y0|, |y1|)`, as `diffrax.PIDController` scales it."""
        return self.atol + self.rtol * jnp.maximum(abs(y0), abs(y1))

    def check_solver(self, solver):
        if not is_adaptive(solver):
            raise ValueError(
                f"solver {solver_name(solver)!r} has no error estimate and cannot run "
                "adaptively (rtol/atol); give steps= or dt=, or use an adaptive "
                "solver such as dopri5, bosh3, fehlberg2, midpoint or heun"
            )

    def checkpoints(self, max_steps):
        return None  # diffrax's: log(max_steps)

    def controller(self, throw, norm=None):
        del throw
        if norm is None:
            return diffrax.PIDController(rtol=self.rtol, atol=self.atol), None
        return diffrax.PIDController(rtol=self.rtol, atol=self.atol, norm=norm), None

    def backward(self, adjoint):
        """A `BacksolveAdjoint` without a controller of its own gets one on all of the
        backward state (the adjoint's), at these tolerances; its other options stay."""
        if not isinstance(adjoint, diffrax.BacksolveAdjoint):
            return adjoint
        if "stepsize_controller" in adjoint.kwargs:
            return adjoint
        backward = diffrax.PIDController(rtol=self.rtol, atol=self.atol)
        return diffrax.BacksolveAdjoint(
            **{**adjoint.kwargs, "stepsize_controller": backward}
        )


class FixedStep(diffrax.AbstractStepSizeController):
    """`diffrax.ConstantStepSize` with its step size as a field instead of `dt0`.

    Given a traced `dt0`, `diffrax.diffeqsolve` checks its sign with a host callback,
    and JAX never writes a program with host callbacks to its persistent compilation
    cache. `StepSize` has checked a concrete `dt` already; this controller keeps the
    check out of the program (the steps are the same as `ConstantStepSize`'s). The step
    is in diffrax's normalised time, forwards, so `wrap` keeps it: a backward solve
    (`BacksolveAdjoint`) takes the same steps.
    """

    dt: float | Float[Array, ""]
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


def control_of(control: AbstractControl | None, steps, dt, rtol, atol) -> AbstractControl:
    """The control `Integrator` is given: `control`, or the shorthand `steps=`, `dt=` or
    `rtol=`/`atol=` (exactly one of these ways).

    **Raises:** `ValueError` for none or several.
    """
    asked = {
        k: v
        for k, v in (("steps", steps), ("dt", dt), ("rtol", rtol), ("atol", atol))
        if v is not None
    }
    if control is not None:
        if asked:
            raise ValueError(
                f"give a control or the shorthand {', '.join(asked)}=, not both "
                f"(control={control!r})"
            )
        if not isinstance(control, AbstractControl):
            raise ValueError(
                "control must be odeness.Steps, odeness.StepSize or odeness.Tolerances, "
                f"got {control!r}"
            )
        return control
    if set(asked) == {"steps", "dt"}:
        raise ValueError(f"give steps= or dt=, not both (steps={steps!r}, dt={dt!r})")
    if set(asked) == {"steps"}:
        return Steps(steps)
    if set(asked) == {"dt"}:
        return StepSize(dt)
    if not asked or {"steps", "dt"} & set(asked):
        raise ValueError(
            "give either fixed steps (steps= or dt=) or tolerances (rtol=/atol=), "
            f"got steps={steps!r}, dt={dt!r}, rtol={rtol!r}, atol={atol!r}"
        )
    return Tolerances(rtol, atol)
