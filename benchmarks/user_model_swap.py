"""User model: the solver swap of the built-in `ODEClassifier` against the same
parameters assembled as a `NeuralODE` (field, head as decoder); both alternate after a
warm-up that compiles, medians of the swap's wall time (target: 1 within noise).
"""

import statistics
import time

import jax

import odeness


def run(*, quick: bool, rounds: int) -> dict:
    rounds = 2 if quick else rounds
    data = odeness.load_dataset("sphere2")
    builtin = odeness.make_classifier("conv", (2,), 2, channels=32, key=jax.random.key(0))
    user = odeness.NeuralODE(builtin.field, decoder=builtin.head)
    integ = odeness.Integrator(odeness.solver("euler"), steps=8)
    reference = odeness.Integrator(odeness.solver("rk4"), steps=256)

    def swap(model):
        return odeness.evaluate_solver_swap(
            model, integ, data.x_test, data.y_test, reference=reference
        )

    a, b = swap(builtin), swap(user)  # compile both
    assert [r.score for r in a.rows] == [r.score for r in b.rows], "different swaps"
    times = {"builtin": [], "user": []}
    for _ in range(rounds):
        for name, model in (("builtin", builtin), ("user", user)):
            start = time.perf_counter()
            swap(model)
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "setting": "solver swap, spheres 2-D (1000 test points, 16 test configurations)",
        "builtin_seconds": med["builtin"],
        "user_seconds": med["user"],
        "ratio": med["user"] / med["builtin"],
    }


def report(result: dict) -> list[str]:
    return [
        f"{result['setting']}: ODEClassifier {result['builtin_seconds']:.2f} s, the same "
        f"as a NeuralODE {result['user_seconds']:.2f} s, ratio {result['ratio']:.2f} "
        "(target: 1 within noise)"
    ]
