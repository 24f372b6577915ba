"""Ott et al., "ResNet After All? Neural ODEs and Their Numerical Solution" (ICLR 2021):
every figure, table and sweep that odeness reproduces, each defined once as a study
(`experiments.lab.runner`), and `OTT2021`, the group `make ott2021` runs. The modules
beside this one hold Figures 1 to 3 (`crossings_figure`, `decision_regions`, `xor_fan`)
and Table 1 (`grid_vs_adaptation`).
"""

from experiments.lab.adapted_runs import AdaptOptions
from experiments.lab.ode_reports import ReportOptions
from experiments.lab.runner import Group, Study
from experiments.lab.sweep_runs import STEPS, SweepOptions
from experiments.ott2021.crossings_figure import Figure1Options
from experiments.ott2021.decision_regions import Figure2Options
from experiments.ott2021.grid_vs_adaptation import TableOptions
from experiments.ott2021.xor_fan import Figure3Options

FIGURE1 = Study(
    "figure1",
    "the paper's Figure 1: crossing trajectories and accuracy against test steps",
    Figure1Options(),
)
FIGURE2 = Study(
    "figure2",
    "the paper's Figure 2: the Euler-2 model's outputs over its decision regions",
    Figure2Options(),
)
FIGURE3 = Study(
    "figure3", "the paper's Figure 3, Lady Windermere's fan on XOR", Figure3Options()
)
SWEEP_EULER = Study(
    "sweep-euler",
    "the Euler step-size sweep on spheres 2-D (Figure 4a)",
    SweepOptions(solver="euler", steps=STEPS),
)
SWEEP_MIDPOINT = Study(
    "sweep-midpoint",
    "the same grid trained with midpoint",
    SweepOptions(solver="midpoint", steps=STEPS),
)
SWEEP_RK4 = Study(
    "sweep-rk4",
    "the same grid trained with the paper's RK4 (the 3/8 rule, `rk4_38`), tested with it "
    "and with classic RK4 (Figure 4b)",
    SweepOptions(solver="rk4_38", steps=STEPS, test_solvers=("rk4_38", "rk4")),
)
SWEEP_FEHLBERG2 = Study(
    "sweep-fehlberg2",
    "Fehlberg2 trained at tol ∈ {1e-1, …, 1e-5}, tested with Fehlberg2 and dopri5 at "
    "tol × {0.1, 1, 10} (Figure 4c)",
    SweepOptions(
        solver="fehlberg2",
        tols=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5),
        test_solvers=("fehlberg2", "dopri5"),
        factors=(0.1, 1, 10),
    ),
)
SWEEP_DOPRI5 = Study(
    "sweep-dopri5",
    "dopri5 trained at tol ∈ {1e-1, …, 1e-6}, tested with dopri5 at tol × {0.1, 1, 10} "
    "(Figure 4d)",
    SweepOptions(
        solver="dopri5",
        tols=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6),
        test_solvers=("dopri5",),
        factors=(0.1, 1, 10),
    ),
)
SWEEP_EULER_BACKSOLVE = Study(
    "sweep-euler-backsolve",
    "the Euler grid trained with the continuous adjoint (the supplement)",
    SweepOptions(solver="euler", steps=STEPS, adjoint="backsolve"),
)
SWEEP_SPHERE3 = Study(
    "sweep-sphere3",
    "the Euler grid on sphere3",
    SweepOptions(dataset="sphere3", steps=STEPS),
)
SWEEP_SPHERE10 = Study(
    "sweep-sphere10",
    "the Euler grid on sphere10, 3 seeds",
    SweepOptions(dataset="sphere10", steps=STEPS, seeds=(0, 1, 2)),
)
# The Conv1d field costs about 670 times its 2-D cost at d = 900 (`make bench`).
SWEEP_SPHERE900 = Study(
    "sweep-sphere900",
    "the Euler grid on sphere900 with the fully connected field, 3 seeds, 1 … 32 steps",
    SweepOptions(dataset="sphere900", field="mlp", steps=STEPS[:6], seeds=(0, 1, 2)),
)
ADAPT_EULER = Study(
    "adapt-sphere2-euler",
    "the Euler step-size adaptation on spheres 2-D (Figure 5)",
    AdaptOptions(solver="euler"),
)
ADAPT_DOPRI5 = tuple(
    Study(
        "adapt-sphere2-dopri5"
        + ("" if tol is None else f"-tol{tol:.0e}".replace("e-0", "e-")),
        "the dopri5 tolerance adaptation from "
        + ("the paper's tol = 1e-6" if tol is None else f"tol = {tol:g}"),
        AdaptOptions(solver="dopri5", tol=tol),
    )
    for tol in (None, 1e-4, 1e-3)
)
SWEEP_MNIST = Study(
    "sweep-mnist-euler",
    "the Euler sweep on MNIST",
    SweepOptions(dataset="mnist", steps=(2, 4, 8, 16, 32, 64), reference="none"),
)
ADAPT_MNIST = Study(
    "adapt-mnist-euler",
    "the Euler adaptation on MNIST",
    AdaptOptions(dataset="mnist", solver="euler"),
)


def _table(name: str, what: str, rows: tuple[tuple[Study, ...], ...]) -> Group:
    """Each row's sweep and adapted runs, then Table 1 of their folders."""
    folders = tuple(tuple(s.name for s in row) for row in rows)
    table = TableOptions(row=folders, out="table1.md")
    write = Study(f"{name}-write", "Table 1 from the sweeps and adapted runs above", table)
    return Group(name, what, (*(s for row in rows for s in row), write))


TABLE1_ROWS = ((SWEEP_EULER, ADAPT_EULER), (SWEEP_DOPRI5, *ADAPT_DOPRI5))
TABLE1 = _table(
    "table1",
    "Table 1: grid search against adaptation, spheres 2-D (Euler and dopri5)",
    TABLE1_ROWS,
)
TABLE1_MNIST = _table(
    "table1-mnist", "Table 1 with its MNIST row", (*TABLE1_ROWS, (SWEEP_MNIST, ADAPT_MNIST))
)
REPORT = Study(
    "report-euler-n0008",
    "the ODE-ness report of the Euler sweep's 8-step model (seed 0)",
    ReportOptions(run_dir="sweep-euler/runs/euler-n0008"),
)
SWEEP_SPHERES = Group(
    "sweep-spheres",
    "the supplement's spheres: sphere3, sphere10 and sphere900",
    (SWEEP_SPHERE3, SWEEP_SPHERE10, SWEEP_SPHERE900),
)
OTT2021 = Group(
    "ott2021",
    "every table and figure of Ott et al.",
    (
        FIGURE3,
        FIGURE2,
        FIGURE1,
        SWEEP_EULER,
        REPORT,
        TABLE1,
        SWEEP_RK4,
        SWEEP_FEHLBERG2,
        SWEEP_EULER_BACKSOLVE,
        SWEEP_SPHERES,
    ),
)
"""Every stage of `make ott2021`, in order (each resumes; finished runs are reused)."""

STUDIES = (*OTT2021.studies(), SWEEP_MIDPOINT)
"""Every study of the paper."""
GROUPS = (OTT2021, TABLE1, TABLE1_MNIST, SWEEP_SPHERES)
"""Its groups."""
