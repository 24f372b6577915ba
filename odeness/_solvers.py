"""Solvers by name, the Runge--Kutta methods diffrax lacks, and NFE accounting.

This module is the one place where solver *strings* exist: `solver("rk4")` turns a name
into a `diffrax.AbstractSolver` instance at the configuration edge, and everything below
works with solver objects.
"""

from collections.abc import Callable
from typing import ClassVar

import diffrax
import numpy as np
from diffrax import AbstractERK, ButcherTableau, ThirdOrderHermitePolynomialInterpolation

from ._checks import one_of

# --- Runge--Kutta methods defined from their Butcher tableaux (as diffrax defines Bosh3).

_rk4_tableau = ButcherTableau(
    a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_error=np.zeros(4),
    c=np.array([0.5, 0.5, 1.0]),
)

_rk4_38_tableau = ButcherTableau(
    a_lower=(np.array([1 / 3]), np.array([-1 / 3, 1.0]), np.array([1.0, -1.0, 1.0])),
    b_sol=np.array([1 / 8, 3 / 8, 3 / 8, 1 / 8]),
    b_error=np.zeros(4),
    c=np.array([1 / 3, 2 / 3, 1.0]),
)

# Fehlberg's RK1(2) pair, propagating the 2nd-order solution (local extrapolation), as
# the `fehlberg2` of the authors' library. The error is the difference to the embedded
# 1st-order solution b = (1/256, 255/256, 0).
_fehlberg2_tableau = ButcherTableau(
    a_lower=(np.array([0.5]), np.array([1 / 256, 255 / 256])),
    b_sol=np.array([1 / 512, 255 / 256, 1 / 512]),
    b_error=np.array([-1 / 512, 0.0, 1 / 512]),
    c=np.array([0.5, 1.0]),
)


class RK4(AbstractERK):
    """The classic 4th-order Runge--Kutta method (c = [0, 1/2, 1/2, 1]).

    Fixed step sizes only: it has no embedded error estimate.
    """

    tableau: ClassVar[ButcherTableau] = _rk4_tableau
    interpolation_cls: ClassVar[Callable[..., ThirdOrderHermitePolynomialInterpolation]] = (
        ThirdOrderHermitePolynomialInterpolation.from_k
    )

    def order(self, terms):
        del terms
        return 4


class RK4ThreeEighths(AbstractERK):
    """Kutta's 3/8-rule 4th-order method (c = [0, 1/3, 2/3, 1], b = [1, 3, 3, 1]/8).

    This is the method the code of Ott et al. (ICLR 2021) calls `rk4`. Fixed step sizes
    only: it has no embedded error estimate.
    """

    tableau: ClassVar[ButcherTableau] = _rk4_38_tableau
    interpolation_cls: ClassVar[Callable[..., ThirdOrderHermitePolynomialInterpolation]] = (
        ThirdOrderHermitePolynomialInterpolation.from_k
    )

    def order(self, terms):
        del terms
        return 4


class Fehlberg2(AbstractERK):
    """Fehlberg's 2nd-order method with an embedded 1st-order error estimate, 3 stages.

    The `fehlberg2` adaptive solver of Ott et al. (ICLR 2021).
    """

    tableau: ClassVar[ButcherTableau] = _fehlberg2_tableau
    interpolation_cls: ClassVar[Callable[..., ThirdOrderHermitePolynomialInterpolation]] = (
        ThirdOrderHermitePolynomialInterpolation.from_k
    )

    def order(self, terms):
        del terms
        return 2


# --- Embedded error estimates for the solvers that have none (`ErrorEstimate`).

# Euler's step with Heun's as the embedded pair: the same solution as Euler; the error is
# Euler's local error estimate h/2 (f1 - f0). Heun's stage is Euler's next step (FSAL):
# one evaluation more per solve.
_euler_heun_tableau = ButcherTableau(
    a_lower=(np.array([1.0]),),
    b_sol=np.array([1.0, 0.0]),
    b_error=np.array([0.5, -0.5]),
    c=np.array([1.0]),
)


def _with_euler_error(tableau: ButcherTableau) -> ButcherTableau:
    """`tableau` with Euler's step (its first stage) as the embedded lower-order pair."""
    euler = np.zeros_like(tableau.b_sol)
    euler[0] = 1.0
    return ButcherTableau(
        a_lower=tableau.a_lower,
        b_sol=tableau.b_sol,
        b_error=tableau.b_sol - euler,
        c=tableau.c,
    )


class _EulerHeun(AbstractERK):
    tableau: ClassVar[ButcherTableau] = _euler_heun_tableau
    interpolation_cls: ClassVar[Callable[..., ThirdOrderHermitePolynomialInterpolation]] = (
        ThirdOrderHermitePolynomialInterpolation.from_k
    )

    def order(self, terms):
        del terms
        return 1


class _RK4Euler(RK4):
    tableau: ClassVar[ButcherTableau] = _with_euler_error(_rk4_tableau)


class _RK4ThreeEighthsEuler(RK4ThreeEighths):
    tableau: ClassVar[ButcherTableau] = _with_euler_error(_rk4_38_tableau)


