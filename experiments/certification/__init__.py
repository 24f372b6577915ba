"""Certification beside the threshold: the three verdicts (the solver swap's threshold,
self-convergence, convergence against the targets) of models that are already trained,
and the cheapest faithful solver of those that are ODEs (`experiments/certify.py`),
each study defined once (`experiments.lab.catalogue`). They train nothing: run the
studies whose models they read first (`make sweep-euler`; `make regularisation` for the
MNIST model).
"""

from experiments.lab.catalogue import Certify
from experiments.ott2021 import SWEEP_EULER

CERTIFY_EULER = Certify(
    "certify-euler",
    "the three verdicts of the 40 models of `make sweep-euler`, and the deployment "
    "solver of its ODEs",
    sweep=SWEEP_EULER,
)
CERTIFY_MNIST = Certify(
    "certify-mnist",
    "the same for the MNIST model (C = 16, dopri5 at tol 1e-3) of `make regularisation`",
    runs=("regularisation/mnist-dopri5-none/runs/dopri5-tol1e-03",),
)

STUDIES = (CERTIFY_EULER, CERTIFY_MNIST)
"""Every certification study."""
