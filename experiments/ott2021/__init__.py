"""Ott et al., "ResNet After All? Neural ODEs and Their Numerical Solution" (ICLR 2021):
every figure, table and sweep that odeness reproduces, each defined once
(`experiments.lab.catalogue`), in the order `make ott2021` runs them.

The modules beside this one hold what is particular to one figure or table: Figure 1's
crossings (`crossings_figure`), Figure 2's decision regions (`decision_regions`),
Figure 3's fan on XOR (`xor_fan`) and Table 1 (`grid_vs_adaptation`).
"""

from experiments.lab.catalogue import Adapted, Report, Script, Sweep, Table

STEPS = (1, 2, 4, 8, 16, 32, 64, 128)
"""The training step counts of the Euler, midpoint and RK4 sweeps (h = 1 ... 1/128)."""


def _figure(number: int, what: str, *, more: tuple[str, ...] = (), progress=True) -> Script:
    name = f"figure{number}"
    outputs = (f"{name}.md", f"{name}.png", *more)
    return Script(name, what, runs=name, outputs=outputs, progress=progress)


FIGURE1 = _figure(
    1,
    "the paper's Figure 1: crossing trajectories and accuracy against test steps",
    more=("fan.png",),
)
FIGURE2 = _figure(
    2, "the paper's Figure 2: the Euler-2 model's outputs over its decision regions"
)
FIGURE3 = _figure(3, "the paper's Figure 3, Lady Windermere's fan on XOR", progress=False)
SWEEP_EULER = Sweep(
    "sweep-euler",
    "the Euler step-size sweep on spheres 2-D (Figure 4a)",
    solver="euler",
    steps=STEPS,
)
SWEEP_MIDPOINT = Sweep(
    "sweep-midpoint", "the same grid trained with midpoint", solver="midpoint", steps=STEPS
)
SWEEP_RK4 = Sweep(
    "sweep-rk4",
    "the same grid trained with the paper's RK4 (the 3/8 rule, `rk4_38`), tested with it "
    "and with classic RK4 (Figure 4b)",
    solver="rk4_38",
    steps=STEPS,
    test_solvers=("rk4_38", "rk4"),
)
SWEEP_FEHLBERG2 = Sweep(
    "sweep-fehlberg2",
    "Fehlberg2 trained at tol ∈ {1e-1, …, 1e-5}, tested with Fehlberg2 and dopri5 at "
    "tol × {0.1, 1, 10} (Figure 4c)",
    solver="fehlberg2",
    tols=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5),
    test_solvers=("fehlberg2", "dopri5"),
    factors=(0.1, 1, 10),
)
SWEEP_DOPRI5 = Sweep(
    "sweep-dopri5",
    "dopri5 trained at tol ∈ {1e-1, …, 1e-6}, tested with dopri5 at tol × {0.1, 1, 10} "
    "(Figure 4d)",
    solver="dopri5",
    tols=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6),
    test_solvers=("dopri5",),
    factors=(0.1, 1, 10),
)
SWEEP_EULER_BACKSOLVE = Sweep(
    "sweep-euler-backsolve",
    "the Euler grid trained with the continuous adjoint (the supplement)",
    solver="euler",
    steps=STEPS,
    adjoint="backsolve",
)
SWEEP_SPHERE3 = Sweep(
    "sweep-sphere3", "the Euler grid on sphere3", dataset="sphere3", steps=STEPS
)
SWEEP_SPHERE10 = Sweep(
    "sweep-sphere10",
    "the Euler grid on sphere10, 3 seeds",
    dataset="sphere10",
    steps=STEPS,
    seeds=(0, 1, 2),
)
# The Conv1d field costs about 670 times its 2-D cost at d = 900 (`make bench`).
SWEEP_SPHERE900 = Sweep(
    "sweep-sphere900",
    "the Euler grid on sphere900 with the fully connected field, 3 seeds, 1 … 32 steps",
    dataset="sphere900",
    field="mlp",
    steps=STEPS[:6],
    seeds=(0, 1, 2),
)
ADAPT_EULER = Adapted(
    "adapt-sphere2-euler",
    "the Euler step-size adaptation on spheres 2-D (Figure 5)",
    solver="euler",
)
ADAPT_DOPRI5 = tuple(
    Adapted(
        "adapt-sphere2-dopri5"
        + ("" if tol is None else f"-tol{tol:.0e}".replace("e-0", "e-")),
        "the dopri5 tolerance adaptation from "
        + ("the paper's tol = 1e-6" if tol is None else f"tol = {tol:g}"),
        solver="dopri5",
        tol=tol,
    )
    for tol in (None, 1e-4, 1e-3)
)
TABLE1 = Table(
    "table1",
    "Table 1: grid search against adaptation, spheres 2-D (Euler and dopri5)",
    rows=((SWEEP_EULER, (ADAPT_EULER,)), (SWEEP_DOPRI5, ADAPT_DOPRI5)),
)
SWEEP_MNIST = Sweep(
    "sweep-mnist-euler",
    "the Euler sweep on MNIST",
    dataset="mnist",
    steps=(2, 4, 8, 16, 32, 64),
    reference="none",
)
ADAPT_MNIST = Adapted(
    "adapt-mnist-euler", "the Euler adaptation on MNIST", dataset="mnist", solver="euler"
)
TABLE1_MNIST = Table(
    "table1",
    "Table 1 with its MNIST row",
    rows=(*TABLE1.rows, (SWEEP_MNIST, (ADAPT_MNIST,))),
)
REPORT = Report(
    "report-euler-n0008",
    "the ODE-ness report of the Euler sweep's 8-step model (seed 0)",
    run="sweep-euler/runs/euler-n0008",
)

STUDIES = (
    FIGURE3,
    FIGURE2,
    FIGURE1,
    SWEEP_EULER,
    REPORT,
    ADAPT_EULER,
    SWEEP_DOPRI5,
    *ADAPT_DOPRI5,
    TABLE1,
    SWEEP_RK4,
    SWEEP_FEHLBERG2,
    SWEEP_EULER_BACKSOLVE,
    SWEEP_SPHERE3,
    SWEEP_SPHERE10,
    SWEEP_SPHERE900,
)
"""Every stage of `make ott2021`, in order (each resumes; finished runs are reused)."""

GROUPS = {"sweep-spheres": (SWEEP_SPHERE3, SWEEP_SPHERE10, SWEEP_SPHERE900)}
"""`make` targets that run several studies, in order."""
