"""odeness: is this trained model really an ODE, or a discrete network that only works
with the solver it was trained with?

Solver-swap evaluation, the critical step size and training tools for Neural ODEs
and the step-size / tolerance adaptation that keeps training in the ODE regime
(Ott et al., ICLR 2021), in JAX with equinox, diffrax and optax.

Everything a user calls is a name of this namespace; four namespaces are imported as
such: `odeness.data` (data sets and their builders), `odeness.diagnostics` (why a model
is not an ODE), `odeness.resnet_ode` (ResNets as discretised ODEs) and `odeness.files`
(the atomic files runs write).
"""

from importlib.metadata import version as _version

from . import (
    data as data,
    diagnostics as diagnostics,
    files as files,
    resnet_ode as resnet_ode,
)
from ._cnf import (
    CNF as CNF,
    AbstractBase as AbstractBase,
    AbstractTrace as AbstractTrace,
    ExactTrace as ExactTrace,
    HutchinsonTrace as HutchinsonTrace,
    StandardNormal as StandardNormal,
    make_flow as make_flow,
)
from ._config import TrainConfig as TrainConfig
from ._control import (
    AbstractControl as AbstractControl,
    AbstractGrid as AbstractGrid,
    Steps as Steps,
    StepSize as StepSize,
    Tolerances as Tolerances,
)
from ._convergence import (
    ConvergenceTest as ConvergenceTest,
    SelfConvergence as SelfConvergence,
    convergence_test as convergence_test,
    self_convergence as self_convergence,
)
from ._density import (
    DensityIntegral as DensityIntegral,
    grid_integral as grid_integral,
    importance_integral as importance_integral,
)
from ._deployment import (
    Candidate as Candidate,
    CheapestSolver as CheapestSolver,
    cheapest_solver as cheapest_solver,
    default_candidates as default_candidates,
)
from ._devices import Layout as Layout, initialize_distributed as initialize_distributed
from ._errors import (
    Diverged as Diverged,
    FolderInUse as FolderInUse,
    RunFailed as RunFailed,
    SolveFailed as SolveFailed,
)
from ._integrate import (
    Integrator as Integrator,
    Regularised as Regularised,
    Setting as Setting,
    SolveStats as SolveStats,
    penalties as penalties,
    solve as solve,
)
from ._metrics import (
    AbstractMetric as AbstractMetric,
    Accuracy as Accuracy,
    CrossEntropy as CrossEntropy,
    LogLikelihood as LogLikelihood,
    MeanSquaredError as MeanSquaredError,
    Metric as Metric,
)
from ._models import (
    ConcatSquashField as ConcatSquashField,
    ConvField1d as ConvField1d,
    ConvField2d as ConvField2d,
    Linear as Linear,
    MLPField as MLPField,
    ODEClassifier as ODEClassifier,
    make_classifier as make_classifier,
)
from ._neural_ode import (
    AbstractODEModel as AbstractODEModel,
    NeuralODE as NeuralODE,
)
from ._regularisers import (
    AbstractIntegralPenalty as AbstractIntegralPenalty,
    AbstractPenalty as AbstractPenalty,
    AbstractRegulariser as AbstractRegulariser,
    ErrorEstimate as ErrorEstimate,
    JacobianFrobenius as JacobianFrobenius,
    KineticEnergy as KineticEnergy,
    RandomEndTime as RandomEndTime,
    TaylorDerivative as TaylorDerivative,
    time_derivatives as time_derivatives,
)
from ._rules import (
    AbstractRule as AbstractRule,
    AdaptationCheck as AdaptationCheck,
    StepSizeRule as StepSizeRule,
    StepSizeState as StepSizeState,
    ToleranceRule as ToleranceRule,
    ToleranceState as ToleranceState,
    adapt_step as adapt_step,
    initial_step_size as initial_step_size,
)
from ._run_folder import (
    CheckRow as CheckRow,
    MetricsRow as MetricsRow,
    check_run_folder as check_run_folder,
)
from ._solvers import (
    RK4 as RK4,
    Fehlberg2 as Fehlberg2,
    RK4ThreeEighths as RK4ThreeEighths,
    is_adaptive as is_adaptive,
    solver as solver,
    solver_name as solver_name,
)
from ._stop import (
    Interrupted as Interrupted,
    cancel_stop as cancel_stop,
    raise_if_stopped as raise_if_stopped,
    request_stop as request_stop,
    stop_on_signals as stop_on_signals,
    stop_requested as stop_requested,
)
from ._swap import (
    SwapResult as SwapResult,
    SwapRow as SwapRow,
    critical_step_size as critical_step_size,
    critical_tolerance as critical_tolerance,
    default_swap as default_swap,
    evaluate_solver_swap as evaluate_solver_swap,
    score as score,
    swap_configurations as swap_configurations,
)
from ._training import (
    TrainResult as TrainResult,
    check_training as check_training,
    load_run as load_run,
    train as train,
)
from .data import (
    Dataset as Dataset,
    load_dataset as load_dataset,
)

__version__ = _version("odeness")

__all__ = [
    "__version__",
    "AbstractBase",
    "AbstractControl",
    "AbstractGrid",
    "AbstractIntegralPenalty",
    "AbstractMetric",
    "AbstractODEModel",
    "AbstractPenalty",
    "AbstractRegulariser",
    "AbstractRule",
    "AbstractTrace",
    "Accuracy",
    "adapt_step",
    "AdaptationCheck",
    "cancel_stop",
    "Candidate",
    "cheapest_solver",
    "CheapestSolver",
    "check_run_folder",
    "check_training",
    "CheckRow",
    "CNF",
    "ConcatSquashField",
    "convergence_test",
    "ConvergenceTest",
    "ConvField1d",
    "ConvField2d",
    "critical_step_size",
    "critical_tolerance",
    "CrossEntropy",
    "Dataset",
    "default_candidates",
    "default_swap",
    "DensityIntegral",
    "Diverged",
    "ErrorEstimate",
    "evaluate_solver_swap",
    "ExactTrace",
    "Fehlberg2",
    "FolderInUse",
    "grid_integral",
    "HutchinsonTrace",
    "importance_integral",
    "initial_step_size",
    "initialize_distributed",
    "Integrator",
    "Interrupted",
    "is_adaptive",
    "JacobianFrobenius",
    "KineticEnergy",
    "Layout",
    "Linear",
    "load_dataset",
    "load_run",
    "LogLikelihood",
    "make_classifier",
    "make_flow",
    "MeanSquaredError",
    "Metric",
    "MetricsRow",
    "MLPField",
    "NeuralODE",
    "ODEClassifier",
    "penalties",
    "raise_if_stopped",
    "RandomEndTime",
    "Regularised",
    "request_stop",
    "RK4",
    "RK4ThreeEighths",
    "RunFailed",
    "score",
    "self_convergence",
    "SelfConvergence",
    "Setting",
    "solve",
    "SolveFailed",
    "solver",
    "solver_name",
    "SolveStats",
    "StandardNormal",
    "Steps",
    "StepSize",
    "StepSizeRule",
    "StepSizeState",
    "stop_on_signals",
    "stop_requested",
    "swap_configurations",
    "SwapResult",
    "SwapRow",
    "TaylorDerivative",
    "time_derivatives",
    "ToleranceRule",
    "Tolerances",
    "ToleranceState",
    "train",
    "TrainConfig",
    "TrainResult",
]
