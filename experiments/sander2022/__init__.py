"""Sander et al., "Do Residual Neural Networks discretize Neural Ordinary Differential
Equations?" (NeurIPS 2022): the five experiments on `odeness.resnet_ode`."""

from .resnet_ode import EXPERIMENTS as EXPERIMENTS, run_all as run_all

__all__ = ["EXPERIMENTS", "run_all"]
