"""Devices: a sweep's throughput (run-iterations per second: seeds × iterations / s)
with the seed axis split over 1 and over 4 devices (`train(..., parallel="seeds")`),
each in its own process; on CPU the devices are forced with
`--xla_force_host_platform_device_count` and share this machine's cores, and on
accelerators only the counts that exist are measured. Compilation is excluded (a first,
identical training run warms up). Target on CPU: at least 0.9 × the 1-device rate.
"""

import json
import os
import subprocess
import sys

import jax

DEVICE_RUN = """
import json, time, jax, odeness
config = odeness.TrainConfig(dataset="sphere2", solver="euler", steps=16, channels=32,
                             seeds=tuple(range({seeds})), iterations={iterations},
                             log_every={iterations})
data = odeness.load_dataset("sphere2", seed=0)
odeness.train(config, data=data, progress=False)  # compiles
start = time.perf_counter()
odeness.train(config, data=data, progress=False)
seconds = time.perf_counter() - start
print("RESULT", json.dumps({{"devices": len(jax.devices()), "seconds": seconds}}))
"""


def run(*, quick: bool, rounds: int) -> dict:
    del rounds
    counts, seeds, iterations = (1, 4), 8, 100 if quick else 500
    if jax.default_backend() != "cpu":
        counts = tuple(c for c in counts if c <= len(jax.devices())) or (1,)
    rows = []
    for count in counts:
        env = dict(os.environ)
        if jax.default_backend() == "cpu":
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={count}"
        code = DEVICE_RUN.format(seeds=seeds, iterations=iterations)
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env
        )
        if proc.returncode:
            raise RuntimeError(f"device benchmark failed:\n{proc.stderr[-2000:]}")
        line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
        r = json.loads(line[len("RESULT ") :])
        rows.append(
            {
                "devices": r["devices"],
                "run_iterations_per_second": seeds * iterations / r["seconds"],
            }
        )
    base = rows[0]["run_iterations_per_second"]
    for r in rows:
        r["relative_to_first"] = r["run_iterations_per_second"] / base
    return {
        "setting": f"sphere2 euler n=16, {seeds} seeds x {iterations} iterations",
        "platform": jax.default_backend(),
        "rows": rows,
    }


def report(result: dict) -> list[str]:
    return [
        f"{result['setting']}, {row['devices']} device(s): "
        f"{row['run_iterations_per_second']:.0f} run-iterations/s "
        f"({row['relative_to_first']:.2f} x 1 device; target >= 0.9 on CPU)"
        for row in result["rows"]
    ]
