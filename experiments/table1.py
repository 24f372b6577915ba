"""Write Table 1, grid search against adaptation, from finished sweeps and adapted runs
(`experiments.ott2021.grid_vs_adaptation`). `--help` lists its options."""

import sys

if __package__ in (None, ""):  # run by path: the repository on sys.path
    import _repository  # noqa: F401  # pyright: ignore[reportMissingImports]

from experiments._cli import script

if __name__ == "__main__":
    sys.exit(script(__file__))
