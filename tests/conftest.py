import gc
import os
from pathlib import Path

# A test worker's heap grows large (traced and compiled programs, JAX's caches), and each
# of Python's full collections then scans all of it: at the default threshold (10) they
# took a fifth of the tests' time (18 s of 100 s in test_solvers, test_adapt and
# test_regularisers, measured with `gc.callbacks`). Young objects are still collected as
# usual; full collections come at most a hundredth as often (26 became 2 there).
gc.set_threshold(700, 10, 1000)

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The tests are compile-bound (many small programs, few iterations each): without LLVM's
# optimisation passes, and with XLA:CPU's classic elemental emitters in place of its MLIR
# fusion emitters, XLA compiles them in less than half the time. The programs compute
# the same; results can differ in float rounding (`test_docs.py` allows for it).
# (Both are flags of the XLA in jaxlib 0.10, the version pyproject.toml pins; XLA aborts
# on a flag it does not know.)
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false",
)
# Many tests (and the scripts they start as subprocesses) compile the same programs: one
# persistent compilation cache, shared by the pytest workers of a run and kept between
# runs, compiles each once. A cached program is the program XLA compiled; results do
# not change.
_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

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


@pytest.fixture
def offline(monkeypatch):
    """No network, whatever the machine: a download is never attempted."""
    from odeness.data import _images as images

    monkeypatch.setattr(images, "_reachable", lambda url, timeout=5.0: False)
    for cls in images.BUILDERS.values():
        monkeypatch.delenv(cls.ENV, raising=False)
    monkeypatch.delenv("ODENESS_TFDS_DIR", raising=False)


class Parsed(Exception):
    """Raised by the `parse_only` fixture in place of running a script."""


@pytest.fixture
def parse_only(monkeypatch):
    """Every `argparse` parser (the scripts' `_cli.Parser` inherits it) parses its
    arguments, then raises `Parsed` instead of letting the script run: a command line
    can be checked without running it."""
    import argparse

    original = argparse.ArgumentParser.parse_args

    def parse(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse)
    return Parsed


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` first: with several workers (`-n auto`), the long tests then
    run while the short ones fill the gaps, instead of one of them ending the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


__all__ = ["jax"]
