"""Datasets by name: `load_dataset(name, ...)` returns host (NumPy) arrays."""

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np

from .spheres import concentric_spheres


class Dataset(NamedTuple):
    """A classification data set: NumPy arrays on the host (float32 x, int32 labels)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _spheres(
    dim: int, *, seed: int, num_train: int = 2000, num_test: int = 1000, data_dir=None
) -> Dataset:
    del data_dir
    train_rng, test_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, dim]).spawn(2)
    )
    x_train, y_train = concentric_spheres(num_train, dim, train_rng)
    x_test, y_test = concentric_spheres(num_test, dim, test_rng)
    return Dataset(x_train, y_train, x_test, y_test, num_classes=2)


DATASETS: dict[str, Callable[..., Dataset]] = {
    f"sphere{d}": partial(_spheres, d) for d in (2, 3, 10, 900)
}


def load_dataset(name: str, *, seed: int = 0, data_dir: str | None = None) -> Dataset:
    """Load the data set `name`.

    **Arguments:**

    - `name`: `sphere2`, `sphere3`, `sphere10` or `sphere900` (concentric spheres in that
        many dimensions: 2,000 training and 1,000 test points).
    - `seed`: seeds generated data sets; the same seed gives the same arrays.
    - `data_dir`: where prepared or downloaded data lives (file-based data sets).

    **Returns:** a `Dataset`.

    **Raises:** `ValueError` for an unknown name.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name](seed=seed, data_dir=data_dir)
