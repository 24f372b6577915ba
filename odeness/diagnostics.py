"""Why a model is (not) an ODE: crossings, folding steps, global error, fan, round trips.

An ODE flow is a diffeomorphism: trajectories of different inputs never meet, the flow map
has a positive Jacobian determinant everywhere, and integrating back from `t1` recovers
the input. A discrete network trained with a coarse solver can break each of these; the
functions here measure how (Ott et al., ICLR 2021, Sec. 3; Hairer, Nørsett & Wanner,
*Solving ODEs I*, §II.3 for Lady Windermere's fan).
"""

from fractions import Fraction
from typing import NamedTuple, cast

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._integrate import Integrator, VectorField, solve, trajectory
from ._neural_ode import AbstractODEModel
from ._solvers import solver

__all__ = [
    "count_crossings",
    "Crossings",
    "Fan",
    "global_error",
    "lady_windermere_fan",
    "nonpositive_det_fraction",
    "round_trip_error",
    "segments_intersect",
    "step_determinants",
    "StepDeterminants",
    "trajectories",
]

Inputs = Float[Array, "batch ..."] | Float[np.ndarray, "batch ..."]
"""A batch of inputs, as a JAX or NumPy array."""

ODE = AbstractODEModel | VectorField
"""What the diagnostics examine: a model that exposes its ODE (`AbstractODEModel`, e.g.
`ODEClassifier` or `NeuralODE`: its upstream layer is applied to the inputs first), or a
bare vector field `field(t, y, args)` whose inputs are the initial states."""


@eqx.filter_jit
def _initial(model: AbstractODEModel, x):
    return model.initial_state(x)


def _field_of(model: ODE) -> VectorField:
    """The vector field of `model` (itself, if it is a bare field).

    **Raises:** `ValueError` for a model that is neither an `AbstractODEModel` nor a
    vector field.
    """
    if isinstance(model, AbstractODEModel):
        return model.vector_field
    if callable(model):
        return cast(VectorField, model)
    raise ValueError(
        f"the diagnostics need an AbstractODEModel (e.g. odeness.NeuralODE) or a vector "
        f"field field(t, y, args), got {model!r}"
    )


def _ode_of(model: ODE, x: Inputs) -> tuple[VectorField, Float[Array, "batch ..."]]:
    """The vector field and the initial states of the inputs `x` (see `_field_of`)."""
    field, x = _field_of(model), jnp.asarray(x)
    return field, _initial(model, x) if isinstance(model, AbstractODEModel) else x


# --- Trajectories.


def trajectories(model: ODE, integ: Integrator, x: Inputs) -> tuple[np.ndarray, np.ndarray]:
    """The numerical iterates of `integ` through the inputs `x` (their initial states).

    **Returns:** `(ts, paths)`: times `(points,)` and states `(points, batch, ...)`, from
    `t0` through every accepted step to `t1`.
    """
    field, y0 = _ode_of(model, x)
    ts, ys, stats = _trajectory(field, integ, y0)
    valid = int(stats.num_accepted_steps) + 1
    return np.asarray(ts[:valid]), np.asarray(ys[:valid])


@eqx.filter_jit
def _trajectory(field, integ, x):
    return trajectory(field, x, integ)


# --- Crossings of 2-D polylines, with exact predicates.

_EPS = np.finfo(np.float64).eps / 2
_ORIENT_BOUND = (3.0 + 16.0 * _EPS) * _EPS  # Shewchuk's ccwerrboundA


def _orient_exact(a, b, c) -> int:
    ax, ay, bx, by, cx, cy = (Fraction(float(v)) for v in (*a, *b, *c))
    det = (ax - cx) * (by - cy) - (ay - cy) * (bx - cx)
    return (det > 0) - (det < 0)


