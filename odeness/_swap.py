"""Solver-swap evaluation and the critical step size (Ott et al., ICLR 2021).

A model trained with one solver configuration is evaluated, with the same parameters, by
other solvers and step counts (or tolerances). A model that is an ODE keeps its accuracy
when the test solver is at least as accurate as the training one; a discrete network
that only works with its training solver does not.
"""

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, cast

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree, Shaped

from ._control import AbstractGrid, Tolerances
from ._errors import RunFailed, SolveFailed
from ._integrate import Integrator, Setting, SolveStats, evaluation_budget
from ._metrics import AbstractMetric, as_metric, targets_of
from ._solvers import solver, solver_name

Model = Callable[[Array, Integrator], tuple[PyTree[Array], SolveStats]]
"""What the swap asks of a model: `model(x, integ) -> (outputs, stats)`."""


@eqx.filter_jit
def _batch_score(model: Model, integ: Integrator, metric: AbstractMetric, x, y):
    outputs, stats = model(x, integ)
    # Shapes are static: checked once per compiled program, while tracing.
    metric.check_shapes(tuple(outputs.shape), tuple(y.shape))
    finite = jnp.all(
        jnp.array([jnp.all(jnp.isfinite(o)) for o in jax.tree.leaves(outputs)])
    )
    examples = metric.per_example(outputs, y)
    return metric.batch_total(outputs, y), jnp.max(stats.nfe), stats, finite, examples


def _label(integ: Integrator) -> str:
    items = integ.setting.to_json().items()
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def score(
    model: Model,
    integ: Integrator,
    x: Float[Array, "N ..."] | np.ndarray,
    y: Shaped[Array, "N ..."] | np.ndarray | None,
    *,
    metric: str | AbstractMetric = "accuracy",
    batch_size: int = 1000,
) -> tuple[float, float]:
    """`metric` of `model` solved with `integ` on all of `(x, y)`, and NFE per forward
    pass.

    Each batch's `metric.batch_total` is summed and divided by the number of examples,
    so a last partial batch weighs what it holds (the authors' evaluation divided it by
    the full batch size). Batches are solved as one ODE state each (with adaptive
    solvers the step sizes depend on the batch; `integ.per_sample` avoids that). The
    NFE is the mean over batches of each batch's forward-pass NFE.

    **Raises:** `ValueError` for an empty data set, an unknown metric or outputs whose
    shape does not fit the targets; `odeness.errors.SolveFailed` if a solve fails (an
    adaptive solver at its `max_steps`); `odeness.errors.RunFailed` if the model's
    outputs are not finite (a diverged model has no score to compare).
    """
    value, nfe, _ = score_examples(model, integ, x, y, metric=metric, batch_size=batch_size)
    return value, nfe


def score_examples(
    model: Model,
    integ: Integrator,
    x: Float[Array, "N ..."] | np.ndarray,
    y: Shaped[Array, "N ..."] | np.ndarray | None,
    *,
    metric: str | AbstractMetric = "accuracy",
    batch_size: int = 1000,
) -> tuple[float, float, np.ndarray]:
    """`score`, and each example's score (`metric.per_example`) as a NumPy array."""
    metric = as_metric(metric)
    y = targets_of(metric, x, y)
    n = len(y)
    if n == 0:
        raise ValueError("cannot evaluate on an empty data set")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if len(x) != n:
        raise ValueError(f"{len(x)} inputs and {n} targets: give one target per input")
    quiet = integ.replace(throw=False)  # failures are raised below
    total, nfes, examples = 0, [], []
    for start in range(0, n, batch_size):
        t, f, stats, finite, each = _batch_score(
            model,
            quiet,
            metric,
            jnp.asarray(x[start : start + batch_size]),
            jnp.asarray(y[start : start + batch_size]),
        )
        if not np.all(stats.success):
            raise SolveFailed(
                f"the solve with {_label(integ)} (max_steps={integ.max_steps}) failed on "
                f"the evaluation data: {stats.message()}"
            )
        if not finite:
            raise RunFailed(
                f"the model's outputs with {_label(integ)} are not finite; a diverged "
                "model is not evaluated"
            )
        total += t.item()
        nfes.append(int(f))
        examples.append(np.asarray(each))
    return total / n, float(np.mean(nfes)), np.concatenate(examples)


