"""Concentric spheres (Ott et al., ICLR 2021): three shells, labels 0, 1, 0."""

import numpy as np

SHELLS = ((0.10, 0.15), (0.25, 0.30), (0.40, 0.45))
"""(r_min, r_max) of the inner, middle and outer shell."""
LABELS = (0, 1, 0)


def concentric_spheres(
    num_points: int, dim: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sample `num_points` points of the three-shell data set in `R^dim`.

    The shells hold N/4, N/2 and N/4 points (two balanced classes). A point's radius is
    `(r_max - r_min) u^(1/d) + r_min` with `u ~ U[0, 1]`, its direction a normalised
    Gaussian. Returns `(x, y)`: float32 `(N, dim)` and int32 `(N,)`, in random order.
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim!r}")
    if num_points < 4:
        raise ValueError(f"num_points must be >= 4, got {num_points!r}")
    counts = (num_points // 4, num_points - 2 * (num_points // 4), num_points // 4)
    xs, ys = [], []
    for (r_min, r_max), label, count in zip(SHELLS, LABELS, counts, strict=True):
        direction = rng.standard_normal((count, dim))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        radius = (r_max - r_min) * rng.uniform(size=(count, 1)) ** (1.0 / dim) + r_min
        xs.append(radius * direction)
        ys.append(np.full(count, label))
    order = rng.permutation(num_points)
    x = np.concatenate(xs)[order].astype(np.float32)
    y = np.concatenate(ys)[order].astype(np.int32)
    return x, y
