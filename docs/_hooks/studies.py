"""MkDocs hook: the command tables of the studies, derived from their one definition
(`experiments.ott2021`, `experiments.sander2022`, `experiments.regularisation`).

A page marks where a table goes with `<!-- studies: GROUP -->`, GROUP being `ott2021`
(every stage of `make ott2021`, in order), `make` (every study with a `make` target of
its own), `sander2022` or `regularisation` (every stage of `make regularisation`); the
hook replaces the mark with a table of each study's `make` target, what it does and the
command it runs.
"""

import re
import sys
from pathlib import Path

_MARK = re.compile(r"^<!-- studies: (\w+) -->$", re.MULTILINE)


_REPO = Path(__file__).resolve().parents[2]


def _make_targets() -> set[str]:
    """The studies the Makefile gives a target of their own (its `STUDIES`)."""
    text = (_REPO / "Makefile").read_text().replace("\\\n", " ")
    found = re.search(r"^STUDIES := (.*)$", text, re.MULTILINE)
    if found is None:
        raise ValueError("the Makefile defines no STUDIES")
    return set(found[1].split())


def _groups():
    if str(_REPO) not in sys.path:  # the studies are not installed: the repository
        sys.path.insert(0, str(_REPO))
    from experiments import ott2021, regularisation, sander2022
    from experiments._catalogue import CATALOGUE
    from experiments.lab.runner import Group

    def studies(target):
        return target.studies() if isinstance(target, Group) else [target]

    targets = _make_targets()
    return {
        "ott2021": (ott2021.OTT2021.studies(), "results"),
        "sander2022": (sander2022.STUDIES, "results"),
        "make": (
            [s for name, t in CATALOGUE.items() if name in targets for s in studies(t)],
            "results",
        ),
        "regularisation": (regularisation.STUDIES, "results/regularisation"),
    }


def _table(studies, results: str) -> str:
    targets = _make_targets()
    lines = ["| study | what it is | what it runs |", "| --- | --- | --- |"]
    for s in studies:
        name = f"`make {s.name}`" if s.name in targets else f"`{s.name}`"
        lines.append(f"| {name} | {s.what} | `{s.command(results)}` |")
    return "\n".join(lines)


def on_page_markdown(markdown, page, config, files, **kwargs):
    if "<!-- studies:" not in markdown:
        return markdown
    groups = _groups()

    def table(match):
        if match[1] not in groups:
            raise ValueError(f"{page.file.src_uri}: no study group {match[1]!r}")
        return _table(*groups[match[1]])

    return _MARK.sub(table, markdown)
