"""Run the benchmarks: `python -m benchmarks [NAME ...] [--quick] [--rounds N] [--out DIR]`.

NAME is a module of `benchmarks/` (default: every one, `benchmarks.BENCHMARKS`). Each
prints its lines as it finishes and writes its numbers to `DIR/<name>.json` (default
`results/bench`), with the device they were measured on.
"""

import argparse
import importlib
import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path: the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax

from benchmarks import BENCHMARKS
from odeness import files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0], allow_abbrev=False
    )
    p.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    p.add_argument("--quick", action="store_true", help="fewer iterations and rounds")
    p.add_argument("--rounds", type=int, default=5, help="alternations of the programs")
    p.add_argument("--out", default="results/bench", help="folder of the JSON files")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown or args.rounds < 1:
        bad = f"unknown benchmark {unknown[0]!r}; expected some of {', '.join(BENCHMARKS)}"
        print(
            f"error: {bad if unknown else f'--rounds must be >= 1, got {args.rounds}'}",
            file=sys.stderr,
        )
        return 2
    device = str(jax.devices()[0])
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        result = module.run(quick=args.quick, rounds=args.rounds)
        for line in module.report(result):
            print(f"{name}: {line}", flush=True)
        files.write_json(Path(args.out) / f"{name}.json", {"device": device, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
