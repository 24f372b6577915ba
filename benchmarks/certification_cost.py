"""Certification: the time of each test of one model against its solver swap, all
alternating after a warm-up that compiles, medians (spheres 2-D, the paper's classifier
at Euler 8 steps, 1000 test points): the swap (16 configurations and RK4 at 256 steps),
self-convergence (8 … 64 steps and its RK4 reference), convergence against the targets
(8 … 128 steps) and the cheapest faithful solver (32 candidates, each timed 3 times).
"""

import statistics
import time
import warnings

import jax

import odeness


def run(*, quick: bool, rounds: int) -> dict:
    rounds = 1 if quick else min(rounds, 3)
    data = odeness.load_dataset("sphere2")
    model = odeness.make_classifier("conv", (2,), 2, channels=32, key=jax.random.key(0))
    integ = odeness.Integrator(odeness.solver("euler"), steps=8)
    x, y = data.x_test, data.y_test
    reference = odeness.Integrator(odeness.solver("rk4"), steps=256)

    def cheapest():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return odeness.cheapest_solver(model, x, within=1e-2)

    tests = {
        "swap": lambda: odeness.evaluate_solver_swap(
            model, integ, x, y, reference=reference
        ),
        "self_convergence": lambda: odeness.self_convergence(model, integ, x),
        "convergence_test": lambda: odeness.convergence_test(model, integ, x, y),
        "cheapest_solver": cheapest,
    }
    for test in tests.values():
        test()  # compile
    times = {name: [] for name in tests}
    for _ in range(rounds):
        for name, test in tests.items():
            start = time.perf_counter()
            test()
            times[name].append(time.perf_counter() - start)
    seconds = {name: statistics.median(t) for name, t in times.items()}
    return {
        "setting": "spheres 2-D, classifier C=32, Euler 8 steps, 1000 test points",
        "seconds": seconds,
        "ratio": {name: s / seconds["swap"] for name, s in seconds.items()},
    }


def report(result: dict) -> list[str]:
    return [
        f"{result['setting']}, {name}: {result['seconds'][name]:.2f} s, "
        f"{result['ratio'][name]:.2f} x the swap"
        for name in result["seconds"]
    ]
