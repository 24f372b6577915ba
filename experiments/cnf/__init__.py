"""Is the likelihood a likelihood? Continuous normalising flows (`odeness.CNF`) on two 2-D
densities of the flow papers, in the order `make cnf` runs them, into `results/cnf/`:

1. on `ring8` and on `moons`, 3 seeds, 1,000 iterations each: Euler at n = 1 … 32
   steps, RK4 at n = 1 … 16 (n = 4 is RNODE's training protocol, tested with dopri5 at
   1e-5, the reference of every swap), and dopri5 at tol = 1e-1, 1e-2 and 1e-3;
2. on `ring8`, the Euler grid with RNODE's kinetic energy and Jacobian norm and the
   second-order Taylor penalty, each at two weights: do they move the flow's critical
   step size as they move the classifier's on spheres?
3. the comparison (`experiments/compare_flows.py`): one table and the max gap against n.
"""

from experiments.cnf.flow_runs import FlowComparisonOptions, FlowOptions
from experiments.lab.runner import Group, Study

SEEDS = (0, 1, 2)
EULER_STEPS = (1, 2, 4, 8, 16, 32)
RK4_STEPS = (1, 2, 4, 8, 16)
TOLS = (1e-1, 1e-2, 1e-3)
REGULARISED_STEPS = (1, 2, 4, 8, 16, 32)
WEIGHTS = {"kinetic": (0.01, 0.1), "jacobian": (0.01, 0.1), "taylor2": (0.01, 0.1)}
"""The regularisers of the Euler flows on `ring8` and their two weights."""


def _grid(dataset: str, solver: str) -> Study:
    grid = {"euler": EULER_STEPS, "rk4": RK4_STEPS}.get(solver)
    what = (
        f"n = {grid[0]} … {grid[-1]}"
        if grid
        else f"tol = {', '.join(f'{t:g}' for t in TOLS)}"
    )
    return Study(
        f"{dataset}-{solver}",
        f"flows on {dataset} trained with {solver} at {what}, seeds 0, 1, 2",
        FlowOptions(
            dataset=dataset,
            solver=solver,
            steps=grid,
            tols=None if grid else TOLS,
            seeds=SEEDS,
        ),
    )


def _regularised(name: str, weight: float) -> Study:
    return Study(
        f"ring8-euler-{name}-{weight:g}",
        f"Euler flows on ring8 at n = 1 … 32 with {name} {weight:g}, seeds 0, 1, 2",
        FlowOptions(steps=REGULARISED_STEPS, regularise=((name, weight),), seeds=SEEDS),
    )


GRIDS = tuple(_grid(d, s) for d in ("ring8", "moons") for s in ("euler", "rk4", "dopri5"))
REGULARISED = tuple(_regularised(n, w) for n, ws in WEIGHTS.items() for w in ws)
COMPARISON = Study(
    "cnf-comparison",
    "the flows compared: critical step sizes, max gaps and ∫p",
    FlowComparisonOptions(),
)
STUDIES = (*GRIDS, *REGULARISED, COMPARISON)
CNF = Group(
    "cnf",
    "continuous normalising flows: is the likelihood a likelihood?",
    STUDIES,
    results="results/cnf",
    docs="docs/results/cnf",
)
GROUPS = (CNF,)
