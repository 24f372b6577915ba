"""Imported by a script of `experiments/` run by path (`python experiments/sweep.py`):
puts the repository first on the import path, so that `experiments` imports from it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
