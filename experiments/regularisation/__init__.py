"""Which cure makes a Neural ODE an ODE most cheaply? The regularisers of the Neural ODE
literature (`odeness.KineticEnergy`, `JacobianFrobenius`, `TaylorDerivative`,
`ErrorEstimate`, `RandomEndTime`) against the step-size adaptation of Ott et al., each
study defined once (`experiments.lab.catalogue`), in the order `make regularisation`
runs them, into `results/regularisation/`:

1. a search for each regulariser's weight: spheres 2-D, Euler at 8 steps (h = 1/8, far
   above the unregularised critical step size 1/128), seed 0, four to six weights each,
   and the same run without;
2. the Euler sweep of `make sweep-euler` (1 … 128 steps, 10,000 iterations) with each
   regulariser at the two weights of `WEIGHTS`, seeds 0, 1, 2, and without (the same
   seeds);
3. dopri5 at tol = 1e-3, with each regulariser at its larger weight and without: the
   NFE per forward pass at a similar accuracy (the papers' own claim);
4. the Euler step-size adaptation (seeds 0, 1, 2), for its NFE per iteration;
5. MNIST (C = 16, one seed, 300 iterations), dopri5 at tol = 1e-3, with and without
   each regulariser at its larger weight: the papers' claim on images;
6. the comparison (`experiments/compare_regularisers.py`): the tables and the figure
   of the documentation.
"""

from experiments.lab.adapted_runs import AdaptOptions
from experiments.lab.runner import Group, Study
from experiments.lab.sweep_runs import STEPS, SweepOptions

SEEDS = (0, 1, 2)
"""The seeds of the sweeps and adapted runs (the first three of `make sweep-euler`)."""

SEARCH_WEIGHTS = {
    "kinetic": (0.01, 0.03, 0.1, 0.3, 1.0),
    "jacobian": (0.001, 0.003, 0.01, 0.03, 0.1, 1.0),
    "taylor2": (0.01, 0.03, 0.1, 0.3, 1.0),
    "error": (1.0, 10.0, 30.0, 100.0),
    "steer": (0.1, 0.25, 0.5, 0.75),
}
"""The weights the search tries (for `steer`, the spread of the end time)."""

SEARCH_STEPS = 8
"""The search's training step count."""

WEIGHTS = {
    "kinetic": (0.03, 0.3),
    "jacobian": (0.001, 0.01),
    "taylor2": (0.01, 0.1),
    "error": (1.0, 10.0),
    "steer": (0.1, 0.25),
}
"""The weights the sweeps use, chosen by the search (`comparison.md`): the largest
weight whose test accuracy at 8 steps stayed ≥ 0.95, and one ten times smaller (for
`steer`, the largest spread that kept the accuracy and the next smaller one tried)."""


def _each(
    name: str, what: str, options: SweepOptions, weights: dict[str, tuple[float, ...]]
) -> tuple[Study, ...]:
    """The study `name-none` of `options`, then `name-REGULARISER` with each of `weights`
    (`-WEIGHT` added where a regulariser has several); `what` describes each, its `{reg}`
    standing for `REGULARISER WEIGHT` and `{with_reg}` for `with REGULARISER WEIGHT`
    (both `without a regulariser` in the first)."""
    none = "without a regulariser"
    studies = [Study(f"{name}-none", what.format(reg=none, with_reg=none), options)]
    for reg, values in weights.items():
        for v in values:
            suffix, text = f"-{v:g}" if len(values) > 1 else "", f"{reg} {v:g}"
            described = what.format(reg=text, with_reg=f"with {text}")
            regularised = options.replaced(regularise=((reg, float(v)),))
            studies.append(Study(f"{name}-{reg}{suffix}", described, regularised))
    return tuple(studies)


SEARCH = _each(
    "search",
    f"the weight search: {{reg}}, Euler at {SEARCH_STEPS} steps, seed 0",
    SweepOptions(steps=(SEARCH_STEPS,), seeds=(0,), reference="none"),
    SEARCH_WEIGHTS,
)
"""Step 1: without, and each regulariser at each weight of `SEARCH_WEIGHTS`."""
EULER = _each(
    "euler",
    "the Euler sweep (1 … 128 steps) {with_reg}, seeds 0, 1, 2",
    SweepOptions(steps=STEPS, seeds=SEEDS),
    WEIGHTS,
)
"""Step 2: the Euler sweeps, without and with each regulariser at each weight."""

DOPRI5_TOL = 1e-3
_DOPRI5 = SweepOptions(
    solver="dopri5",
    tols=(DOPRI5_TOL,),
    seeds=SEEDS,
    test_solvers=("dopri5",),
    factors=(0.1, 1),
)
_LARGER = {name: values[-1:] for name, values in WEIGHTS.items()}
"""Each regulariser at its larger weight."""
DOPRI5 = _each(
    "dopri5", f"spheres 2-D, dopri5 at tol = {DOPRI5_TOL:g} {{with_reg}}", _DOPRI5, _LARGER
)
"""Step 3: dopri5 training, without and with each regulariser at its larger weight."""

ADAPT = Study(
    "adapt-euler",
    "the Euler step-size adaptation on spheres 2-D, seeds 0, 1, 2",
    AdaptOptions(solver="euler", seeds=SEEDS),
)
"""Step 4: the paper's cure, for its NFE per iteration."""

MNIST = _each(
    "mnist-dopri5",
    f"MNIST (C = 16, 300 iterations, seed 0), dopri5 at tol = {DOPRI5_TOL:g} {{with_reg}}",
    _DOPRI5.replaced(
        dataset="mnist", seeds=(0,), reference="none", iterations=300, channels=16
    ),
    _LARGER,
)
"""Step 5: the papers' claim on MNIST."""

from experiments.regularisation.comparison import CompareOptions  # noqa: E402 (it reads the above)

COMPARISON = Study(
    "comparison",
    "the comparison: tables of the search, the sweeps, dopri5 and MNIST, and the figure",
    CompareOptions(),
)
"""Step 6: the tables and the figure."""

STUDIES = (*SEARCH, *EULER, *DOPRI5, ADAPT, *MNIST, COMPARISON)
"""Every study of `make regularisation`, in order."""
REGULARISATION = Group(
    "regularisation",
    "the regularisers against the step-size adaptation",
    STUDIES,
    results="results/regularisation",
    docs="docs/results/regularisation",
    publishes=("comparison",),
)
GROUPS = (REGULARISATION,)