FIXED_STEP_SOLVERS = ("euler", "midpoint", "rk4")
"""The default test solvers of a training integrator on a grid (the paper's Fig. 4a)."""
FIXED_STEP_FACTORS = (0.5, 0.75, 1.0, 1.5, 2.0)
"""The default factors on the training step count (the paper's Fig. 4a)."""
TOLERANCE_FACTORS = (0.1, 1.0, 10.0)
"""The default factors on the training tolerance (the paper's Fig. 4c, 4d)."""


def default_swap(integrator: Integrator) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The default test solvers and factors of a solver swap of `integrator`.

    Fixed steps: euler, midpoint and rk4 at `round(factor × n)` steps for factors 0.5,
    0.75, 1, 1.5, 2 (the paper's Fig. 4a). Tolerances: the training solver itself at
    `tol × 0.1, 1, 10` (Fig. 4c, 4d).
    """
    if isinstance(integrator.control, Tolerances):
        return (solver_name(integrator.solver),), TOLERANCE_FACTORS
    return FIXED_STEP_SOLVERS, FIXED_STEP_FACTORS


def _under_swap_bound(integ: Integrator, most: int | None) -> Integrator:
    """`integ` as the swap solves it: a grid under the swap's `max_steps` (the same
    steps, and the one program of its solver in the swap)."""
    if most is None or not isinstance(integ.control, AbstractGrid):
        return integ
    return integ.replace(max_steps=evaluation_budget(max(most, integ.steps)))


class SwapRow(NamedTuple):
    """One test configuration of a solver swap and what it scored."""

    setting: Setting
    """The test integrator (`Integrator.setting`): its solver and control."""
    factor: float | None
    """The factor on the training steps or tolerance; None for the reference."""
    score: float
    """The swap's metric (`SwapResult.metric`) with this configuration."""
    nfe: float
    """Function evaluations per forward pass."""
    at_least_as_accurate: bool
    """Whether the configuration is at least as accurate as the training one
    (`Integrator.at_least_as_accurate`): only these count towards `max_gap`."""

    def to_json(self, metric: str = "accuracy") -> dict:
        """The row as it is written to disk: the setting, then the scores (the score
        under the metric's name)."""
        return {
            **self.setting.to_json(),
            "factor": self.factor,
            metric: self.score,
            "nfe": self.nfe,
            "at_least_as_accurate": self.at_least_as_accurate,
        }


class SwapResult(NamedTuple):
    """The solver swap of one trained model.

    `max_gap`: the largest degradation of the metric from `train_score` (an accuracy
    drop; an increase in error), in the metric's units, over the `rows` that are at
    least as accurate as the training configuration.
    """

    train: Integrator
    """The training integrator."""
    metric: AbstractMetric
    train_score: float
    train_nfe: float
    rows: list[SwapRow]
    max_gap: float
    scale: float = 1.0
    """The metric's unit of thresholds on the evaluation targets (`metric.scale`)."""
    example_changes: np.ndarray | None = None
    """Per evaluation example, the largest change of its score (in the metric's units
    over `scale`) from the training configuration's, over the rows at least as accurate:
    1 for an example whose prediction changed under accuracy, 0 for one that never did.
    Both directions count: an input that a finer solver gets right where training got it
    wrong also depends on the training solver."""

    def failing(self, threshold: float = 0.1) -> np.ndarray:
        """The indices of the evaluation examples whose score changed by more than
        `threshold` under a configuration at least as accurate (for accuracy: whose
        prediction flipped), in order.

        **Raises:** `ValueError` for a threshold that does not suit the metric, or a
        result without per-example changes (one made by hand)."""
        self.metric.check_threshold(threshold)
        if self.example_changes is None:
            raise ValueError("this SwapResult holds no per-example changes")
        return np.flatnonzero(self.example_changes > threshold)

    def failing_fraction(self, threshold: float = 0.1) -> float:
        """The fraction of evaluation examples that `failing` names."""
        failing = self.failing(threshold)
        assert self.example_changes is not None  # `failing` checked it
        return len(failing) / len(self.example_changes)

    @property
    def relative_gap(self) -> float:
        """`max_gap` in threshold units: over the metric's `scale` (1 for accuracy; the
        targets' mean square for squared error)."""
        return self.max_gap / self.scale

    def is_ode(self, threshold: float = 0.1) -> bool:
        """Whether the model kept its score: `relative_gap <= threshold`."""
        self.metric.check_threshold(threshold)
        return self.relative_gap <= threshold


