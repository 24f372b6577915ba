"""Fields: one training iteration (one seed, Euler 16 steps, batch 128, C = 32) of the
Conv1d field against the fully connected one on the spheres of 2, 3, 10 and 900
dimensions (alternating, medians).
"""

import odeness
from benchmarks._timing import alternate, chunk_runner

DIMS = (2, 3, 10, 900)


def run(*, quick: bool, rounds: int) -> dict:
    length, rounds = (10, 2) if quick else (20, 3)
    rows = []
    for d in DIMS:
        data = odeness.load_dataset(f"sphere{d}")
        runs = {
            field: chunk_runner(
                odeness.TrainConfig(
                    seeds=(0,), dataset=f"sphere{d}", steps=16, field=field
                ),
                data,
                length=length,
            ).timed
            for field in ("conv", "mlp")
        }
        ms = {name: t / length * 1e3 for name, t in alternate(runs, rounds).items()}
        rows.append(
            {
                "dim": d,
                "conv_ms_per_iteration": round(ms["conv"], 3),
                "mlp_ms_per_iteration": round(ms["mlp"], 3),
            }
        )
    for row in rows:
        row["conv_relative_to_first"] = round(
            row["conv_ms_per_iteration"] / rows[0]["conv_ms_per_iteration"], 1
        )
    return {"setting": "spheres, Euler 16 steps, batch 128, C=32, 1 seed", "rows": rows}


def report(result: dict) -> list[str]:
    first = result["rows"][0]["dim"]
    return [
        f"{result['setting']}, d = {row['dim']}: Conv1d {row['conv_ms_per_iteration']:.2f} "
        f"ms/it ({row['conv_relative_to_first']:.1f} x d = {first}), fully connected "
        f"{row['mlp_ms_per_iteration']:.2f} ms/it"
        for row in result["rows"]
    ]