def _orient(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Sign of the orientation of the triangles `(a, b, c)` (rows of `(K, 2)` arrays):
    +1 counter-clockwise, -1 clockwise, 0 collinear. Exact: a float64 evaluation is kept
    where its error bound proves the sign, the rest is recomputed with rationals."""
    left = (a[:, 0] - c[:, 0]) * (b[:, 1] - c[:, 1])
    right = (a[:, 1] - c[:, 1]) * (b[:, 0] - c[:, 0])
    det = left - right
    sign = np.sign(det).astype(np.int64)
    unsure = np.abs(det) <= _ORIENT_BOUND * (np.abs(left) + np.abs(right))
    for k in np.flatnonzero(unsure):
        sign[k] = _orient_exact(a[k], b[k], c[k])
    return sign


def _within_box(a, b, c) -> np.ndarray:
    """Whether `c` lies in the bounding box of `a` and `b` (exact comparisons)."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return np.all((lo <= c) & (c <= hi), axis=1)


def segments_intersect(
    p1: np.ndarray, p2: np.ndarray, p3: np.ndarray, p4: np.ndarray
) -> np.ndarray:
    """Whether the closed segments `p1p2` and `p3p4` share a point (rows of `(K, 2)`).

    Proper crossings, touching endpoints, a point on the other segment, and overlapping
    collinear segments all count; the predicates are exact for floating-point inputs.
    """
    p1, p2, p3, p4 = (
        np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in (p1, p2, p3, p4)
    )
    d1, d2 = _orient(p3, p4, p1), _orient(p3, p4, p2)
    d3, d4 = _orient(p1, p2, p3), _orient(p1, p2, p4)
    proper = (d1 * d2 < 0) & (d3 * d4 < 0)
    touch = (
        ((d1 == 0) & _within_box(p3, p4, p1))
        | ((d2 == 0) & _within_box(p3, p4, p2))
        | ((d3 == 0) & _within_box(p1, p2, p3))
        | ((d4 == 0) & _within_box(p1, p2, p4))
    )
    return proper | touch


class Crossings(NamedTuple):
    """Pairs of inputs whose trajectories meet."""

    pairs: np.ndarray
    """`(K, 2)` input indices `i < j` whose polylines intersect."""
    num_inputs: int
    points: np.ndarray
    """`(M, 2)`: where intersecting segments meet (one point per segment pair; for
    overlapping collinear segments, an endpoint of the overlap). For plots."""
    point_pairs: np.ndarray
    """`(M, 2)`: the inputs `i < j` whose segments meet at each of `points`."""

    @property
    def num_pairs(self) -> int:
        return len(self.pairs)

    @property
    def inputs_involved(self) -> np.ndarray:
        return np.unique(self.pairs)

    def points_among(self, n: int) -> np.ndarray:
        """The meeting points of trajectories that are both among the first `n` inputs
        (to mark crossings on a plot that shows only those)."""
        return self.points[np.all(self.point_pairs < n, axis=1)]

    @property
    def fraction_involved(self) -> float:
        """Fraction of inputs whose trajectory crosses at least one other."""
        return len(self.inputs_involved) / self.num_inputs


_PAIR_BATCH = 2_000_000  # candidate segment pairs tested at once


def _candidate_segment_pairs(lo: np.ndarray, hi: np.ndarray):
    """Batches of index pairs of segments whose bounding boxes overlap.

    Broad phase by sweep and prune: sort the boxes by their low end along one axis; box
    `k` can only overlap the boxes that start before it ends, a contiguous run found by
    binary search. The axis with fewer such interval overlaps is used (counted exactly
    first), each pair comes once, and pairs come in batches of about `_PAIR_BATCH`, so
    memory stays bounded.
    """
    n = len(lo)
    best = None
    for axis in (0, 1):
        order = np.argsort(lo[:, axis], kind="stable")
        reach = np.searchsorted(lo[order, axis], hi[order, axis], side="right")
        reach = reach - np.arange(n) - 1  # later boxes starting within box k's interval
        if best is None or reach.sum() < best[1].sum():
            best = (order, reach)
    assert best is not None
    order, reach = best
    done = np.concatenate([[0], np.cumsum(reach)])
    start = 0
    while start < n:
        stop = int(np.searchsorted(done, done[start] + _PAIR_BATCH, side="right")) - 1
        stop = max(stop, start + 1)
        rows = np.arange(start, stop)
        count = reach[rows]
        first = np.repeat(rows, count)
        offset = np.arange(len(first)) - np.repeat(np.cumsum(count) - count, count)
        yield _overlapping(lo, hi, order[first], order[first + 1 + offset])
        start = stop


def _overlapping(lo, hi, a, b) -> np.ndarray:
    keep = np.all((lo[a] <= hi[b]) & (lo[b] <= hi[a]), axis=1)
    return np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)[keep]


