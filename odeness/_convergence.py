"""Threshold-free verdicts: does the model converge as its solver is refined?

Two tests beside the solver swap's threshold (Ott et al.):

- **self-convergence** (after Queiruga et al., *Continuous-in-depth neural networks*,
  2020): the model's outputs at `h, h/2, h/4, …` against a fine reference solve of the
  same model. An ODE's outputs converge at the order `p` of the solver: each halving
  divides the error by `2^p`, and at the training step the error is already small next
  to the outputs themselves (the *asymptotic regime*). A discrete network's outputs
  move by as much as their own size when refined.
- **convergence against the targets** (Krishnapriyan, Queiruga et al., *Learning
  continuous models for continuous physics*, 2023): the metric against the targets at
  the training step and at refined steps (or tolerances). A model of the continuous
  dynamics does not get worse as the solver gets more accurate; one that learned its
  training solver's discrete map does.

Distances between outputs are relative RMS: `rms(a - b) / rms(b)` over every entry of
every example, `b` the reference (no metric, no targets).
"""

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Shaped

from . import _checks as check
from ._control import AbstractGrid, Steps, Tolerances
from ._errors import RunFailed, SolveFailed
from ._integrate import Integrator, evaluation_budget
from ._metrics import AbstractMetric, as_metric, targets_of
from ._solvers import RK4, order
from ._swap import Model, score


class Solved(NamedTuple):
    """A model's outputs on all the inputs with one integrator, or why there are none."""

    outputs: np.ndarray | None
    nfe: float
    failure: str | None
    """Why the solve has no outputs: it failed (`max_steps`) or they are not finite."""


@eqx.filter_jit
def _batch_outputs(model: Model, integ: Integrator, x):
    outputs, stats = model(x, integ)
    (leaf,) = jax.tree.leaves(outputs)
    return leaf, jnp.max(stats.nfe), stats.success


def solve_outputs(
    model: Model, integ: Integrator, x: Float[Array, "N ..."] | np.ndarray, batch_size: int
) -> Solved:
    """The model's outputs (one array) on all of `x` with `integ`, in batches; a failed
    solve or outputs that are not finite give a `failure` instead (a verdict, not an
    error)."""
    quiet = integ.replace(throw=False)
    parts, nfes = [], []
    for start in range(0, len(x), batch_size):
        out, nfe, success = _batch_outputs(
            model, quiet, jnp.asarray(x[start : start + batch_size])
        )
        if not np.all(success):
            return Solved(None, math.nan, f"the solve with {integ.setting} failed")
        out = np.asarray(out)
        if not np.all(np.isfinite(out)):
            return Solved(
                None, math.nan, f"the outputs with {integ.setting} are not finite"
            )
        parts.append(out)
        nfes.append(float(nfe))
    return Solved(np.concatenate(parts), float(np.mean(nfes)), None)


def relative_rms(a: np.ndarray, reference: np.ndarray) -> float:
    """`rms(a - reference) / rms(reference)` over every entry (0 if both are 0)."""
    scale = math.sqrt(float(np.mean(np.square(reference, dtype=np.float64))))
    gap = math.sqrt(float(np.mean(np.square(a - reference, dtype=np.float64))))
    if scale == 0:
        return 0.0 if gap == 0 else math.inf
    return gap / scale


def _refinements(refinements: Sequence[int | float], *, integers: bool) -> tuple:
    values = tuple(refinements)
    if len(values) < 2:
        raise ValueError(f"refinements needs at least two values, got {values!r}")
    for v in values:
        number = check.is_number(v) and math.isfinite(v)
        if not number or v < 1 or (integers and v != int(v)):
            what = "integers >= 1" if integers else "numbers >= 1"
            raise ValueError(f"refinements must be {what}, got {values!r}")
    if values[0] != 1 or any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(
            f"refinements must start at 1 (the training step) and increase strictly, got "
            f"{values!r}"
        )
    return tuple(int(v) for v in values) if integers else tuple(float(v) for v in values)


def refined(integ: Integrator, factor: int | float) -> Integrator:
    """`integ.refined(factor)`, under the evaluation budget (`evaluation_budget`) where it
    is a grid of steps, so that the refined solves of one solver share a program."""
    finer = integ.refined(factor)
    if isinstance(finer.control, AbstractGrid):
        return finer.replace(max_steps=evaluation_budget(finer.steps))
    return finer


def _check_inputs(x) -> None:
    if len(x) == 0:
        raise ValueError("cannot test convergence on no inputs")


