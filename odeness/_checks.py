"""One validator per kind of value, each raising a one-line `ValueError` that names the
value and what is allowed."""

import math

import numpy as np

MAX_SEED = 2**32 - 1
"""The largest seed: JAX's PRNG keys hold 32 bits, so larger seeds would alias."""


def is_integer(value) -> bool:
    """An `int` or NumPy integer, and not a `bool`."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def is_number(value) -> bool:
    """An `int`, `float` or NumPy real number, and not a `bool`."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool
    )


def integer(name: str, value, minimum: int = 1) -> int:
    """`value` if it is an integer `>= minimum`.

    **Raises:** `ValueError` naming `name` and `value` otherwise (a `bool` is refused).
    """
    if not (is_integer(value) and value >= minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive(name: str, value) -> float:
    """`value` if it is a finite number `> 0`. **Raises:** `ValueError` otherwise."""
    if not (is_number(value) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def non_negative(name: str, value) -> float:
    """`value` if it is a finite number `>= 0`. **Raises:** `ValueError` otherwise."""
    if not (is_number(value) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def fraction(name: str, value) -> float:
    """`value` if it is a number in `[0, 1]`. **Raises:** `ValueError` otherwise."""
    if not (is_number(value) and 0 <= value <= 1):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def is_seed(value) -> bool:
    """An integer in `[0, 2**32 - 1]`."""
    return is_integer(value) and 0 <= value <= MAX_SEED


def seed(name: str, value) -> int:
    """`value` if it is an integer in `[0, 2**32 - 1]`. **Raises:** `ValueError`."""
    if not is_seed(value):
        raise ValueError(f"{name} must be an integer in [0, 2**32 - 1], got {value!r}")
    return int(value)


def boolean(name: str, value) -> bool:
    """`value` if it is `True` or `False`. **Raises:** `ValueError` otherwise."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def one_of(name: str, value, allowed) -> None:
    """**Raises:** `ValueError` unless `value` is one of `allowed` (names listed)."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
