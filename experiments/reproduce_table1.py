"""Table 1 and every run it needs (`study.py table1`; `--mnist`: `table1-mnist`). `--help`
lists its options."""

import sys

if __package__ in (None, ""):  # run by path: the repository on sys.path
    import _repository  # noqa: F401  # pyright: ignore[reportMissingImports]

from experiments._cli import script

if __name__ == "__main__":
    sys.exit(script(__file__))