def count_crossings(
    paths: np.ndarray | Float[Array, "points batch d"], *, dims: tuple[int, int] = (0, 1)
) -> Crossings:
    """Pairs of trajectories of different inputs whose polylines intersect in 2-D.

    **Arguments:**

    - `paths`: states `(points, batch, d)` along each input's trajectory (e.g. from
        `trajectories`).
    - `dims`: the two coordinates to look at. For d > 2 this counts crossings of the
        projection onto those coordinates, which trajectories of a flow *may* show: a
        crossing in a projection is evidence of nothing by itself; only for d = 2 is a
        crossing impossible for an ODE.

    **Returns:** `Crossings` (segment–segment tests with exact predicates; touching and
    collinear overlapping segments count as meeting).
    """
    paths = np.asarray(paths, dtype=np.float64)
    if paths.ndim != 3 or paths.shape[0] < 2:
        raise ValueError(
            f"paths must have shape (points >= 2, batch, d), got {paths.shape}"
        )
    if len(dims) != 2 or not all(0 <= k < paths.shape[2] for k in dims):
        raise ValueError(
            f"dims must name two of the {paths.shape[2]} coordinates, got {dims}"
        )
    xy = paths[:, :, list(dims)]  # (P, B, 2)
    points, batch = xy.shape[:2]
    start = xy[:-1].transpose(1, 0, 2).reshape(-1, 2)  # segment k of input b: b*(P-1)+k
    end = xy[1:].transpose(1, 0, 2).reshape(-1, 2)
    owner = np.repeat(np.arange(batch), points - 1)
    found, points = [], []
    for pairs in _candidate_segment_pairs(np.minimum(start, end), np.maximum(start, end)):
        pairs = pairs[owner[pairs[:, 0]] != owner[pairs[:, 1]]]
        a, b = pairs[:, 0], pairs[:, 1]
        hit = segments_intersect(start[a], end[a], start[b], end[b])
        found.append(np.sort(np.stack([owner[a[hit]], owner[b[hit]]], axis=1), axis=1))
        points.append(
            _meeting_points(start[a[hit]], end[a[hit]], start[b[hit]], end[b[hit]])
        )
    point_pairs = np.concatenate([np.zeros((0, 2), dtype=np.int64), *found])
    inputs = np.unique(point_pairs, axis=0)
    points = np.concatenate([np.zeros((0, 2)), *points])
    return Crossings(inputs, batch, points, point_pairs)


def _meeting_points(p1, p2, p3, p4) -> np.ndarray:
    d1, d2 = p2 - p1, p4 - p3
    denom = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    safe = np.where(denom == 0, 1.0, denom)
    t = ((p3 - p1)[:, 0] * d2[:, 1] - (p3 - p1)[:, 1] * d2[:, 0]) / safe
    crossing = p1 + np.clip(t, 0, 1)[:, None] * d1
    # Parallel (collinear) segments meet at an endpoint lying on the other segment.
    on_other = _within_box(p3, p4, p1)
    collinear = np.where(on_other[:, None], p1, p3)
    return np.where((denom == 0)[:, None], collinear, crossing)


# --- Step-map invertibility.


