"""Adaptation overhead: training at a fixed step size (Euler, 16 steps) with and without
the step-size rule (`adapt=True`): chunks of `interval` (50) iterations, the rule's chunk
holding exactly one check (on its last iteration, so the step size is fixed throughout).
The loops alternate; the ratio of the medians is reported (target <= 1.1). A third loop
trains with the rule's integrator alone (a traced step size under `max_steps` = 500, no
check), to show which part of the overhead is the check's.
"""

import numpy as np

import odeness
from benchmarks._timing import alternate, chunk_runner


def one(seeds: int, steps: int, rounds: int) -> dict:
    base = odeness.TrainConfig(
        dataset="sphere2", solver="euler", steps=steps, seeds=tuple(range(seeds))
    )
    adapted = base.replace(adapt=True)
    rule = adapted.rule()
    assert rule is not None
    data = base.load_dataset()
    length = rule.interval
    # Start one iteration after a check: the next one falls on the chunk's last iteration.
    traced = odeness.Integrator(rule.solver, dt=1.0 / steps, max_steps=rule.max_steps)
    runs = {
        "plain": chunk_runner(base, data, length=length, start=1).timed,
        "traced": chunk_runner(base, data, length=length, start=1, integ=traced).timed,
        "adapted": chunk_runner(adapted, data, length=length, start=1).timed,
    }
    per_iter = {name: t / length for name, t in alternate(runs, rounds).items()}
    fn, state = runs["adapted"]
    checks = fn(state)[1].check
    assert int(np.sum(~np.isnan(np.asarray(checks.test_accuracy)))) == seeds  # one each
    return {
        "setting": f"spheres 2-D, Euler {steps} steps, batch 128, C=32, {seeds} seed(s), "
        f"one check per {length} iterations",
        "plain_ms_per_iteration": round(per_iter["plain"] * 1e3, 3),
        "traced_step_size_ms_per_iteration": round(per_iter["traced"] * 1e3, 3),
        "adapted_ms_per_iteration": round(per_iter["adapted"] * 1e3, 3),
        "ratio": round(per_iter["adapted"] / per_iter["plain"], 3),
        "traced_step_size_ratio": round(per_iter["traced"] / per_iter["plain"], 3),
    }


def run(*, quick: bool, rounds: int) -> dict:
    return {"rows": [one(seeds, 16, 2 if quick else rounds) for seeds in (1, 5)]}


def report(result: dict) -> list[str]:
    return [
        f"{r['setting']}: plain {r['plain_ms_per_iteration']:.2f} ms/it, adapted "
        f"{r['adapted_ms_per_iteration']:.2f} ms/it, ratio {r['ratio']:.2f} (target <= "
        f"1.1; a traced step size alone: {r['traced_step_size_ratio']:.2f})"
        for r in result["rows"]
    ]
