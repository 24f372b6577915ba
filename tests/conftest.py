import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.random as jr  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def getkey():
    """A fresh PRNG key at each call, deterministic per test."""
    keys = iter(jr.split(jr.key(5678), 1000))
    return lambda: next(keys)


@pytest.fixture(scope="session")
def tiny_sphere():
    """A small concentric-spheres data set for fast training tests."""
    import odeness

    return odeness.load_dataset("sphere2", seed=0)


__all__ = ["jax"]
