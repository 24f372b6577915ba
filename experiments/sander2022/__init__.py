"""Sander et al., "Do Residual Neural Networks discretize Neural Ordinary Differential
Equations?" (NeurIPS 2022): the five experiments on `odeness.resnet_ode`
(`discretisation`), defined once as a study (`experiments.lab.catalogue`)."""

from experiments.lab.catalogue import Script
from experiments.sander2022.discretisation import (
    EXPERIMENTS as EXPERIMENTS,
    run_all as run_all,
)

RESNET_ODE = Script(
    "resnet-ode",
    "the five ResNet ↔ ODE experiments of Sander et al.: distance, adjoint error, "
    "linear ResNets, memory, MNIST fine-tuning",
    runs="resnets",
    outputs=(
        "summary.md",
        "distance.png",
        "adjoint.png",
        "linear.png",
        "memory.png",
    ),
)

STUDIES = (RESNET_ODE,)
"""Every study of the paper."""

__all__ = ["EXPERIMENTS", "RESNET_ODE", "run_all", "STUDIES"]