class SelfConvergence(NamedTuple):
    """The model's outputs against its own refined solves (`self_convergence`)."""

    steps: tuple[int, ...]
    """The step counts: the training one, then refined."""
    step_sizes: tuple[float, ...]
    errors: tuple[float, ...]
    """Relative RMS distance of the outputs at each step count from the reference."""
    orders: tuple[float, ...]
    """Observed order of each refinement: `log(e_k / e_{k+1}) / log(n_{k+1} / n_k)`."""
    expected_order: int
    """The solver's order `p`."""
    asymptotic: bool
    """Whether the training step is in the asymptotic regime: its error is at most
    `max_error`, and every observed order (of errors above the round-off `floor`) lies
    within `order_tolerance`·p of p. False if a solve failed."""
    reference: str
    """The reference integrator, e.g. `rk4 at 4096 steps`."""
    failure: str | None = None
    """Why there is no verdict from the errors (a failed solve, outputs not finite)."""


def _default_reference(integ: Integrator, finest: int) -> Integrator:
    """Classic RK4 at twice the finest step count (four times for a solver of order 4
    or more, so that the reference's error stays below a 256th of the finest solve's)."""
    steps = finest * (2 if integ.order < 4 else 4)
    return integ.replace(
        solver=RK4(), control=Steps(steps), max_steps=evaluation_budget(steps)
    )


def observed_orders(errors: Sequence[float], steps: Sequence[float]) -> tuple[float, ...]:
    """`log(e_k / e_{k+1}) / log(n_{k+1} / n_k)` for each pair of successive errors
    (nan where an error is 0)."""
    orders = []
    for (e0, n0), (e1, n1) in zip(
        zip(errors, steps, strict=True),
        list(zip(errors, steps, strict=True))[1:],
        strict=False,
    ):
        ratio = e0 / e1 if e1 > 0 and e0 > 0 else math.nan
        orders.append(math.log(ratio) / math.log(n1 / n0) if ratio == ratio else math.nan)
    return tuple(orders)


def self_convergence(
    model: Model,
    integ: Integrator,
    x: Float[Array, "N ..."] | np.ndarray,
    *,
    refinements: Sequence[int] = (1, 2, 4, 8),
    reference: Integrator | None = None,
    order_tolerance: float = 0.25,
    max_error: float = 0.5,
    floor: float | None = None,
    batch_size: int = 1000,
) -> SelfConvergence:
    """The model's outputs with its training integrator refined, against a fine
    reference solve of the same model.

    **Arguments:**

    - `model`, `integ`: the trained model (`model(x, integ) -> (outputs, stats)`) and
        its training integrator on a grid of steps.
    - `x`: the inputs (no targets: the outputs are compared with each other).
    - `refinements`: the factors on the training step count, from 1, increasing.
    - `reference`: the converged solve (default: classic RK4 at twice the finest step
        count, four times for a solver of order >= 4, whose error is negligible next to
        the refined solves').
    - `order_tolerance`: how far, relative to the solver's order `p`, an observed
        order may lie from `p` (default 0.25: Euler's orders in [0.75, 1.25]).
    - `max_error`: the training step's largest relative error that is still a regime
        (default 0.5, half the outputs' size: an error as large as the outputs has no
        order to observe).
    - `floor`: errors below it are round-off, and their orders are not judged (default
        `100 ε` of the outputs' dtype, 1.2e-5 in float32).

    **Returns:** a `SelfConvergence`. A failed or non-finite solve is a verdict
    (`asymptotic=False`, `failure` says which), not an error.

    **Raises:** `ValueError` for an adaptive integrator, refinements that are not
    integers >= 1 increasing from 1, no inputs, a tolerance or error bound that is not
    a finite number > 0.
    """
    if not isinstance(integ.control, AbstractGrid):
        raise ValueError(
            "self_convergence needs a fixed-step integrator (steps= or dt=); test an "
            "adaptive one with convergence_test"
        )
    factors = _refinements(refinements, integers=True)
    check.positive("order_tolerance", order_tolerance)
    check.positive("max_error", max_error)
    _check_inputs(x)
    check.integer("batch_size", batch_size)
    integrators = [refined(integ, f) for f in factors]
    finest = integrators[-1].steps
    reference = _default_reference(integ, finest) if reference is None else reference
    steps = tuple(i.steps for i in integrators)
    sizes = tuple(i.step_size for i in integrators)
    p = order(integ.solver)
    ref = solve_outputs(model, reference, x, batch_size)

    def failed(why: str) -> SelfConvergence:
        return SelfConvergence(steps, sizes, (), (), p, False, str(reference.setting), why)

    if ref.failure is not None:
        return failed(f"the reference: {ref.failure}")
    assert ref.outputs is not None
    errors = []
    for i in integrators:
        solved = solve_outputs(model, i, x, batch_size)
        if solved.failure is not None:
            return failed(solved.failure)
        assert solved.outputs is not None
        errors.append(relative_rms(solved.outputs, ref.outputs))
    floor = 100 * float(np.finfo(ref.outputs.dtype).eps) if floor is None else floor
    orders = observed_orders(errors, steps)
    judged = [o for o, e in zip(orders, errors[1:], strict=True) if e > floor]
    in_regime = all(abs(o - p) <= order_tolerance * p for o in judged)
    asymptotic = errors[0] <= max_error and in_regime
    return SelfConvergence(
        steps, sizes, tuple(errors), orders, p, asymptotic, str(reference.setting)
    )


