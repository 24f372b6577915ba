"""odeness: is this trained model really an ODE, or a discrete network that only works
with the solver it was trained with?

Solver-swap evaluation, the critical step size and training tools for Neural ODEs
and the step-size / tolerance adaptation that keeps training in the ODE regime
(Ott et al., ICLR 2021), in JAX with equinox, diffrax and optax.
"""

from importlib.metadata import version as _version

from . import (
    adapt as adapt,
    batching as batching,
    config as config,
    data as data,
    diagnostics as diagnostics,
    errors as errors,
    integrate as integrate,
    io as io,
    metrics as metrics,
    models as models,
    neural_ode as neural_ode,
    parallel as parallel,
    resnet_ode as resnet_ode,
    runs as runs,
    solvers as solvers,
    step as step,
    swap as swap,
    training as training,
)
from .adapt import (
    AbstractRule as AbstractRule,
    StepSizeRule as StepSizeRule,
    ToleranceRule as ToleranceRule,
)
from .config import TrainConfig as TrainConfig
from .data import (
    Dataset as Dataset,
    load_dataset as load_dataset,
)
from .diagnostics import (
    count_crossings as count_crossings,
    global_error as global_error,
    lady_windermere_fan as lady_windermere_fan,
    nonpositive_det_fraction as nonpositive_det_fraction,
    round_trip_error as round_trip_error,
    step_determinants as step_determinants,
    trajectories as trajectories,
)
from .errors import (
    Diverged as Diverged,
    RunFailed as RunFailed,
    SolveFailed as SolveFailed,
)
from .integrate import (
    Integrator as Integrator,
    SolveStats as SolveStats,
    solve as solve,
    trajectory as trajectory,
)
from .metrics import (
    AbstractMetric as AbstractMetric,
    Accuracy as Accuracy,
    CrossEntropy as CrossEntropy,
    MeanSquaredError as MeanSquaredError,
    Metric as Metric,
    as_metric as as_metric,
)
from .models import (
    ConvField1d as ConvField1d,
    ConvField2d as ConvField2d,
    Linear as Linear,
    MLPField as MLPField,
    ODEClassifier as ODEClassifier,
    ResNetClassifier as ResNetClassifier,
    make_classifier as make_classifier,
)
from .neural_ode import (
    AbstractODEModel as AbstractODEModel,
    NeuralODE as NeuralODE,
)
from .runs import check_run_folder as check_run_folder
from .solvers import solver as solver
from .swap import (
    SwapResult as SwapResult,
    SwapRow as SwapRow,
    accuracy as accuracy,
    at_least_as_accurate as at_least_as_accurate,
    critical_step_size as critical_step_size,
    evaluate_solver_swap as evaluate_solver_swap,
    scaled_steps as scaled_steps,
    score as score,
    swap_configurations as swap_configurations,
)
from .training import (
    TrainResult as TrainResult,
    load_run as load_run,
    train as train,
)

__version__ = _version("odeness")

__all__ = [
    "__version__",
    "AbstractMetric",
    "AbstractODEModel",
    "AbstractRule",
    "Accuracy",
    "accuracy",
    "adapt",
    "as_metric",
    "at_least_as_accurate",
    "batching",
    "check_run_folder",
    "config",
    "ConvField1d",
    "ConvField2d",
    "count_crossings",
    "critical_step_size",
    "CrossEntropy",
    "data",
    "Dataset",
    "diagnostics",
    "Diverged",
    "errors",
    "evaluate_solver_swap",
    "global_error",
    "integrate",
    "Integrator",
    "io",
    "lady_windermere_fan",
    "Linear",
    "load_dataset",
    "load_run",
    "make_classifier",
    "MeanSquaredError",
    "Metric",
    "metrics",
    "MLPField",
    "models",
    "neural_ode",
    "NeuralODE",
    "nonpositive_det_fraction",
    "ODEClassifier",
    "parallel",
    "resnet_ode",
    "ResNetClassifier",
    "round_trip_error",
    "RunFailed",
    "runs",
    "scaled_steps",
    "score",
    "solve",
    "SolveFailed",
    "solver",
    "solvers",
    "SolveStats",
    "step",
    "step_determinants",
    "StepSizeRule",
    "swap",
    "swap_configurations",
    "SwapResult",
    "SwapRow",
    "ToleranceRule",
    "train",
    "TrainConfig",
    "training",
    "TrainResult",
    "trajectories",
    "trajectory",
]
