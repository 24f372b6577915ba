"""Ott et al., "ResNet After All? Neural ODEs and Their Numerical Solution" (ICLR 2021):
the studies that odeness's core runs for the paper."""

from .adaptation import run_adaptation as run_adaptation
from .figure2 import run_figure2 as run_figure2
from .figure3 import run_figure3 as run_figure3
from .report import ode_report as ode_report
from .sweep import run_sweep as run_sweep

__all__ = ["ode_report", "run_adaptation", "run_figure2", "run_figure3", "run_sweep"]
