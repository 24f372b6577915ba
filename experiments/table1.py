"""Write the grid-search-against-adaptation table from finished sweeps and adapted runs.

    python experiments/table1.py \
        --row results/sweep-euler results/adapt-sphere2-euler \
        --row results/sweep-dopri5 results/adapt-sphere2-dopri5 --out results/table1.md

Each --row pairs a sweep folder (`experiments/sweep.py`) with an adapted run folder
(`experiments/adapt.py`) of the same data set and solver. `make table1` runs them all.
"""

import argparse
import sys
from pathlib import Path

from odeness import io
from odeness.table1 import adapted_row, grid_row, table_markdown


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--row", nargs=2, action="append", required=True,
                   metavar=("SWEEP_DIR", "ADAPT_DIR"))  # fmt: skip
    p.add_argument("--out", default="results/table1.md")
    args = p.parse_args(argv)
    try:
        entries = []
        for sweep_dir, adapt_dir in args.row:
            grid, adapted = grid_row(sweep_dir), adapted_row(adapt_dir)
            if (grid["dataset"], grid["solver"]) != (adapted["dataset"], adapted["solver"]):
                raise ValueError(
                    f"{sweep_dir} ({grid['dataset']}, {grid['solver']}) and {adapt_dir} "
                    f"({adapted['dataset']}, {adapted['solver']}) are not the same task"
                )
            entries.append((grid, adapted))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = table_markdown(entries)
    io.atomic_write_text(Path(args.out), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