class StepDeterminants(NamedTuple):
    """Signs and log-magnitudes of `det(∂Φ_h/∂x)` of each step at each input's iterate."""

    sign: np.ndarray
    """`(steps, batch)`: +1, 0 or -1."""
    logabsdet: np.ndarray

    @property
    def step_fraction(self) -> float:
        """Fraction of (input, step) pairs whose step map has `det <= 0`."""
        return float(np.mean(self.sign <= 0))

    @property
    def input_fraction(self) -> float:
        """Fraction of inputs with at least one step of `det <= 0`."""
        return float(np.mean(np.any(self.sign <= 0, axis=0)))


def _one_step(field, solver: diffrax.AbstractSolver, t0, t1, y):
    """One step of `solver` from `(t0, y)` to `t1` for a single input (no batch axis)."""
    term = diffrax.ODETerm(lambda t, z, args: field(t, z[None], args)[0])
    state = solver.init(term, t0, t1, y, None)
    return solver.step(term, t0, t1, y, None, state, made_jump=False)[0]


# Memory for the Jacobians computed at once. Each of a Jacobian's d rows is one
# vector-Jacobian product whose intermediates (hidden channels × d) dwarf the row itself,
# hence the generous per-entry factor.
_JACOBIAN_BUDGET_BYTES = 1 << 28
_BYTES_PER_JACOBIAN_ENTRY = 4 * 128


