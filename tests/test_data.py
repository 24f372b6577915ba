import numpy as np
import pytest

import odeness
from odeness.data._spheres import SHELLS
from odeness.data._three_minima import label_states as three_minima_labels, minima


@pytest.mark.parametrize("dim", [2, 3, 10, 900])
def test_concentric_spheres(dim):
    data = odeness.load_dataset(f"sphere{dim}", seed=3)
    assert data.x_train.shape == (2000, dim) and data.x_test.shape == (1000, dim)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    assert data.num_classes == 2 and data.input_shape == (dim,)
    for x, y, n in ((data.x_train, data.y_train, 2000), (data.x_test, data.y_test, 1000)):
        r = np.linalg.norm(x, axis=1)
        shell = np.full(n, -1)
        for i, (lo, hi) in enumerate(SHELLS):
            shell[(r >= lo - 1e-6) & (r <= hi + 1e-6)] = i
        assert np.all(shell >= 0), "every point lies in a shell"
        assert np.bincount(shell).tolist() == [n // 4, n // 2, n // 4]
        assert np.array_equal(y, (shell == 1).astype(np.int32))


def test_spheres_are_deterministic_in_the_seed():
    a, b = odeness.load_dataset("sphere2", seed=1), odeness.load_dataset("sphere2", seed=1)
    c = odeness.load_dataset("sphere2", seed=2)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_train[:1000], a.x_test)


def test_radius_distribution_is_uniform_in_volume():
    # r = (r_max - r_min) u^(1/d) + r_min: the median of u^(1/d) is 0.5^(1/d).
    data = odeness.load_dataset("sphere10", seed=0)
    r = np.linalg.norm(data.x_train, axis=1)
    lo, hi = SHELLS[1]
    middle = (r[data.y_train == 1] - lo) / (hi - lo)
    assert np.median(middle) == pytest.approx(0.5 ** (1 / 10), abs=0.02)


def test_three_minima():
    data = odeness.load_dataset("three_minima", seed=0)
    assert data.x_train.shape == (2000, 2) and data.x_test.shape == (1000, 2)
    assert data.num_classes == 3 and data.y_train.dtype == np.int32
    x, v = data.x_train[:, 0], data.x_train[:, 1]
    assert x.min() >= -1 and x.max() <= 2 and v.min() >= -2 and v.max() <= 2
    assert set(np.unique(data.y_train)) == {0, 1, 2}
    np.testing.assert_allclose(minima(), [-0.850, 0.269, 1.839], atol=1e-3)
    # A particle at rest at a minimum stays there: labelled by that minimum.
    rest = np.stack([minima(), np.zeros(3)], axis=1).astype(np.float32)
    at_rest = three_minima_labels(rest)
    assert at_rest.tolist() == [0, 1, 2]
    # Deterministic in the seed, fresh arrays for another seed.
    again = odeness.load_dataset("three_minima", seed=0)
    np.testing.assert_array_equal(again.y_test, data.y_test)
    other = odeness.load_dataset("three_minima", seed=1)
    assert not np.array_equal(other.x_train, data.x_train)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'sphere4'; expected one of"):
        odeness.load_dataset("sphere4")
