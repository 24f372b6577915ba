"""Write the grid-search-against-adaptation table from finished sweeps and adapted runs.

    python experiments/table1.py \
        --row results/sweep-euler results/adapt-sphere2-euler \
        --row results/sweep-dopri5 results/adapt-sphere2-dopri5 --out results/table1.md

Each --row gives a sweep folder (`experiments/sweep.py`) and one or more adapted run
folders (`experiments/adapt.py`, e.g. from several starting tolerances) of the same data
set and solver. `make table1` runs them all.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._cli import Parser, run
from experiments.ott2021.grid_vs_adaptation import adapted_row, grid_row, table_markdown
from odeness import files


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("--row", nargs="+", action="append", required=True,
                   metavar="DIR", help="SWEEP_DIR ADAPT_DIR [ADAPT_DIR ...]")  # fmt: skip
    p.add_argument("--out", default="results/table1.md")
    args = p.parse_args(argv)
    return run(lambda: table1(args))


def table1(args) -> int:
    entries = []
    for sweep_dir, *adapt_dirs in args.row:
        if not adapt_dirs:
            raise ValueError(
                f"--row {sweep_dir} names no adapted run; expected SWEEP_DIR "
                "ADAPT_DIR [ADAPT_DIR ...]"
            )
        grid = grid_row(sweep_dir)
        adapteds = [adapted_row(d) for d in adapt_dirs]
        for adapt_dir, (_, adapted) in zip(adapt_dirs, adapteds, strict=True):
            if (grid.dataset, grid.solver) != (adapted.dataset, adapted.solver):
                raise ValueError(
                    f"{sweep_dir} ({grid.dataset}, {grid.solver}) and "
                    f"{adapt_dir} ({adapted.dataset}, {adapted.solver}) are "
                    "not the same task"
                )
        entries.append((grid, adapteds))
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the path of a file")
    files.check_folder(out.parent, "the folder of --out")
    text = table_markdown(entries)
    files.atomic_write_text(out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
