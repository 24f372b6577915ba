"""Generated 2-D densities of the continuous-normalising-flow papers (FFJORD, RNODE): a
ring of eight Gaussians, two moons, a checkerboard and a pinwheel, as their code
generates them (points of order 1 to 4)."""

from collections.abc import Callable

import numpy as np


def ring(n: int, rng: np.random.Generator) -> np.ndarray:
    """Eight Gaussians (std 0.5 before scaling) centred on a circle of radius 4,
    everything scaled by 1/√2."""
    angles = rng.integers(0, 8, n) * (np.pi / 4)
    centres = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return (centres + 0.5 * rng.standard_normal((n, 2))) / 1.414


def moons(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two interleaved half circles with Gaussian noise (std 0.1), scaled by 2 and
    shifted by (−1, −0.2)."""
    upper = rng.random(n) < 0.5
    angle = np.pi * rng.random(n)
    x = np.where(upper, np.cos(angle), 1.0 - np.cos(angle))
    y = np.where(upper, np.sin(angle), 0.5 - np.sin(angle))
    points = np.stack([x, y], axis=1) + 0.1 * rng.standard_normal((n, 2))
    return points * 2.0 + np.array([-1.0, -0.2])


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the eight black squares of a 4 × 4 board on [−4, 4]²."""
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - rng.integers(0, 2, n) * 2.0 + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1) * 2.0


def pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    """Five arms: Gaussian blobs (radial std 0.3, tangential 0.1) at radius 1, each
    point rotated by its arm's angle plus 0.25 e^{radius}, scaled by 2."""
    arm = rng.integers(0, 5, n)
    features = rng.standard_normal((n, 2)) * np.array([0.3, 0.1]) + np.array([1.0, 0.0])
    angle = arm * (2 * np.pi / 5) + 0.25 * np.exp(features[:, 0])
    cos, sin = np.cos(angle), np.sin(angle)
    rotated = np.stack(
        [
            features[:, 0] * cos - features[:, 1] * sin,
            features[:, 0] * sin + features[:, 1] * cos,
        ],
        axis=1,
    )
    return 2.0 * rotated


DENSITIES: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "ring8": ring,
    "moons": moons,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
}
"""The generated densities, by the name `odeness.load_dataset` gives them."""
