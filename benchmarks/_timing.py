"""What the benchmarks share: timing by alternation (the machines are noisy: two programs
are compared by medians measured in the same run), and the set-up of a training chunk.
"""

import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

import odeness
from odeness._train_step import train_chunk
from odeness._training import init_state, recipe


def time_call(fn, *args, repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls of `fn(*args)`, waiting for the results."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return times


def alternate(runs: dict, rounds: int) -> dict[str, float]:
    """Median seconds per call of each `name: (fn, state)`, compiled first, the calls
    alternating over `rounds` rounds of two calls each."""
    for fn, state in runs.values():
        jax.block_until_ready(fn(state))  # compile
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (fn, state) in runs.items():
            times[name] += time_call(fn, state, repeats=2)
    return {name: statistics.median(t) for name, t in times.items()}


class Chunk(NamedTuple):
    """A training chunk ready to time: `run(state)` trains `length` iterations of every
    seed of a configuration (the program `odeness.train` runs) from `state`."""

    run: Callable
    state: Any
    static: Any
    """The model's static part (`eqx.partition`)."""
    optimizer: Any

    @property
    def timed(self) -> tuple[Callable, Any]:
        """`(run, state)`, as `alternate` takes it."""
        return self.run, self.state


def chunk_runner(
    config: odeness.TrainConfig,
    data: odeness.Dataset,
    *,
    length: int,
    integ=None,
    start: int | None = None,
    **recipe_options,
) -> Chunk:
    """The `Chunk` of `length` iterations of `config` from its initial state; `integ`
    replaces the configuration's integrator (or rule); `start` moves every seed's step
    counter; `recipe_options` are `odeness.train`'s (`optimizer`, `rule`, ...)."""
    how = recipe(config, **recipe_options)
    state, static = init_state(config, data, how)
    if start is not None:
        state = state._replace(step=state.step + start)
    integ = (
        (config.integrator() if how.rule is None else how.rule) if integ is None else integ
    )
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)

    def run(s):
        return train_chunk(
            s,
            static,
            integ,
            how.optimizer,
            x,
            y,
            batch_size=config.batch_size,
            length=length,
            start=None if start is None else jnp.asarray(start),
            loss=how.loss,
            metric=how.metric,
            regularisation=how.regularisation,
        )

    return Chunk(run, state, static, how.optimizer)
