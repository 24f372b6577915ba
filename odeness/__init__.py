"""odeness: is this trained model really an ODE, or a discrete network that only works
with the solver it was trained with?

Solver-swap evaluation, the critical step size and training tools for Neural ODEs
and the step-size / tolerance adaptation that keeps training in the ODE regime
(Ott et al., ICLR 2021), in JAX with equinox, diffrax and optax.
"""

from . import adapt, diagnostics, io, plots, resnet_ode, solvers
from .adapt import StepSizeRule, ToleranceRule
from .adapt_run import run_adaptation
from .data import Dataset, load_dataset
from .diagnostics import (
    count_crossings,
    global_error,
    lady_windermere_fan,
    nonpositive_det_fraction,
    round_trip_error,
    trajectories,
)
from .integrate import Integrator, SolveStats, solve, trajectory
from .models import (
    ConvField1d,
    ConvField2d,
    Linear,
    MLPField,
    ODEClassifier,
    ResNetClassifier,
    make_classifier,
)
from .solvers import solver
from .swap import (
    SwapResult,
    accuracy,
    at_least_as_accurate,
    critical_step_size,
    evaluate_solver_swap,
    scaled_steps,
)
from .sweep import run_sweep
from .train import TrainConfig, TrainResult, load_run, train

__all__ = [
    "ConvField1d",
    "ConvField2d",
    "Dataset",
    "Integrator",
    "Linear",
    "MLPField",
    "ODEClassifier",
    "ResNetClassifier",
    "SolveStats",
    "StepSizeRule",
    "SwapResult",
    "TrainConfig",
    "TrainResult",
    "ToleranceRule",
    "adapt",
    "accuracy",
    "count_crossings",
    "diagnostics",
    "global_error",
    "lady_windermere_fan",
    "nonpositive_det_fraction",
    "round_trip_error",
    "trajectories",
    "trajectory",
    "at_least_as_accurate",
    "critical_step_size",
    "evaluate_solver_swap",
    "io",
    "load_dataset",
    "load_run",
    "make_classifier",
    "plots",
    "resnet_ode",
    "run_adaptation",
    "run_sweep",
    "scaled_steps",
    "solve",
    "solver",
    "solvers",
    "train",
]
