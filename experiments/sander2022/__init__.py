"""Sander et al., "Do Residual Neural Networks discretize Neural Ordinary Differential
Equations?" (NeurIPS 2022): the five experiments on `odeness.resnet_ode`
(`discretisation`), defined once as a study (`experiments.lab.runner`)."""

from experiments.lab.runner import Study
from experiments.sander2022.discretisation import EXPERIMENTS, ResnetOptions, run_all

RESNET_ODE = Study(
    "resnet-ode",
    "the five ResNet ↔ ODE experiments of Sander et al.: distance, adjoint error, "
    "linear ResNets, memory, MNIST fine-tuning",
    ResnetOptions(),
)

STUDIES = (RESNET_ODE,)
"""Every study of the paper."""
GROUPS = ()

__all__ = ["EXPERIMENTS", "GROUPS", "RESNET_ODE", "run_all", "STUDIES"]
