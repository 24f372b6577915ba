"""Markdown tables, mean ± std cells and a study's result files: what the studies'
summaries share."""

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from odeness import files


class MeanStd(NamedTuple):
    """The mean and (population) standard deviation of a few values, e.g. over seeds."""

    mean: float
    std: float

    @classmethod
    def of(cls, values: Iterable[float]) -> "MeanStd":
        values = list(values)
        if not values:
            raise ValueError("mean ± std of no values")
        return cls(float(np.mean(values)), float(np.std(values)))

    def format(self, fmt: str = ".3f") -> str:
        """`"mean ± std"`, both with the format spec `fmt`."""
        return f"{self.mean:{fmt}} ± {self.std:{fmt}}"

    def to_json(self) -> dict:
        return {"mean": self.mean, "std": self.std}


def mean_std(values: Iterable[float], fmt: str = ".3f") -> str:
    """The cell `"mean ± std"` of `values`."""
    return MeanStd.of(values).format(fmt)


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table with the column titles `head`.

    **Raises:** `ValueError` for a row with another number of cells than `head`.
    """
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if len(row) != len(head):
            raise ValueError(f"a row of {len(row)} cells in a table of {len(head)} columns")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def write_results(out: Path, stem: str, numbers: dict, markdown: str) -> None:
    """A study's numbers as `out/<stem>.json` and its page as `out/<stem>.md`, each
    written atomically."""
    files.write_json(out / f"{stem}.json", numbers)
    files.atomic_write_text(out / f"{stem}.md", markdown)
