"""Markdown tables and mean ± std cells: the one writer the studies' summaries share."""

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np


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
