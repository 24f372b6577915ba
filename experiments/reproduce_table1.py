"""Table 1: every grid search and adapted run it needs, then the table.

    python experiments/reproduce_table1.py                 # spheres 2-D: Euler and dopri5
    python experiments/reproduce_table1.py --mnist         # and MNIST (Euler)
    python experiments/reproduce_table1.py --args "--seeds 0 1 2 --iterations 3000"

Runs, into --results: the Euler sweep (`sweep-euler`) and its adapted run
(`adapt-sphere2-euler`); the dopri5 sweep (`sweep-dopri5`) and adapted runs from the
paper's tol 1e-6 and from 1e-4 and 1e-3; with --mnist, the MNIST Euler sweep and adapted
run. Finished runs are reused (each folder resumes). Then writes table1.md
(`experiments/table1.py`). --args go to every sweep and adapted run.
"""

import shlex
import sys
from pathlib import Path

from experiments import adapt, sweep, table1
from experiments._cli import EXPECTED, Parser, report

STEPS = ["1", "2", "4", "8", "16", "32", "64", "128"]
MNIST_STEPS = ["2", "4", "8", "16", "32", "64"]
TOLS = ["1e-1", "1e-2", "1e-3", "1e-4", "1e-5", "1e-6"]
DOPRI5_STARTS = [None, "1e-4", "1e-3"]  # None: the paper's 1e-6


def plan(results: Path, *, mnist: bool, extra: list[str]) -> list[tuple[str, list[str]]]:
    """The (script, argv) runs of Table 1, in order, ending with the table itself."""

    def out(name: str) -> list[str]:
        return ["--out", str(results / name)]

    runs = [
        ("sweep", ["--solver", "euler", "--steps", *STEPS, *out("sweep-euler"), *extra]),
        ("adapt", ["--solver", "euler", *out("adapt-sphere2-euler"), *extra]),
        ("sweep", ["--solver", "dopri5", "--tols", *TOLS, "--test-solvers", "dopri5",
                   "--factors", "0.1", "1", "10", *out("sweep-dopri5"), *extra]),
    ]  # fmt: skip
    dopri5 = []
    for tol in DOPRI5_STARTS:
        name = "adapt-sphere2-dopri5" + ("" if tol is None else f"-tol{tol}")
        start = [] if tol is None else ["--tol", tol]
        runs.append(("adapt", ["--solver", "dopri5", *start, *out(name), *extra]))
        dopri5.append(str(results / name))
    rows = [
        "--row", str(results / "sweep-euler"), str(results / "adapt-sphere2-euler"),
        "--row", str(results / "sweep-dopri5"), *dopri5,
    ]  # fmt: skip
    if mnist:
        runs += [
            ("sweep", ["--dataset", "mnist", "--solver", "euler", "--steps", *MNIST_STEPS,
                       "--reference", "none", *out("sweep-mnist-euler"), *extra]),
            ("adapt", ["--dataset", "mnist", "--solver", "euler",
                       *out("adapt-mnist-euler"), *extra]),
        ]  # fmt: skip
        rows += ["--row", str(results / "sweep-mnist-euler"),
                 str(results / "adapt-mnist-euler")]  # fmt: skip
    return [*runs, ("table1", [*rows, "--out", str(results / "table1.md")])]


SCRIPTS = {"sweep": sweep.main, "adapt": adapt.main, "table1": table1.main}


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("--results", default="results", help="folder of the runs and table")
    p.add_argument("--mnist", action="store_true", help="also the MNIST row (needs "
                   "$ODENESS_MNIST_DIR or --args '--data-dir DIR'; CPU days)")  # fmt: skip
    p.add_argument("--args", default="", help="options for every sweep and adapted run")
    args = p.parse_args(argv)
    try:
        runs = plan(Path(args.results), mnist=args.mnist, extra=shlex.split(args.args))
    except EXPECTED as e:
        return report(e)
    for i, (script, script_argv) in enumerate(runs, start=1):
        print(
            f"[table 1: {i}/{len(runs)}] {script}.py {shlex.join(script_argv)}", flush=True
        )
        code = SCRIPTS[script](script_argv)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
