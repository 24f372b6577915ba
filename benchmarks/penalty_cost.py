"""Regularisers: the cost of each penalty per training iteration against none (spheres
2-D, Euler 16 steps, batch 128, C = 32, one seed), all alternating in one run, medians.
Targets: the kinetic energy within 1.3× (it reuses the field's evaluations), the
one-probe Jacobian norm within 2×, the second-order Taylor penalty within 3×.
"""

import odeness
from benchmarks._timing import alternate, chunk_runner

REGULARISE = {
    "none": (),
    "kinetic": (("kinetic", 0.01),),
    "jacobian": (("jacobian", 0.01),),
    "taylor2": (("taylor2", 0.01),),
    "taylor3": (("taylor3", 0.01),),
    "error": (("error", 0.01),),
    "steer": (("steer", 0.5),),
}
TARGETS = {"kinetic": 1.3, "jacobian": 2.0, "taylor2": 3.0}


def run(*, quick: bool, rounds: int) -> dict:
    length, rounds = (20, 2) if quick else (50, rounds)
    base = odeness.TrainConfig(dataset="sphere2", solver="euler", steps=16, seeds=(0,))
    data = base.load_dataset()
    runs = {
        name: chunk_runner(base.replace(regularise=pairs), data, length=length).timed
        for name, pairs in REGULARISE.items()
    }
    ms = {name: t / length * 1e3 for name, t in alternate(runs, rounds).items()}
    return {
        "setting": "spheres 2-D, Euler 16 steps, batch 128, C=32, 1 seed",
        "rows": [
            {
                "regulariser": name,
                "ms_per_iteration": round(ms[name], 3),
                "ratio": round(ms[name] / ms["none"], 3),
            }
            for name in REGULARISE
        ],  # fmt: skip
    }


def report(result: dict) -> list[str]:
    lines = []
    for row in result["rows"]:
        target = TARGETS.get(row["regulariser"])
        aim = "" if target is None else f" (target <= {target:g})"
        lines.append(
            f"{result['setting']}, {row['regulariser']}: {row['ms_per_iteration']:.2f} "
            f"ms/it, {row['ratio']:.2f} x none{aim}"
        )
    return lines
