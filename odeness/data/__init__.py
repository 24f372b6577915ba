"""Data sets: `odeness.load_dataset(name, ...)` returns host (NumPy) arrays.

Besides the loader, this namespace holds the generators of the synthetic sets
(`concentric_spheres`, `three_minima`, the 2-D densities of `DENSITIES`) and the
tensorflow-datasets builders of the image sets (`prepare`, `load_split`, `OdenessMnist`,
`OdenessFashionMnist`, `OdenessCifar10`),
which are imported (with tensorflow-datasets) only when first used.
"""

import functools
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ._densities import DENSITIES
from ._spheres import concentric_spheres
from ._three_minima import three_minima

if TYPE_CHECKING:  # imported when first used (`__getattr__`): they import tfds
    from ._images import (
        OdenessCifar10,
        OdenessFashionMnist,
        OdenessMnist,
        load_split,
        prepare,
    )


class Dataset(NamedTuple):
    """A data set: NumPy arrays on the host (float32 x, int32 labels). A density's points
    are unlabelled: `num_classes` is 0 and the labels are zeros (`unlabelled`)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def unlabelled(self) -> bool:
        """Points of a density, to be modelled by a flow (`odeness.CNF`)."""
        return self.num_classes == 0


def _spheres(dim: int, *, seed: int, num_train: int = 2000, num_test: int = 1000, **_):
    train_rng, test_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, dim]).spawn(2)
    )
    x_train, y_train = concentric_spheres(num_train, dim, train_rng)
    x_test, y_test = concentric_spheres(num_test, dim, test_rng)
    return Dataset(x_train, y_train, x_test, y_test, num_classes=2)


@functools.lru_cache(maxsize=4)
def _three_minima(*, seed: int, num_train: int = 2000, num_test: int = 1000, **_):
    # Cached: generating integrates every particle for 5,000 RK4 steps.
    train_rng, test_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, 3]).spawn(2)
    )
    x_train, y_train = three_minima(num_train, train_rng)
    x_test, y_test = three_minima(num_test, test_rng)
    for array in (x_train, y_train, x_test, y_test):
        array.flags.writeable = False
    return Dataset(x_train, y_train, x_test, y_test, num_classes=3)


def _density(name: str, *, seed: int, num_train: int = 10_000, num_test: int = 2000, **_):
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 2]).spawn(2)]
    x_train, x_test = (
        DENSITIES[name](n, rng).astype(np.float32)
        for n, rng in zip((num_train, num_test), rngs, strict=True)
    )
    zeros = [np.zeros(len(x), np.int32) for x in (x_train, x_test)]
    return Dataset(x_train, zeros[0], x_test, zeros[1], num_classes=0)


def _load_images(name: str, *, data_dir=None, cache_dir=None, **_) -> Dataset:
    from . import _images as images  # tfds is imported only for the image data sets

    builder = images.prepare(name, archive_dir=data_dir, cache_dir=cache_dir)
    x_train, y_train = images.load_split(builder, "train")
    x_test, y_test = images.load_split(builder, "test")
    return Dataset(x_train, y_train, x_test, y_test, num_classes=builder.NUM_CLASSES)


DATASETS: dict[str, Callable[..., Dataset]] = {
    **{f"sphere{d}": partial(_spheres, d) for d in (2, 3, 10, 900)},
    "three_minima": _three_minima,
    **{name: partial(_density, name) for name in DENSITIES},
    **{name: partial(_load_images, name) for name in ("mnist", "fashion_mnist", "cifar10")},
}


def check_dataset(name: str) -> None:
    """**Raises:** `ValueError` unless `name` is a data set of `DATASETS`."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    data_dir: str | None = None,
    cache_dir: str | None = None,
) -> Dataset:
    """Load the data set `name`.

    **Arguments:**

    - `name`: `sphere2`, `sphere3`, `sphere10` or `sphere900` (concentric spheres in that
        many dimensions: 2,000 training and 1,000 test points); `three_minima` (2-D
        initial states of a damped particle, 3 classes: 2,000 / 1,000); `ring8`,
        `moons`, `checkerboard` or `pinwheel` (2-D densities of the flow papers,
        unlabelled: 10,000 / 2,000 points); `mnist`,
        `fashion_mnist` (60,000 / 10,000 images 28 × 28 × 1) or `cifar10` (50,000 /
        10,000 images 32 × 32 × 3), float32 in [0, 1], channels last, not normalised.
    - `seed`: seeds generated data sets; the same seed gives the same arrays.
    - `data_dir`: for the image sets, a folder holding the official archives (default:
        `$ODENESS_MNIST_DIR`, `$ODENESS_FASHION_MNIST_DIR` or `$ODENESS_CIFAR10_DIR`;
        without one they are downloaded). Only used to prepare: a prepared set is read
        from `cache_dir`.
    - `cache_dir`: the tensorflow-datasets folder for prepared data (default:
        `$ODENESS_TFDS_DIR`, else tfds's default `$TFDS_DATA_DIR` or
        `~/tensorflow_datasets`).

    **Returns:** a `Dataset`.

    **Raises:** `ValueError` for an unknown name or a wrong or corrupt archive;
    `FileNotFoundError` for a missing archive when there is no network.
    """
    check_dataset(name)
    return DATASETS[name](seed=seed, data_dir=data_dir, cache_dir=cache_dir)


_IMAGE_NAMES = (
    "prepare",
    "load_split",
    "OdenessMnist",
    "OdenessFashionMnist",
    "OdenessCifar10",
)


def __getattr__(name: str):
    # The image builders import tensorflow-datasets: only when one is asked for.
    if name in _IMAGE_NAMES:
        from . import _images

        return getattr(_images, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_IMAGE_NAMES})


__all__ = [
    "concentric_spheres",
    "DENSITIES",
    "load_split",
    "OdenessCifar10",
    "OdenessFashionMnist",
    "OdenessMnist",
    "prepare",
    "three_minima",
]
