"""Image training step: one iteration of the CIFAR-10 ODE-Net (Conv2d field, C = 128,
batch 256, Euler 8 steps) on CIFAR-shaped inputs; the time does not depend on pixel
values, so no archive is needed.
"""

import statistics
import time

import jax
import numpy as np

import odeness
from benchmarks._timing import chunk_runner, time_call


def run(*, quick: bool, rounds: int) -> dict:
    del rounds
    channels, batch, steps = 128, 256, 8
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, 32, 32, 3)).astype(np.float32) / 255
    y = rng.integers(0, 10, batch).astype(np.int32)
    data = odeness.Dataset(x, y, x, y, num_classes=10)
    config = odeness.TrainConfig(
        seeds=(0,),
        dataset="cifar10",
        solver="euler",
        steps=steps,
        channels=channels,
        batch_size=batch,
    )
    chunk = chunk_runner(config, data, length=1)
    start = time.perf_counter()
    jax.block_until_ready(chunk.run(chunk.state))
    first = time.perf_counter() - start
    per_iter = statistics.median(time_call(*chunk.timed, repeats=1 if quick else 3))
    return {
        "setting": f"CIFAR-10 ODE-Net, Conv2d C={channels}, batch {batch}, Euler {steps} "
        "steps",
        "seconds_per_iteration": round(per_iter, 3),
        "images_per_second": round(batch / per_iter, 1),
        "first_call_seconds_with_compile": round(first, 1),
    }


def report(result: dict) -> list[str]:
    return [
        f"{result['setting']}: {result['seconds_per_iteration']:.2f} s/it, "
        f"{result['images_per_second']:.0f} images/s"
    ]
