"""Three minima (Ott et al., ICLR 2021): where a damped particle in a six-degree potential
comes to rest. A classification task generated from an ODE.

The particle follows `x' = v, v' = -V'(x) - γ v` with `γ = 0.2` in
`V(x) = 0.2 (x - 2)(x - 0.5)(x + 1)(x + 0.6)(x - 1.6) x`, which has minima near
x ≈ -0.850, 0.269 and 1.839; an input is the initial state `(x, v)`, `x ~ U[-1, 2]`,
`v ~ U[-2, 2]`, and its label the minimum nearest to `x(100)` (RK4, step 0.02).
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._integrate import Integrator, solve
from .._solvers import solver

POTENTIAL = np.polynomial.Polynomial.fromroots([2.0, 0.5, -1.0, -0.6, 1.6, 0.0]) * 0.2
"""`V`, as a NumPy polynomial."""
DAMPING = 0.2
T_END = 100.0
DT = 0.02


def minima() -> np.ndarray:
    """The local minima of `V`, ascending."""
    slope, curvature = POTENTIAL.deriv(), POTENTIAL.deriv(2)
    roots = slope.roots()
    real = np.sort(roots[np.abs(roots.imag) < 1e-9].real)
    return real[curvature(real) > 0]


class DampedParticle(eqx.Module):
    """The vector field `(x, v) ↦ (v, -V'(x) - γ v)`."""

    slope: tuple[float, ...] = tuple(POTENTIAL.deriv().coef.tolist())
    damping: float = DAMPING

    def __call__(
        self, t, y: Float[Array, "*batch 2"], args=None
    ) -> Float[Array, "*batch 2"]:
        del t, args
        x, v = y[..., 0], y[..., 1]
        force = -jnp.polyval(jnp.asarray(self.slope[::-1]), x)
        return jnp.stack([v, force - self.damping * v], axis=-1)


def three_minima(
    num_points: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sample `num_points` initial states and label each by the minimum it comes to rest
    in. Returns `(x, y)`: float32 `(N, 2)` and int32 `(N,)` in 0, 1, 2."""
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points!r}")
    x0 = rng.uniform(-1.0, 2.0, num_points)
    v0 = rng.uniform(-2.0, 2.0, num_points)
    states = np.stack([x0, v0], axis=1).astype(np.float32)
    return states, label_states(states)


def label_states(states: Float[np.ndarray, "batch 2"]) -> np.ndarray:
    """The minimum (0, 1, 2, left to right) nearest to where each initial state `(x, v)`
    is at t = 100 (RK4, step 0.02)."""
    integ = Integrator(solver("rk4"), steps=round(T_END / DT), t1=T_END)
    final, _ = eqx.filter_jit(solve)(DampedParticle(), jnp.asarray(states), integ)
    rest = np.asarray(final[:, 0])
    return np.argmin(np.abs(rest[:, None] - minima()[None, :]), axis=1).astype(np.int32)
