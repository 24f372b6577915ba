"""Benchmarks, one concept each: times and ratios measured in one run (`make bench`).

Each module measures one thing and has a `run(quick=..., rounds=...) -> dict` and a
`report(result) -> list[str]`; `python -m benchmarks [NAME ...]` (or
`make bench BENCH="NAME ..."`) runs the ones named, all by default, prints their lines
and writes `results/bench/<name>.json`. The machines are noisy: a benchmark compares
programs by medians of alternating runs in the same process, never across runs.
"""

BENCHMARKS = (
    "train_step",
    "adaptation_overhead",
    "adjoint_cost",
    "field_cost",
    "user_model_swap",
    "device_scaling",
    "image_step",
    "penalty_cost",
    "flow_cost",
    "certification_cost",
)
"""Every benchmark, by module name, in the order `make bench` runs them."""
