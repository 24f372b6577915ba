"""Certification beside the threshold: the three verdicts (the solver swap's threshold,
self-convergence, convergence against the targets) and the cheapest faithful solver of
models already trained (`experiments/certify.py`), each study defined once
(`experiments.lab.runner`). They train nothing: run the studies whose models they read
first (`make sweep-euler`; `make regularisation` for the MNIST model).
"""

from experiments.lab.certification import CertifyOptions
from experiments.lab.runner import Group, Study
from experiments.lab.sweep_runs import STEPS

CERTIFY_EULER = Study(
    "certify-euler",
    "the three verdicts of the 40 models of `make sweep-euler`, and the deployment "
    "solver of its ODEs",
    CertifyOptions(runs=tuple(f"sweep-euler/runs/euler-n{n:04d}" for n in STEPS)),
)
CERTIFY_MNIST = Study(
    "certify-mnist",
    "the same for the MNIST model (C = 16, dopri5 at tol 1e-3) of `make regularisation`",
    CertifyOptions(runs=("regularisation/mnist-dopri5-none/runs/dopri5-tol1e-03",)),
)
STUDIES = (CERTIFY_EULER, CERTIFY_MNIST)
"""Every certification study."""
CERTIFICATION = Group(
    "certification",
    "the three verdicts and the deployment solver of the trained models",
    STUDIES,
)
GROUPS = (CERTIFICATION,)
