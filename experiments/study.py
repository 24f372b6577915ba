"""Run a study of the papers by name: what each `make` target of a figure, table or
sweep runs (`make sweep-euler` is `python experiments/study.py sweep-euler`).

    python experiments/study.py sweep-euler [OPTIONS ...]
    python experiments/study.py --list

The study's script (`experiments/<script>.py`) runs with the study's own options
(`experiments.ott2021`, `experiments.sander2022`, `experiments.certification`), writing
into `results/<name>`; the OPTIONS given come last, so they override the study's
(`--quick`, `--seeds 0 1`, `--out DIR`, ...). A group (`sweep-spheres`) runs its studies
in order and stops at the first that fails.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run by path (python experiments/NAME.py): the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import certification, ott2021, sander2022
from experiments._cli import run, script_main
from experiments.lab.catalogue import AbstractStudy

STUDIES: dict[str, tuple[AbstractStudy, ...]] = {
    **{s.name: (s,) for s in (*ott2021.STUDIES, ott2021.SWEEP_MIDPOINT)},
    **{s.name: (s,) for s in sander2022.STUDIES},
    **{s.name: (s,) for s in certification.STUDIES},
    **ott2021.GROUPS,
}
"""Every study and group, by the name its `make` target has."""


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if argv[0] == "--list":
        for name, studies in STUDIES.items():
            print(f"{name}: {'; '.join(s.what for s in studies)}")
        return 0
    name, options = argv[0], argv[1:]
    if name not in STUDIES:
        print(
            f"error: unknown study {name!r}; expected one of {', '.join(STUDIES)}",
            file=sys.stderr,
        )
        return 2
    return run(lambda: run_studies(STUDIES[name], options))


def run_studies(studies, options) -> int:
    """Run each study's script in turn; stop at the first that fails or is stopped."""
    for study in studies:
        code = script_main(study.script)(study.argv("results", options))
        if code != 0:  # a failure or an interruption: the script said which
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
