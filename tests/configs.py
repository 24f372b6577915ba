"""Training configurations the tests share: one compiled training program serves each."""

from typing import Any

SMALL: dict[str, Any] = dict(
    dataset="sphere2",
    solver="euler",
    steps=2,
    seeds=(0, 1),
    iterations=60,
    log_every=20,
    checkpoint_every=20,
    channels=8,
)
"""Two seeds of a small field, Euler at two steps, three chunks of 20 iterations."""

FLOW: dict[str, Any] = dict(
    dataset="ring8",
    solver="rk4",
    steps=2,
    seeds=(0, 1),
    iterations=60,
    batch_size=64,
    learning_rate=3e-3,
    log_every=20,
    checkpoint_every=60,
    channels=8,
)
"""A small flow on ring8 (the default `make_flow`, width 8), RK4 at two steps."""
