"""Continuous normalising flows: the cost of a training iteration of a flow on ring8
(RK4 at 4 steps, RNODE's protocol; batch 256, C = 32, one seed) with the exact trace and
with Hutchinson's estimator, each alone and with RNODE's kinetic energy and Jacobian
norm, all alternating in one run, medians. The Jacobian norm reuses the trace's
products: with either trace it should cost about what the kinetic energy costs.
"""

import jax

import odeness
from benchmarks._timing import alternate, chunk_runner


def _hutchinson(key):
    field_key, probe_key = jax.random.split(key)
    field = odeness.ConcatSquashField(2, 32, key=field_key)
    return odeness.CNF(field, trace=odeness.HutchinsonTrace(), key=probe_key, shape=(2,))


VARIANTS = {
    "exact": (None, ()),
    "exact + kinetic": (None, (("kinetic", 0.1),)),
    "exact + jacobian": (None, (("jacobian", 0.1),)),
    "hutchinson": (_hutchinson, ()),
    "hutchinson + kinetic": (_hutchinson, (("kinetic", 0.1),)),
    "hutchinson + jacobian": (_hutchinson, (("jacobian", 0.1),)),
}


def run(*, quick: bool, rounds: int) -> dict:
    length, rounds = (20, 2) if quick else (50, rounds)
    base = odeness.TrainConfig(
        dataset="ring8", solver="rk4", steps=4, seeds=(0,), batch_size=256
    )
    data = base.load_dataset()
    runs = {
        name: chunk_runner(
            base.replace(regularise=pairs),
            data,
            length=length,
            model=model,
            unlabelled=True,
        ).timed
        for name, (model, pairs) in VARIANTS.items()
    }
    ms = {name: t / length * 1e3 for name, t in alternate(runs, rounds).items()}
    return {
        "setting": "ring8, rk4 4 steps, batch 256, C=32, 1 seed",
        "rows": [
            {
                "variant": name,
                "ms_per_iteration": round(ms[name], 3),
                "ratio": round(ms[name] / ms[name.split(" + ")[0]], 3),
            }
            for name in VARIANTS
        ],
    }


def report(result: dict) -> list[str]:
    return [
        f"{result['setting']}, {row['variant']}: {row['ms_per_iteration']:.2f} ms/it, "
        f"{row['ratio']:.2f} x its trace alone"
        for row in result["rows"]
    ]
