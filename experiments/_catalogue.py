"""Every study and group of the papers by the name its `make` target has
(`python experiments/study.py NAME`), and every kind of study by the script that runs
one of one's own (`python experiments/sweep.py ...`)."""

from experiments import certification, ott2021, regularisation, sander2022
from experiments.lab.adapted_runs import AdaptOptions
from experiments.lab.certification import CertifyOptions
from experiments.lab.ode_reports import ReportOptions
from experiments.lab.options import AbstractOptions
from experiments.lab.runner import Group, Study
from experiments.lab.sweep_runs import SweepOptions
from experiments.ott2021.crossings_figure import Figure1Options
from experiments.ott2021.decision_regions import Figure2Options
from experiments.ott2021.grid_vs_adaptation import TableOptions
from experiments.ott2021.xor_fan import Figure3Options
from experiments.regularisation.comparison import CompareOptions
from experiments.sander2022.discretisation import ResnetOptions

KINDS: tuple[type[AbstractOptions], ...] = (
    SweepOptions,
    AdaptOptions,
    TableOptions,
    Figure1Options,
    Figure2Options,
    Figure3Options,
    CertifyOptions,
    ReportOptions,
    ResnetOptions,
    CompareOptions,
)
"""Each kind of study, whose `command` is the script that takes its options."""

_PAPERS = (ott2021, sander2022, certification)
CATALOGUE: dict[str, Study | Group] = {
    **{s.name: s for paper in _PAPERS for s in paper.STUDIES},
    **{g.name: g for paper in (*_PAPERS, regularisation) for g in paper.GROUPS},
}
"""Every study and group, by name (the regularisation study's stages through its group)."""


def find(name: str) -> Study | Group:
    """The study or group called `name`.

    **Raises:** `ValueError` for an unknown name, listing them."""
    if name not in CATALOGUE:
        raise ValueError(f"unknown study {name!r}; expected one of {', '.join(CATALOGUE)}")
    return CATALOGUE[name]


def listing() -> str:
    """One line per study and group: its name and what it is."""
    return "\n".join(f"{name}: {target.what}" for name, target in CATALOGUE.items())
