import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeness
from odeness._models import Linear
from odeness.diagnostics import segments_intersect


def seg(*coords):
    return np.array(coords, dtype=np.float64).reshape(1, 2)


@pytest.mark.parametrize(
    "p1, p2, p3, p4, expected",
    [
        ((0, 0), (1, 1), (0, 1), (1, 0), True),  # proper X
        ((0, 0), (1, 0), (0, 1), (1, 1), False),  # parallel, apart
        ((0, 0), (2, 0), (1, 0), (3, 0), True),  # collinear, overlapping
        ((0, 0), (1, 0), (2, 0), (3, 0), False),  # collinear, disjoint
        ((0, 0), (1, 0), (1, 0), (2, 5), True),  # touching at an endpoint
        ((0, 0), (2, 0), (1, 0), (1, 3), True),  # T-junction: endpoint on the segment
        ((0, 0), (2, 0), (1, 1e-300), (1, 3), False),  # just above: exact arithmetic
        ((0, 0), (2, 0), (1, 0), (1, 0), True),  # a degenerate segment (a point) on it
        ((0.1, 0.1), (0.3, 0.3), (0.2, 0.2 + 2**-50), (0.4, 0.4), False),  # near-collinear
        ((0.1, 0.1), (0.3, 0.3), (0.3, 0.3), (0.7, 0.1), True),  # shared float endpoint
    ],
)
def test_segments_intersect(p1, p2, p3, p4, expected):
    assert bool(segments_intersect(seg(*p1), seg(*p2), seg(*p3), seg(*p4))[0]) is expected
    # Symmetric in the two segments and in each segment's direction.
    assert bool(segments_intersect(seg(*p4), seg(*p3), seg(*p2), seg(*p1))[0]) is expected


def test_count_crossings_on_hand_made_polylines():
    # Inputs 0 and 1 cross; 2 runs beside 0 without touching; 3 is far away.
    paths = np.array(
        [
            [[0.0, 0.0], [1.0, 1.0], [2.0, 1.0]],
            [[0.0, 1.0], [1.0, 0.0], [2.0, 0.0]],
            [[0.0, 2.0], [1.0, 3.0], [2.0, 3.0]],
            [[5.0, 5.0], [6.0, 5.0], [7.0, 5.0]],
        ]
    ).transpose(1, 0, 2)  # (points, batch, 2)
    crossings = odeness.diagnostics.count_crossings(paths)
    assert crossings.pairs.tolist() == [[0, 1]]
    assert crossings.num_pairs == 1 and crossings.fraction_involved == 0.5
    np.testing.assert_allclose(crossings.points, [[0.5, 0.5]])
    assert crossings.point_pairs.tolist() == [[0, 1]]
    assert len(crossings.points_among(2)) == 1 and len(crossings.points_among(1)) == 0
    parallel = paths.copy()
    parallel[:, 1, 1] += 5.0
    assert odeness.diagnostics.count_crossings(parallel).num_pairs == 0


@pytest.mark.parametrize("spread", ["uniform", "mixed"])
def test_count_crossings_matches_brute_force_on_random_paths(spread):
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(6, 40, 2)) * 0.2
    if spread == "mixed":  # tiny steps beside a few long ones, as in a trained flow
        steps *= 10.0 ** rng.integers(-4, 2, size=(6, 40, 1))
    paths = np.cumsum(steps, axis=0)
    found = {tuple(p) for p in odeness.diagnostics.count_crossings(paths).pairs.tolist()}
    brute = set()
    for i in range(40):
        for j in range(i + 1, 40):
            for a in range(5):
                hit = segments_intersect(
                    np.repeat(paths[a, i][None], 5, 0),
                    np.repeat(paths[a + 1, i][None], 5, 0),
                    paths[:-1, j],
                    paths[1:, j],
                )
                if hit.any():
                    brute.add((i, j))
                    break
    assert found == brute and len(found) > 0


def test_count_crossings_rejects_bad_shapes():
    with pytest.raises(ValueError, match="paths must have shape"):
        odeness.diagnostics.count_crossings(np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="dims must name two of the 2 coordinates"):
        odeness.diagnostics.count_crossings(np.zeros((3, 3, 2)), dims=(0, 2))


class LinearField(eqx.Module):
    a: jax.Array

    def __call__(self, t, y, args=None):
        return y @ self.a.T