@eqx.filter_jit
def _step_slogdets(field, solver, ts, ys):
    steps, batch = ys.shape[0] - 1, ys.shape[1]
    size = int(np.prod(ys.shape[2:]))

    def one(item):
        t0, t1, y = item
        flat = y.ravel()

        def step(v):
            return _one_step(field, solver, t0, t1, v.reshape(y.shape)).ravel()

        return jnp.linalg.slogdet(jax.jacrev(step)(flat))

    # All (step, input) pairs, in batches that fit the memory budget.
    t0s = jnp.repeat(ts[:-1], batch)
    t1s = jnp.repeat(ts[1:], batch)
    points = ys[:-1].reshape(steps * batch, *ys.shape[2:])
    per_jacobian = _BYTES_PER_JACOBIAN_ENTRY * size * size
    chunk = max(1, min(steps * batch, _JACOBIAN_BUDGET_BYTES // per_jacobian))
    sign, logabsdet = jax.lax.map(one, (t0s, t1s, points), batch_size=chunk)
    return sign.reshape(steps, batch), logabsdet.reshape(steps, batch)


def step_determinants(model: ODE, integ: Integrator, x: Inputs) -> StepDeterminants:
    """`det(∂Φ_h/∂x)` of every step of `integ` along each input's trajectory.

    The Jacobian of one step of the solver (`x ↦ x + h f(x)` for Euler, the whole stage
    computation for Runge--Kutta methods) is computed exactly with `jax.jacrev` (diffrax
    runs the stages in a loop with a custom VJP, so forward mode is unavailable); its
    determinant with `slogdet`. An ODE flow has `det > 0`; a step with `det <= 0` folds
    space, which is what lets trajectories cross.
    """
    ts, paths = trajectories(model, integ, x)
    field = _field_of(model)
    sign, logabsdet = _step_slogdets(
        field, integ.solver, jnp.asarray(ts), jnp.asarray(paths)
    )
    return StepDeterminants(np.asarray(sign), np.asarray(logabsdet))


def nonpositive_det_fraction(model: ODE, integ: Integrator, x: Inputs) -> dict[str, float]:
    """Fractions of inputs and of (input, step) pairs where a step map has `det <= 0`."""
    dets = step_determinants(model, integ, x)
    return {"inputs": dets.input_fraction, "steps": dets.step_fraction}


# --- Global error, Lady Windermere's fan, round trip.


def _reference(steps: int) -> Integrator:
    return Integrator(solver("rk4"), steps=steps)


@eqx.filter_jit
def _final(field, integ, x):
    return solve(field, x, integ)[0]


def global_error(
    model: ODE,
    integ: Integrator,
    x: Inputs,
    reference: Integrator | None = None,
) -> np.ndarray:
    """Per input, `‖Φ_integ(y0) − Φ_ref(y0)‖` at `t1`: the global error of the training
    configuration against a fine reference solve (default: RK4, 256 steps)."""
    reference = _reference(256) if reference is None else reference
    field, y0 = _ode_of(model, x)
    diff = _final(field, integ, y0) - _final(field, reference, y0)
    return np.asarray(jnp.linalg.norm(diff.reshape(diff.shape[0], -1), axis=1))


class _Scaled(eqx.Module):
    """`dz/ds = scale · f(start + s · scale, z)`: the flow of `f` from time `start` over
    time `scale` (negative: backwards), solved on `s ∈ [0, 1]`; `(start, scale)` come
    in as `args` (traced)."""

    field: VectorField

    def __call__(self, s, z, args):
        start, scale = args
        return scale * self.field(start + s * scale, z, None)


@eqx.filter_jit
def _flow_for(field, reference, z, start, scale):
    ts, ys, _ = trajectory(_Scaled(field), z, reference, args=(start, scale))
    return ts, ys


class Fan(NamedTuple):
    """Lady Windermere's fan of one solve (Hairer, Nørsett & Wanner, §II.3)."""

    ts: np.ndarray
    """Times of the numerical iterates `(steps + 1,)`."""
    iterates: np.ndarray
    """The numerical solution `(steps + 1, batch, ...)`."""
    fan_ts: np.ndarray
    """`(steps + 1, m + 1)`: times along each exact curve, from `ts[k]` to `t1`."""
    fan: np.ndarray
    """`(steps + 1, m + 1, batch, ...)`: the exact flow started at each iterate."""

    @property
    def transported_errors(self) -> np.ndarray:
        """`(steps, batch)`: each local error carried to `t1` by the exact flow —
        `‖fan[k+1, -1] − fan[k, -1]‖`; the global error is the sum of their vectors."""
        ends = self.fan[:, -1]
        diff = (ends[1:] - ends[:-1]).reshape(ends.shape[0] - 1, ends.shape[1], -1)
        return np.linalg.norm(diff, axis=-1)


def lady_windermere_fan(
    model: ODE,
    integ: Integrator,
    x: Inputs,
    reference_steps: int = 256,
) -> Fan:
    """The exact flow (fine RK4) started from every numerical iterate of `integ`.

    The last curve starts at the numerical solution itself, the first at the input (the
    exact solution); consecutive curves differ by one local error carried to the end.
    """
    ts, paths = trajectories(model, integ, x)
    field = _field_of(model)
    reference = _reference(reference_steps)
    curves, fan_ts = [], []
    for t_k, z_k in zip(ts, paths, strict=True):
        remaining = integ.t1 - float(t_k)
        s, ys = _flow_for(
            field,
            reference,
            jnp.asarray(z_k),
            jnp.asarray(float(t_k)),
            jnp.asarray(remaining),
        )
        curves.append(np.asarray(ys))
        fan_ts.append(float(t_k) + np.asarray(s) * remaining)
    return Fan(ts, paths, np.stack(fan_ts), np.stack(curves))


def round_trip_error(
    model: ODE,
    integ: Integrator,
    x: Inputs,
    reference: Integrator | None = None,
) -> np.ndarray:
    """Per input, `‖ỹ0 − y0‖ / ‖y0‖` for the initial state `y0`: integrate `t0 → t1`
    with `integ`, then back `t1 → t0` with a fine solver (default: RK4, 256 steps). Near
    0 for an ODE flow solved accurately; large where the forward solve is not the flow
    of the field."""
    reference = _reference(256) if reference is None else reference
    field, x = _ode_of(model, x)
    forward = _final(field, integ, x)
    length = jnp.asarray(-(integ.t1 - integ.t0))
    _, ys = _flow_for(field, reference, forward, jnp.asarray(integ.t1), length)
    back = ys[reference.steps]
    err = jnp.linalg.norm((back - x).reshape(x.shape[0], -1), axis=1)
    return np.asarray(err / jnp.linalg.norm(x.reshape(x.shape[0], -1), axis=1))
