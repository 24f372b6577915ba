"""Every table and figure of Ott et al. that odeness regenerates, in one command.

    python experiments/reproduce_ott2021.py [--results results] [--docs docs/results]
    python experiments/reproduce_ott2021.py --seeds 1     # one seed per run

Runs, into --results, one stage after another (each resumes; finished runs are reused):
Figures 1, 2 and 3; the Euler sweep (Fig. 4a) and the ODE-ness report of its 8-step
model; Table 1's runs (the Euler adaptation, Fig. 5; the dopri5 sweep, Fig. 4d, and its
adapted runs; the table); the paper's RK4 (the 3/8 rule) sweep, tested with it and with
classic RK4 (Fig. 4b); the Fehlberg2 sweep, tested with Fehlberg2 and dopri5 (Fig. 4c);
the Euler sweep trained with the continuous adjoint; and the Euler sweeps on the 3-, 10-
and 900-dimensional spheres (the supplement). sphere10 trains 3 seeds, sphere900 3 seeds
on 1 … 32 steps with the fully connected field (the Conv1d field costs about 670 times
its 2-D cost there: `make bench`).

--seeds K trains seeds 0 … K-1 in every sweep and adapted run instead of the counts above
(5 unless stated), into results/ott2021-seedsK, and copies nothing into the documentation
unless --docs is given.

Each stage prints one progress line and its wall time; a stage that fails is reported and
the others still run (exit status 2 at the end). Then the tables and figures that exist
are copied into --docs (for the documentation, independent of one machine's results
folder).
"""

import shlex
import shutil
import sys
import time
from pathlib import Path

from experiments import (
    adapt,
    figure1,
    figure2,
    figure3,
    ode_report,
    reproduce_table1,
    sweep,
    table1,
)
from experiments._cli import Parser
from odeness import io

STEPS = reproduce_table1.STEPS
FEHLBERG2_TOLS = ["1e-1", "1e-2", "1e-3", "1e-4", "1e-5"]
SCRIPTS = {
    "figure1": figure1.main,
    "figure2": figure2.main,
    "figure3": figure3.main,
    "sweep": sweep.main,
    "adapt": adapt.main,
    "table1": table1.main,
    "ode_report": ode_report.main,
}


def plan(results: Path, seeds: int | None = None) -> list[tuple[str, list[str]]]:
    """The (script, argv) stages, in order; with `seeds`, every sweep and adapted run
    trains seeds 0 … seeds-1."""

    def out(name: str) -> list[str]:
        return ["--out", str(results / name)]

    quiet = ["--no-progress"]
    stages = [
        ("figure3", out("figure3")),
        ("figure2", [*out("figure2"), *quiet]),
        ("figure1", [*out("figure1"), *quiet]),
    ]
    table = reproduce_table1.plan(results, mnist=False, extra=quiet)
    report = str(results / "sweep-euler" / "runs" / "euler-n0008")
    stages += [table[0], ("ode_report", [report, "--out", f"{report}/report"]), *table[1:]]
    stages += [
        ("sweep", ["--solver", "rk4_38", "--steps", *STEPS, "--test-solvers", "rk4_38",
                   "rk4", *out("sweep-rk4"), *quiet]),
        ("sweep", ["--solver", "fehlberg2", "--tols", *FEHLBERG2_TOLS, "--test-solvers",
                   "fehlberg2", "dopri5", "--factors", "0.1", "1", "10",
                   *out("sweep-fehlberg2"), *quiet]),
        ("sweep", ["--solver", "euler", "--steps", *STEPS, "--adjoint", "backsolve",
                   *out("sweep-euler-backsolve"), *quiet]),
        ("sweep", ["--dataset", "sphere3", "--steps", *STEPS, *out("sweep-sphere3"),
                   *quiet]),
        ("sweep", ["--dataset", "sphere10", "--steps", *STEPS, "--seeds", "0", "1", "2",
                   *out("sweep-sphere10"), *quiet]),
        ("sweep", ["--dataset", "sphere900", "--field", "mlp", "--steps", *STEPS[:6],
                   "--seeds", "0", "1", "2", *out("sweep-sphere900"), *quiet]),
    ]  # fmt: skip
    if seeds is not None:
        only = ["--seeds", *map(str, range(seeds))]  # the last --seeds given wins
        stages = [(s, [*a, *only] if s in ("sweep", "adapt") else a) for s, a in stages]
    return stages


# What goes into the documentation: (folder under --results, its files).
PUBLISHED = {
    "figure1": ["figure1.md", "figure1.png", "fan.png"],
    "figure2": ["figure2.md", "figure2.png"],
    "figure3": ["figure3.md", "figure3.png"],
    "adapt-sphere2-euler": ["summary.md", "adaptation.png"],
    "sweep-euler/runs/euler-n0008/report": [
        "report.md",
        "swap.png",
        "trajectories.png",
        "fan.png",
    ],
    **{
        name: ["summary.md", "critical_step.json", "accuracy_vs_test_steps.png"]
        for name in (
            "sweep-euler",
            "sweep-dopri5",
            "sweep-rk4",
            "sweep-fehlberg2",
            "sweep-euler-backsolve",
            "sweep-sphere3",
            "sweep-sphere10",
            "sweep-sphere900",
        )
    },
    ".": ["table1.md"],
}


def publish(results: Path, docs: Path) -> list[Path]:
    """Copy the published files that exist from `results` into `docs` (one folder per
    run, the same names); return the copies."""
    copied = []
    for folder, names in PUBLISHED.items():
        for name in names:
            source = results / folder / name
            if source.is_file():
                target = docs / ("" if folder == "." else folder) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.tmp")
                shutil.copyfile(source, tmp)
                io.publish(tmp, target)  # atomically: never a half-copied figure
                copied.append(target)
    return copied


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("--results", help="folder of the runs (default results, with --seeds "
                   "K results/ott2021-seedsK)")  # fmt: skip
    p.add_argument("--docs", help="where the tables and figures go (default docs/results; "
                   "with --seeds none)")  # fmt: skip
    p.add_argument("--seeds", type=int, help="seeds per sweep and adapted run (default: "
                   "the documented counts)")  # fmt: skip
    p.add_argument(
        "--publish-only",
        action="store_true",
        help="run nothing: copy the tables and figures that exist into --docs",
    )
    args = p.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        p.error(f"--seeds must be an integer >= 1, got {args.seeds}")
    if args.seeds is None:
        results, docs = Path(args.results or "results"), args.docs or "docs/results"
    else:  # not the documented counts: its own folder, published only when asked
        results = Path(args.results or f"results/ott2021-seeds{args.seeds}")
        docs = args.docs
    stages = plan(results, args.seeds)
    if args.publish_only:
        stages = []
    start, failed = time.perf_counter(), []
    for i, (script, script_argv) in enumerate(stages, start=1):
        began = time.perf_counter()
        print(
            f"[ott2021 {i}/{len(stages)}] {script}.py {shlex.join(script_argv)}", flush=True
        )
        code = SCRIPTS[script](script_argv)
        if code != 0:
            failed.append(f"{i} ({script}.py, exit status {code})")
        now = time.perf_counter()
        print(
            f"[ott2021 {i}/{len(stages)}] {'done' if code == 0 else 'FAILED'} in "
            f"{now - began:.0f} s (total {now - start:.0f} s)",
            flush=True,
        )
    if docs is not None:
        copied = publish(results, Path(docs))
        print(f"[ott2021] {len(copied)} tables and figures copied into {docs}", flush=True)
    if failed:
        print(f"error: stages that failed: {', '.join(failed)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