def linear_model(a) -> odeness.ODEClassifier:
    return odeness.ODEClassifier(
        LinearField(jnp.asarray(a, dtype=jnp.float32)), Linear(2, 2, key=jax.random.key(0))
    )


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 8])
def test_euler_step_determinant_is_det_of_i_plus_h_a(steps):
    # det(I + hA) = (1 - 4h)(1 - h) for A = diag(-4, -1): negative for 1/4 < h < 1.
    model = linear_model([[-4.0, 0.0], [0.0, -1.0]])
    x = jnp.array([[0.3, -0.2], [1.0, 2.0]])
    integ = odeness.Integrator(odeness.solver("euler"), steps=steps)
    dets = odeness.diagnostics.step_determinants(model, integ, x)
    h = 1 / steps
    det = (1 - 4 * h) * (1 - h)
    assert dets.sign.shape == (steps, 2)
    assert np.all(dets.sign == np.sign(det))
    if det != 0:
        np.testing.assert_allclose(dets.logabsdet, math.log(abs(det)), rtol=1e-5)
    frac = odeness.diagnostics.nonpositive_det_fraction(model, integ, x)
    assert frac == {"inputs": float(det <= 0), "steps": float(det <= 0)}


def test_rk4_step_determinant_of_a_linear_field():
    # One RK4 step of y' = a y multiplies by the degree-4 Taylor polynomial of e^{ha}.
    model = linear_model([[-3.0, 0.0], [0.0, 0.5]])
    integ = odeness.Integrator(odeness.solver("rk4"), steps=1)
    dets = odeness.diagnostics.step_determinants(model, integ, jnp.ones((1, 2)))
    taylor = lambda z: 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24  # noqa: E731
    np.testing.assert_allclose(
        dets.logabsdet, math.log(abs(taylor(-3) * taylor(0.5))), rtol=1e-5
    )


def test_round_trip_and_global_error_of_an_exactly_solvable_ode():
    a, n = 1.5, 4
    model = linear_model([[a, 0.0], [0.0, a]])
    x = jnp.array([[0.5, -1.0], [2.0, 0.25]])
    integ = odeness.Integrator(odeness.solver("euler"), steps=n)
    euler = (1 + a / n) ** n
    rt = odeness.diagnostics.round_trip_error(model, integ, x)
    np.testing.assert_allclose(rt, abs(math.exp(-a) * euler - 1), rtol=1e-4)
    ge = odeness.diagnostics.global_error(model, integ, x)
    np.testing.assert_allclose(
        ge, abs(euler - math.exp(a)) * np.linalg.norm(x, axis=1), rtol=1e-4
    )
    fine = odeness.Integrator(odeness.solver("rk4"), steps=64)
    assert np.all(odeness.diagnostics.round_trip_error(model, fine, x) < 1e-5)


def test_lady_windermere_fan_telescopes_to_the_global_error():
    a, n = -2.0, 3
    model = linear_model([[a, 0.0], [0.0, 0.5 * a]])
    x = jnp.array([[1.0, 1.0]])
    integ = odeness.Integrator(odeness.solver("euler"), steps=n)
    fan = odeness.diagnostics.lady_windermere_fan(model, integ, x)
    assert fan.iterates.shape == (n + 1, 1, 2) and fan.fan.shape[:2] == (n + 1, 257)
    np.testing.assert_allclose(fan.fan_ts[:, -1], 1.0, rtol=1e-6)
    np.testing.assert_allclose(fan.fan_ts[:, 0], fan.ts, rtol=1e-6)
    # The first curve is the exact solution, the last starts at the numerical solution.
    np.testing.assert_allclose(fan.fan[0, -1], np.exp([a, 0.5 * a]) * x, rtol=1e-4)
    np.testing.assert_allclose(fan.fan[-1, -1], fan.iterates[-1], rtol=1e-6)
    # Transported local errors add up (as vectors) to the global error.
    total = fan.fan[-1, -1] - fan.fan[0, -1]
    steps = np.diff(fan.fan[:, -1], axis=0).sum(axis=0)
    np.testing.assert_allclose(steps, total, rtol=1e-5)
    assert fan.transported_errors.shape == (n, 1)


def test_trajectories_through_a_model():
    model = linear_model([[0.0, -1.0], [1.0, 0.0]])  # rotation
    ts, paths = odeness.diagnostics.trajectories(
        model, odeness.Integrator(odeness.solver("euler"), steps=5), jnp.ones((3, 2))
    )
    np.testing.assert_allclose(ts, np.linspace(0, 1, 6), rtol=1e-6)
    assert paths.shape == (6, 3, 2)
    np.testing.assert_allclose(paths[0], 1.0)
