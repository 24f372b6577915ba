"""odeness: is this trained model really an ODE, or a discrete network that only works
with the solver it was trained with?

Solver-swap evaluation, the critical step size and training tools for Neural ODEs
and the step-size / tolerance adaptation that keeps training in the ODE regime
(Ott et al., ICLR 2021), in JAX with equinox, diffrax and optax.
"""

from . import adapt, diagnostics, errors, io, resnet_ode, solvers
from .adapt import StepSizeRule, ToleranceRule
from .data import Dataset, load_dataset
from .diagnostics import (
    count_crossings,
    global_error,
    lady_windermere_fan,
    nonpositive_det_fraction,
    round_trip_error,
    trajectories,
)
from .errors import Diverged, RunFailed, SolveFailed
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
    swap_configurations,
)
from .train import TrainConfig, TrainResult, check_run_folder, load_run, train

__all__ = [
    "accuracy",
    "adapt",
    "at_least_as_accurate",
    "check_run_folder",
    "ConvField1d",
    "ConvField2d",
    "count_crossings",
    "critical_step_size",
    "Dataset",
    "diagnostics",
    "Diverged",
    "errors",
    "evaluate_solver_swap",
    "global_error",
    "Integrator",
    "io",
    "lady_windermere_fan",
    "Linear",
    "load_dataset",
    "load_run",
    "make_classifier",
    "MLPField",
    "nonpositive_det_fraction",
    "ODEClassifier",
    "resnet_ode",
    "ResNetClassifier",
    "round_trip_error",
    "RunFailed",
    "scaled_steps",
    "solve",
    "SolveFailed",
    "solver",
    "solvers",
    "SolveStats",
    "StepSizeRule",
    "swap_configurations",
    "SwapResult",
    "ToleranceRule",
    "train",
    "TrainConfig",
    "TrainResult",
    "trajectories",
    "trajectory",
]
