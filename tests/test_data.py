import numpy as np
import pytest

import odeness
from odeness.data.spheres import SHELLS


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


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'sphere4'; expected one of"):
        odeness.load_dataset("sphere4")