def evaluate_solver_swap(
    model: Model,
    integrator: Integrator,
    x: Float[Array, "N ..."] | np.ndarray,
    y: Shaped[Array, "N ..."] | np.ndarray | None,
    *,
    metric: str | AbstractMetric = "accuracy",
    solvers: Sequence[str | diffrax.AbstractSolver] | None = None,
    factors: Sequence[float] | None = None,
    reference: Integrator | None = None,
    batch_size: int = 1000,
) -> SwapResult:
    """Evaluate the same parameters with other solvers and step counts or tolerances.

    **Arguments:**

    - `model`, `integrator`: the trained model (any `model(x, integ) -> (outputs,
        stats)`) and its training integrator.
    - `x`, `y`: the evaluation data (all of it is used): inputs and targets (`y=None`
        for a metric without targets, such as a density model's `"loglik"`).
    - `metric`: `"accuracy"` (default), `"mse"`, `"nll"`, `"loglik"` or an
        `AbstractMetric` such as `odeness.Metric(fn, higher_is_better=False)`.
    - `solvers`: test solvers, by name or object (default: `default_swap`).
    - `factors`: training on a grid tests `n_test = round(factor × n_train)` steps
        (halves rounded up, at least one step); adaptive training tests `tol × factor`
        (rtol and atol). Default: `default_swap`.
    - `reference`: an extra, fine configuration (e.g. RK4 with 256 steps).
    - `batch_size`: examples per evaluation batch (see `score`).

    **Returns:** a `SwapResult` (its `metric` says which metric and direction it used).

    **Raises:** as `swap_configurations` and `score`.
    """
    metric = as_metric(metric)
    y = targets_of(metric, x, y)
    configs = swap_configurations(integrator, solvers, factors, reference)
    grids = [t.steps for _, t in configs if isinstance(t.control, AbstractGrid)]
    most = max(grids, default=None)
    train_score, train_nfe, train_examples = score_examples(
        model,
        _under_swap_bound(integrator, most),
        x,
        y,
        metric=metric,
        batch_size=batch_size,
    )
    scale = float(metric.scale(jnp.asarray(y)))
    changes = np.zeros(len(train_examples))
    cache: dict[Setting, tuple[float, float, np.ndarray]] = {}
    rows = []
    for f, test in configs:
        setting = test.setting
        if setting not in cache:
            cache[setting] = score_examples(
                model,
                _under_swap_bound(test, most),
                x,
                y,
                metric=metric,
                batch_size=batch_size,
            )
        value, nfe, examples = cache[setting]
        at_least = test.at_least_as_accurate(integrator)
        rows.append(SwapRow(setting, f, value, nfe, at_least))
        if at_least:
            changes = np.maximum(changes, np.abs(examples - train_examples) / scale)
    # `swap_configurations` ensures at least one row is at least as accurate.
    max_gap = max(
        metric.degradation(train_score, r.score) for r in rows if r.at_least_as_accurate
    )
    return SwapResult(
        integrator, metric, train_score, train_nfe, rows, max_gap, scale, changes
    )


def swap_configurations(
    integrator: Integrator,
    solvers: Sequence[str | diffrax.AbstractSolver] | None = None,
    factors: Sequence[float] | None = None,
    reference: Integrator | None = None,
) -> list[tuple[float | None, Integrator]]:
    """The test configurations of `evaluate_solver_swap`: `(factor, integrator)` for each
    solver and factor (default: `default_swap`), then `(None, reference)`. Cheap:
    nothing is solved, so callers can check a plan before training.

    **Raises:** `ValueError` for an unknown solver, a factor that is not a finite number
    > 0, a solver that cannot run adaptively when `integrator` is adaptive, or a plan in
    which no test configuration is at least as accurate as `integrator` (its `max_gap`
    would be undefined).
    """
    default_solvers, default_factors = default_swap(integrator)
    solvers = default_solvers if solvers is None else solvers
    factors = default_factors if factors is None else factors
    if not factors or any(not (math.isfinite(f) and f > 0) for f in factors):
        raise ValueError(f"factors must be finite numbers > 0, got {tuple(factors)!r}")
    test_solvers = [solver(s) if isinstance(s, str) else s for s in solvers]
    scaled = [integrator.scaled(f) for f in factors]
    grids = [t.steps for t in scaled if isinstance(t.control, AbstractGrid)]
    budget = None if not grids else evaluation_budget(max(grids))
    # Fixed steps: one budget for every test solve (one program per solver).
    options = {} if budget is None else {"max_steps": budget}
    configs: list[tuple[float | None, Integrator]] = [
        (f, test.replace(solver=s, **options))
        for s in test_solvers
        for f, test in zip(factors, scaled, strict=True)
    ]
    if reference is not None:
        configs.append((None, reference))
    if not any(test.at_least_as_accurate(integrator) for _, test in configs):
        more = "≤ 1" if isinstance(integrator.control, Tolerances) else "≥ 1"
        raise ValueError(
            f"no test configuration is at least as accurate as the training one "
            f"({_label(integrator)}) among factors {tuple(factors)!r}; add a factor "
            f"{more} with a test solver of order ≥ {integrator.order}"
        )
    return configs