def with_error_estimate(solver: diffrax.AbstractSolver) -> diffrax.AbstractSolver | None:
    """`solver` if it has an error estimate, else the same method with an embedded one
    (Euler with Heun's pair; classic RK4 and the 3/8 rule with Euler's step), or None."""
    if is_adaptive(solver):
        return solver
    embedded = {
        diffrax.Euler: _EulerHeun,
        RK4: _RK4Euler,
        RK4ThreeEighths: _RK4ThreeEighthsEuler,
    }
    cls = embedded.get(type(solver))
    return None if cls is None else cls()


# --- The name table: the one string boundary.

SOLVERS: dict[str, type[diffrax.AbstractSolver]] = {
    "euler": diffrax.Euler,
    "midpoint": diffrax.Midpoint,
    "heun": diffrax.Heun,
    "rk4": RK4,
    "rk4_38": RK4ThreeEighths,
    "fehlberg2": Fehlberg2,
    "bosh3": diffrax.Bosh3,
    "dopri5": diffrax.Dopri5,
    "tsit5": diffrax.Tsit5,
}


def solver(name: str) -> diffrax.AbstractSolver:
    """Return a new solver object for `name`.

    **Arguments:**

    - `name`: one of `euler`, `midpoint`, `heun`, `rk4` (classic), `rk4_38` (3/8 rule),
        `fehlberg2`, `bosh3`, `dopri5`, `tsit5`.

    **Returns:** a `diffrax.AbstractSolver` instance.

    **Raises:** `ValueError` for an unknown name.
    """
    one_of("solver", name, SOLVERS)
    return SOLVERS[name]()


def solver_name(solver: diffrax.AbstractSolver) -> str:
    """The table name of `solver` (its class name if it is not in the table)."""
    for name, cls in SOLVERS.items():
        if type(solver) is cls:
            return name
    return type(solver).__name__


def order(solver: diffrax.AbstractSolver) -> int:
    """Convergence order of `solver` for an ODE."""
    return int(solver.order(None))  # pyright: ignore[reportArgumentType]


def _tableau(solver: diffrax.AbstractSolver) -> ButcherTableau | None:
    if isinstance(solver, AbstractERK) and isinstance(solver.tableau, ButcherTableau):
        return solver.tableau
    return None


def is_adaptive(solver: diffrax.AbstractSolver) -> bool:
    """Whether `solver` has an embedded error estimate and so can adapt its step size.

    Explicit Runge--Kutta methods with an all-zero error row (RK4, the 3/8 rule) would run
    with `diffrax.PIDController` and accept every step unchecked: they count as fixed-step.
    """
    if not isinstance(solver, diffrax.AbstractAdaptiveSolver):
        return False
    tableau = _tableau(solver)
    return True if tableau is None else bool(np.any(tableau.b_error != 0))


def stages(solver: diffrax.AbstractSolver) -> int:
    """Vector-field evaluations in one step of `solver` (before any FSAL saving)."""
    tableau = _tableau(solver)
    if tableau is not None:
        return tableau.num_stages
    if isinstance(solver, diffrax.Euler):
        return 1
    raise ValueError(f"no evaluation count known for solver {type(solver).__name__}")


def is_fsal(solver: diffrax.AbstractSolver) -> bool:
    """First same as last: the last stage of a step is the first of the next."""
    tableau = _tableau(solver)
    return tableau is not None and tableau.fsal


def nfe(solver: diffrax.AbstractSolver, num_steps):
    """Vector-field evaluations of one forward solve, as diffrax 0.7 performs it.

    `num_steps` counts every attempted step (accepted and rejected). An FSAL method
    evaluates the field once at the start and `stages - 1` times per step, others
    `stages` times per step. An adaptive solve with `dt0=None` costs nothing extra: in
    diffrax 0.7.2 the PID controller's initial-step selection sees a wrapped term and
    falls back to a first step of 0.01 without evaluating the field. Checked against a
    counting vector field in `tests/test_solvers.py`.

    Backpropagation (`RecursiveCheckpointAdjoint` with one checkpoint per step) costs one
    vector-Jacobian product per forward evaluation, and re-runs the forward evaluations
    once (Euler) or twice (multi-stage methods, whose stages diffrax runs in a scan).
    """
    if is_fsal(solver):
        return 1 + (stages(solver) - 1) * num_steps
    return stages(solver) * num_steps


def backward_nfe(
    solver: diffrax.AbstractSolver,
    num_steps,
    *,
    adjoint: diffrax.AbstractAdjoint | None = None,
) -> tuple:
    """`(primal evaluations, vector-Jacobian products)` of the backward pass of a
    fixed-step solve (see `nfe`).

    With `adjoint=None`, backpropagation through the solver with one checkpoint per step:
    each forward evaluation is re-run once (Euler) or twice (multi-stage methods, whose
    stages diffrax runs in a scan), with one vector-Jacobian product each. With
    `diffrax.BacksolveAdjoint()`, the adjoint ODE solved backwards with the same solver
    and steps: one evaluation and one vector-Jacobian product per forward evaluation.
    """
    forward = nfe(solver, num_steps)
    if isinstance(adjoint, diffrax.BacksolveAdjoint):
        return forward, forward
    if adjoint is not None and not isinstance(adjoint, diffrax.RecursiveCheckpointAdjoint):
        raise ValueError(f"no function-evaluation count for adjoint {adjoint!r}")
    return forward * (1 if stages(solver) == 1 else 2), forward
