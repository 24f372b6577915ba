"""The cheapest faithful solver: once a model is an ODE, which solver should it run with?

Among candidate solvers and step counts (or tolerances), the one with the fewest
vector-field evaluations whose outputs lie within `within` (relative RMS) of a converged
reference solve of the same model; measured wall time breaks ties and is reported. A
model that is not an ODE has no converged answer to be faithful to: `cheapest_solver`
refuses it when its solver swap says so.
"""

import math
import time
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from jaxtyping import Array, Float

from . import _checks as check
from ._control import AbstractGrid, Steps, Tolerances
from ._convergence import relative_rms, solve_outputs
from ._errors import RunFailed
from ._integrate import EVALUATION_MAX_STEPS, Integrator
from ._solvers import RK4, solver
from ._swap import Model, SwapResult

CANDIDATE_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""The step counts of the default candidates on a grid of steps."""
CANDIDATE_TOLERANCES = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
"""The tolerances (rtol = atol) of the default dopri5 candidates."""


def default_candidates(t0: float = 0.0, t1: float = 1.0) -> tuple[Integrator, ...]:
    """Euler, midpoint and classic RK4 at `CANDIDATE_STEPS`, and dopri5 at
    `CANDIDATE_TOLERANCES`, on `[t0, t1]`."""
    bound = max(EVALUATION_MAX_STEPS, max(CANDIDATE_STEPS))
    grids = tuple(
        Integrator(solver(name), Steps(n), t0=t0, t1=t1, max_steps=bound)
        for name in ("euler", "midpoint", "rk4")
        for n in CANDIDATE_STEPS
    )
    adaptive = tuple(
        Integrator(solver("dopri5"), Tolerances(tol), t0=t0, t1=t1)
        for tol in CANDIDATE_TOLERANCES
    )
    return grids + adaptive


class Candidate(NamedTuple):
    """One candidate integrator, measured."""

    setting: str
    integrator: Integrator
    nfe: float
    """Vector-field evaluations of one forward pass (mean over batches); nan if the
    solve failed."""
    seconds: float
    """Wall time of one pass over all the inputs, compiled (the median of `repeats`)."""
    distance: float
    """Relative RMS distance of its outputs from the reference's (inf if it failed)."""
    faithful: bool
    """Whether `distance <= within`."""


class CheapestSolver(NamedTuple):
    """What `cheapest_solver` measured, and what it chose."""

    chosen: Candidate | None
    """The faithful candidate with the fewest evaluations (then the fastest); None if no
    candidate is faithful."""
    candidates: tuple[Candidate, ...]
    reference: str
    within: float

    def find(self, name: str) -> Candidate:
        """The candidate called `name` (e.g. `dopri5 at tol 1e-6`).

        **Raises:** `KeyError` if there is none."""
        for c in self.candidates:
            if c.setting == name:
                return c
        raise KeyError(f"no candidate {name!r}")

    def speedup(self, name: str) -> float:
        """Wall time of the candidate `name` over the chosen one's (> 1: the chosen one
        is faster).

        **Raises:** `ValueError` if nothing was chosen; `KeyError` for an unknown name."""
        if self.chosen is None:
            raise ValueError("no candidate is within the tolerance; nothing was chosen")
        return self.find(name).seconds / self.chosen.seconds


def _check_ode(swap: SwapResult | None, threshold: float, force: bool) -> None:
    if swap is None:
        warnings.warn(
            "cheapest_solver: the model's ODE-ness is not checked; pass "
            "swap=odeness.evaluate_solver_swap(...) to refuse a model that is not an ODE",
            stacklevel=3,
        )
        return
    if swap.is_ode(threshold):
        return
    message = (
        f"the model is not an ODE under the solver swap (trained with "
        f"{swap.train.setting}: max gap {swap.relative_gap:.3g} > threshold "
        f"{threshold:g}): no solver gives its converged answer"
    )
    if not force:
        raise ValueError(f"{message}; pass force=True to search anyway")
    warnings.warn(message, stacklevel=3)


def _timed(model: Model, integ: Integrator, x, batch_size: int, repeats: int):
    solved = solve_outputs(model, integ, x, batch_size)  # compiles
    if solved.failure is not None:
        return solved, math.inf
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        solve_outputs(model, integ, x, batch_size)
        times.append(time.perf_counter() - start)
    return solved, float(np.median(times))


def cheapest_solver(
    model: Model,
    x: Float[Array, "N ..."] | np.ndarray,
    *,
    within: float,
    candidates: Sequence[Integrator] | None = None,
    reference: Integrator | None = None,
    swap: SwapResult | None = None,
    threshold: float = 0.1,
    force: bool = False,
    repeats: int = 3,
    batch_size: int = 1000,
) -> CheapestSolver:
    """The candidate integrator with the fewest function evaluations whose outputs are
    within `within` (relative RMS) of a converged reference solve of the same model.

    **Arguments:**

    - `model`: the trained model, `model(x, integ) -> (outputs, stats)`.
    - `x`: inputs to compare the outputs on.
    - `within`: the largest relative RMS distance from the reference that counts as
        the same answer (e.g. 1e-3).
    - `candidates`: the integrators to choose from (default: `default_candidates` on
        `[0, 1]`; give your own for another interval).
    - `reference`: the converged solve (default: classic RK4 at twice the most steps
        among the candidates, at least 1,024, on their interval).
    - `swap`: the model's solver swap (`evaluate_solver_swap`): a model that is not an
        ODE under it (`max gap > threshold`) is refused, or with `force=True` searched
        with a warning. Without it, a warning says that ODE-ness was not checked.
    - `repeats`: timed passes per candidate after its compiled one (median reported).

    **Returns:** a `CheapestSolver`: every candidate's NFE, wall time and distance, and
    the chosen one (None if no candidate is within `within`).

    **Raises:** `ValueError` for `within` not a finite number > 0, an empty candidate
    list, no inputs, a model that is not an ODE under `swap` (without `force`);
    `odeness.errors.RunFailed` if the reference solve fails or is not finite.
    """
    check.positive("within", within)
    candidates = default_candidates() if candidates is None else tuple(candidates)
    if not candidates:
        raise ValueError("candidates is empty; give at least one integrator")
    if len(x) == 0:
        raise ValueError("cannot choose a solver on no inputs")
    check.integer("repeats", repeats)
    _check_ode(swap, threshold, force)
    if reference is None:
        grids = [c.steps for c in candidates if isinstance(c.control, AbstractGrid)]
        steps = max(1024, 2 * max(grids, default=512))
        first = candidates[0]
        reference = Integrator(
            RK4(), Steps(steps), t0=first.t0, t1=first.t1, max_steps=max(steps, 4096)
        )
    ref = solve_outputs(model, reference, x, batch_size)
    if ref.failure is not None:
        raise RunFailed(f"the reference solve has no answer: {ref.failure}")
    assert ref.outputs is not None
    measured = []
    for integ in candidates:
        solved, seconds = _timed(model, integ, x, batch_size, repeats)
        distance = (
            math.inf
            if solved.outputs is None
            else relative_rms(solved.outputs, ref.outputs)
        )
        measured.append(
            Candidate(
                str(integ.setting), integ, solved.nfe, seconds, distance, distance <= within
            )
        )
    faithful = [c for c in measured if c.faithful]
    chosen = min(faithful, key=lambda c: (c.nfe, c.seconds)) if faithful else None
    return CheapestSolver(chosen, tuple(measured), str(reference.setting), within)
