"""Table 1: every grid search and adapted run it needs, then the table.

    python experiments/reproduce_table1.py                 # spheres 2-D: Euler and dopri5
    python experiments/reproduce_table1.py --mnist         # and MNIST (Euler)
    python experiments/reproduce_table1.py --args "--seeds 0 1 2 --iterations 3000"

Runs, into --results, the studies of `experiments.ott2021.TABLE1` (with --mnist,
`TABLE1_MNIST`): the Euler sweep and its adapted run; the dopri5 sweep and adapted runs
from the paper's tol 1e-6 and from 1e-4 and 1e-3; with --mnist, the MNIST Euler sweep
and adapted run. Finished runs are reused (each folder resumes). Then writes table1.md
(`experiments/table1.py`). --args go to every sweep and adapted run.
"""

import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._cli import Parser, run, script_main
from experiments.ott2021 import TABLE1, TABLE1_MNIST


def plan(results: Path, *, mnist: bool, extra: list[str]) -> list[tuple[str, list[str]]]:
    """The (script, argv) runs of Table 1, in order, ending with the table itself."""
    table = TABLE1_MNIST if mnist else TABLE1
    runs = [(s.script, s.argv(results, extra)) for s in table.studies()]
    return [*runs, (table.script, table.argv(results))]


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("--results", default="results", help="folder of the runs and table")
    p.add_argument("--mnist", action="store_true", help="also the MNIST row (needs "
                   "$ODENESS_MNIST_DIR or --args '--data-dir DIR'; CPU days)")  # fmt: skip
    p.add_argument("--args", default="", help="options for every sweep and adapted run")
    args = p.parse_args(argv)
    return run(lambda: reproduce(args))


def reproduce(args) -> int:
    runs = plan(Path(args.results), mnist=args.mnist, extra=shlex.split(args.args))
    for i, (script, script_argv) in enumerate(runs, start=1):
        print(
            f"[table 1: {i}/{len(runs)}] {script}.py {shlex.join(script_argv)}", flush=True
        )
        code = script_main(script)(script_argv)
        if code != 0:  # a failure or an interruption: the script said which
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