def check_threshold(threshold: float, metric: str | AbstractMetric = "accuracy") -> None:
    """**Raises:** `ValueError` unless `threshold` suits `metric` (in `[0, 1]` for an
    accuracy drop; see `AbstractMetric.check_threshold`)."""
    as_metric(metric).check_threshold(threshold)


def _gaps_by_training_value(
    results: Iterable[SwapResult] | Mapping[float, Sequence[float]],
    threshold: float,
    caller: str,
    kind: type,
    needs: str,
) -> dict[float, list[float]]:
    """The gaps (threshold units) of `results` by their training value
    (`AbstractControl.size`: the step size or the tolerance); every training control must
    be a `kind`, else `caller` says that it needs `needs`."""
    gaps: dict[float, list[float]] = defaultdict(list)
    if isinstance(results, Mapping):
        check_threshold(threshold)
        for v, g in cast(Mapping[float, Sequence[float]], results).items():
            gaps[float(v)].extend(g)
        return gaps
    results = list(results)
    metrics = {r.metric.name for r in results}
    if len(metrics) > 1:
        raise ValueError(f"{caller} needs one metric, got {sorted(metrics)}")
    for r in results:
        r.metric.check_threshold(threshold)
        if not isinstance(r.train.control, kind):
            raise ValueError(f"{caller} needs {needs}")
        gaps[r.train.control.size(r.train.length)].append(r.relative_gap)
    return gaps


def _largest_passing(gaps: Mapping[float, Sequence[float]], threshold: float, caller: str):
    if not gaps:
        raise ValueError(f"{caller} needs at least one result")
    star = None
    for v in sorted(gaps):  # finest first: stop at the first value that fails
        if float(np.mean(gaps[v])) > threshold:
            break
        star = v
    return star


def critical_step_size(
    results: Iterable[SwapResult] | Mapping[float, Sequence[float]], threshold: float = 0.1
) -> float | None:
    """The critical step size `h*` of a sweep over training step sizes.

    The largest training step size `h*` such that every training step size `h <= h*`
    keeps its score under more accurate test solvers: the mean over seeds of the swap's
    `relative_gap` (the accuracy drop; for squared error, its increase over the
    targets' mean square) is at most `threshold`. Models trained with `h <= h*` behave as
    ODEs; above, at least one step size does not.

    **Arguments:**

    - `results`: `SwapResult`s of runs on a grid of steps (several seeds per step size are
        averaged), or a mapping step size → gaps in threshold units (accuracy drops).
    - `threshold`: the degradation that counts as losing the score (the paper's
        adaptation uses an accuracy drop of 0.1).

    **Returns:** `h*`, or None if even the smallest step size fails.

    **Raises:** `ValueError` for no results, adaptive runs, results of different
    metrics or a threshold that does not suit their metric.
    """
    name = "critical_step_size"
    gaps = _gaps_by_training_value(
        results, threshold, name, AbstractGrid, "training runs on a grid of steps"
    )
    return _largest_passing(gaps, threshold, name)


def critical_tolerance(
    results: Iterable[SwapResult] | Mapping[float, Sequence[float]], threshold: float = 0.1
) -> float | None:
    """The critical tolerance `tol*` of a sweep over training tolerances: what
    `critical_step_size` is for adaptive training (rtol = atol = tol).

    The largest training tolerance `tol*` such that every training tolerance `<= tol*`
    keeps its score under test configurations at least as accurate (mean over seeds of
    the swap's `relative_gap` at most `threshold`).

    **Arguments:** `results`: `SwapResult`s of adaptive runs (several seeds per tolerance
    are averaged; the tolerance is the training `rtol`), or a mapping tolerance → gaps
    in threshold units; `threshold` as in `critical_step_size`.

    **Returns:** `tol*`, or None if even the tightest tolerance fails.

    **Raises:** `ValueError` for no results, runs on a grid, results of different
    metrics or a threshold that does not suit their metric.
    """
    name = "critical_tolerance"
    gaps = _gaps_by_training_value(
        results, threshold, name, Tolerances, "adaptive training runs"
    )
    return _largest_passing(gaps, threshold, name)