class ConvergenceTest(NamedTuple):
    """The metric against the targets as the solver is refined (`convergence_test`)."""

    metric: str
    higher_is_better: bool
    refinements: tuple[float, ...]
    """Factors on the training steps, or divisors of its tolerances."""
    settings: tuple[str, ...]
    """Each refined integrator, e.g. `euler at 16 steps`."""
    scores: tuple[float, ...]
    """The metric at each refinement (the first is the training integrator's)."""
    nfe: tuple[float, ...]
    degradation: float
    """The largest degradation from the training score over the refined ones, in the
    metric's threshold units (`metric.scale`; an accuracy drop)."""
    trend: float
    """The least-squares slope of the score against log2 of the refinement, in threshold
    units per refinement by 2, signed so that positive is better (a rising accuracy, a
    falling error) and negative worse."""
    tolerance: float
    converges: bool
    """Whether no refined score is worse than the training one by more than `tolerance`
    (in threshold units). False if a solve failed."""
    failure: str | None = None


def convergence_test(
    model: Model,
    integ: Integrator,
    x: Float[Array, "N ..."] | np.ndarray,
    y: Shaped[Array, "N ..."] | np.ndarray | None,
    *,
    metric: str | AbstractMetric = "accuracy",
    refinements: Sequence[int | float] | None = None,
    tolerance: float = 0.1,
    batch_size: int = 1000,
) -> ConvergenceTest:
    """Krishnapriyan et al.'s test: the metric against the targets at the training
    integrator and refined ones. A model of the continuous dynamics keeps its score (or
    improves it); a model that learned its training solver's discrete map loses it.

    **Arguments:**

    - `model`, `integ`: the trained model and its training integrator (a grid of steps, or
        adaptive: the tolerances are refined).
    - `x`, `y`: evaluation inputs and targets (`y=None` for a metric without targets,
        such as `"loglik"`).
    - `metric`: as in `evaluate_solver_swap` (default accuracy).
    - `refinements`: from 1, increasing: factors on the step count (default 1, 2, 4, 8,
        16) or divisors of the tolerances (default 1, 10, 100, 1000).
    - `tolerance`: the largest degradation, in the metric's threshold units (an
        accuracy drop), that still converges (default 0.1, the swap's threshold: the
        two verdicts then differ only in the solves they compare, other solvers up to
        twice the steps for the swap, the training solver refined up to 16 times here).

    **Returns:** a `ConvergenceTest`. A failed or non-finite solve is a verdict
    (`converges=False`, `failure` says which), not an error.

    **Raises:** `ValueError` for refinements that do not increase from 1 (integers for
    a grid), a tolerance that is not a finite number >= 0, no inputs, inputs and
    targets of different lengths, or an unknown metric.
    """
    metric = as_metric(metric)
    metric.check_threshold(tolerance)
    tolerances = isinstance(integ.control, Tolerances)
    default = (1, 10, 100, 1000) if tolerances else (1, 2, 4, 8, 16)
    factors = _refinements(
        default if refinements is None else refinements, integers=not tolerances
    )
    _check_inputs(x)
    check.integer("batch_size", batch_size)
    y = targets_of(metric, x, y)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs and {len(y)} targets: give one target per input")
    integrators = [refined(integ, f) for f in factors]
    settings = tuple(str(i.setting) for i in integrators)
    scale = float(metric.scale(jnp.asarray(y)))
    verdict = functools.partial(
        ConvergenceTest, metric.name, metric.higher_is_better, factors, settings
    )
    scores, nfes = [], []
    for i in integrators:
        try:
            value, nfe = score(model, i, x, y, metric=metric, batch_size=batch_size)
        except (SolveFailed, RunFailed) as e:  # a verdict: no score at this setting
            return verdict(
                tuple(scores),
                tuple(nfes),
                math.inf,
                math.nan,
                tolerance,
                False,
                str(e),
            )
        scores.append(value)
        nfes.append(nfe)
    drops = [metric.degradation(scores[0], s) / scale for s in scores[1:]]
    sign = 1.0 if metric.higher_is_better else -1.0
    trend = sign * float(np.polyfit(np.log2(factors), np.asarray(scores) / scale, 1)[0])
    worst = max(drops)
    return verdict(
        tuple(scores),
        tuple(nfes),
        worst,
        trend,
        tolerance,
        worst <= tolerance,
    )
