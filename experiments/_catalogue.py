"""Every study and group of the papers by the name its `make` target has
(`python experiments/study.py NAME`), and every kind of study they run."""

from experiments import certification, cnf, ott2021, regularisation, sander2022
from experiments.lab.options import AbstractOptions
from experiments.lab.runner import Group, Study

_PAPERS = (ott2021, sander2022, certification)
CATALOGUE: dict[str, Study | Group] = {
    **{s.name: s for paper in _PAPERS for s in paper.STUDIES},
    **{g.name: g for paper in (*_PAPERS, regularisation, cnf) for g in paper.GROUPS},
}
"""Every study and group, by name (the regularisation and flow studies' stages through
their groups)."""

_EVERY_STUDY = Group("all", "every study", tuple(CATALOGUE.values())).studies()
KINDS: tuple[type[AbstractOptions], ...] = tuple(
    dict.fromkeys(type(s.options) for s in _EVERY_STUDY)
)
"""Each kind of study, whose `command` is the script of `experiments/` that runs one."""


def find(name: str) -> Study | Group:
    """The study or group called `name`; a `ValueError` for another name lists them."""
    if name not in CATALOGUE:
        raise ValueError(f"unknown study {name!r}; expected one of {', '.join(CATALOGUE)}")
    return CATALOGUE[name]
