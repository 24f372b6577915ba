"""The paper's Figure 2: the Euler-2 model's outputs over its decision regions
(`experiments.ott2021.decision_regions`). `--help` lists its options."""

import sys

if __package__ in (None, ""):  # run by path: the repository on sys.path
    import _repository  # noqa: F401  # pyright: ignore[reportMissingImports]

from experiments._cli import script

if __name__ == "__main__":
    sys.exit(script(__file__))
