"""Is a density model's density a density? Its integral over the data space, which is 1
for a flow solved accurately and anything for one that only works with its solver.

- `grid_integral`: the midpoint rule on a box, for 1-D and 2-D data (FFJORD's check of
  its 1-D flows, `|1 − ∫p|`);
- `importance_integral`: `E_q[p / q]` over samples of a Gaussian proposal `q` fitted to
  the data (any dimension), with its standard error.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._integrate import Integrator
from ._swap import Model


class DensityIntegral(NamedTuple):
    """The integral of a model's density, as one estimator gave it."""

    value: float
    """`∫ p(x) dx`: 1 for a density."""
    standard_error: float
    """The estimate's standard error (0 for the grid, whose error is the quadrature's
    and the mass outside its box)."""
    method: str
    """`grid` or `importance`."""
    evaluations: int
    """Points the density was evaluated at."""

    @property
    def error(self) -> float:
        """`|1 − ∫p|`."""
        return abs(1.0 - self.value)


def _densities(
    model: Model, integ: Integrator, x: np.ndarray, batch_size: int
) -> np.ndarray:
    logliks = []
    solve = jax.jit(lambda xb: model(xb, integ)[0])
    for start in range(0, len(x), batch_size):
        logliks.append(np.asarray(solve(jnp.asarray(x[start : start + batch_size]))))
    return np.concatenate(logliks).astype(np.float64)


def grid_integral(
    model: Model,
    integ: Integrator,
    low: float | tuple[float, ...],
    high: float | tuple[float, ...],
    *,
    dims: int,
    points: int = 200,
    batch_size: int = 4096,
) -> DensityIntegral:
    """`∫ p` over the box `[low, high]^dims` by the midpoint rule on `points` cells per
    axis, `p = exp(model(x, integ))` (a model whose outputs are log-likelihoods, such as
    `odeness.CNF`). The box should hold the data's mass: what lies outside is missed.

    **Raises:** `ValueError` for `dims` other than 1 or 2, `points < 2`, or a box with
    `high <= low`.
    """
    if dims not in (1, 2):
        raise ValueError(
            f"grid_integral integrates 1-D or 2-D data, got dims={dims!r}; use "
            "importance_integral in more dimensions"
        )
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points must be an integer >= 2, got {points!r}")
    lo = np.broadcast_to(np.asarray(low, float), (dims,))
    hi = np.broadcast_to(np.asarray(high, float), (dims,))
    if np.any(hi <= lo):
        raise ValueError(f"the box needs high > low, got low={low!r}, high={high!r}")
    widths = (hi - lo) / points
    axes = [lo[i] + widths[i] * (np.arange(points) + 0.5) for i in range(dims)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dims)
    loglik = _densities(model, integ, grid.astype(np.float32), batch_size)
    value = float(np.sum(np.exp(loglik)) * np.prod(widths))
    return DensityIntegral(value, 0.0, "grid", len(grid))


def importance_integral(
    model: Model,
    integ: Integrator,
    x: Float[Array, "N d"] | np.ndarray,
    key: PRNGKeyArray,
    *,
    samples: int = 10_000,
    widen: float = 2.0,
    batch_size: int = 4096,
) -> DensityIntegral:
    """`∫ p ≈ mean(p(s) / q(s))` over `samples` draws `s` of `q`, a Gaussian with the mean
    of the data `x` and `widen` times their standard deviation per coordinate (wider
    than the data, so that `p / q` stays bounded where the data are). Unbiased for any
    `q`; its standard error is `std(p / q) / sqrt(samples)`, reported.

    **Raises:** `ValueError` for `samples < 2`, `widen <= 0`, or data that are not a
    batch of flat points.
    """
    x = np.asarray(x, float)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be a batch of flat points (N >= 2, d), got {x.shape}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    if not (math.isfinite(widen) and widen > 0):
        raise ValueError(f"widen must be a finite number > 0, got {widen!r}")
    mean, std = x.mean(0), widen * np.maximum(x.std(0), 1e-6)
    draws = mean + std * np.asarray(jax.random.normal(key, (samples, x.shape[1])))
    log_q = np.sum(
        -0.5 * ((draws - mean) / std) ** 2 - np.log(std * math.sqrt(2 * math.pi)), 1
    )
    ratios = np.exp(_densities(model, integ, draws.astype(np.float32), batch_size) - log_q)
    error = float(ratios.std(ddof=1) / math.sqrt(samples))
    return DensityIntegral(float(ratios.mean()), error, "importance", samples)
