"""The pure training step and the scanned, seed-`vmap`-ed chunk of steps.

One compiled program trains every seed of a configuration at once; `train_chunk` runs
`length` steps of each inside `lax.scan`.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from ._batching import chunk_batch_indices
from ._integrate import Integrator, Regularised
from ._metrics import AbstractMetric, Accuracy
from ._neural_ode import AbstractODEModel
from ._regularisers import AbstractPenalty, AbstractRegulariser
from ._rules import AbstractRule, AdaptationCheck, adapt_step

Loss = Callable[[PyTree[Array], Array], Float[Array, ""]]
"""A training loss `loss(outputs, targets) -> scalar`, the batch's mean."""
_ACCURACY = Accuracy()


class TrainState(NamedTuple):
    """The carry of the training loop (one per seed; stacked along axis 0 under vmap)."""

    params: PyTree[Array]
    opt_state: optax.OptState
    key: PRNGKeyArray  # the seed's data-order key
    step: Int[Array, ""]
    adapt: PyTree = None  # the adaptation rule's state (`odeness.adapt`), if adapting


class StepMetrics(NamedTuple):
    """What one training iteration reports, per seed."""

    loss: Float[Array, ""]
    accuracy: Float[Array, ""]
    """The training batch's score under the run's metric (accuracy by default)."""
    nfe: Int[Array, ""]
    num_steps: Int[Array, ""]
    finite: Bool[Array, ""]
    """The loss and every parameter after the update are finite."""
    success: Bool[Array, ""]
    """The training solve reached `t1` (it may not, for an adaptive solver at its
    `max_steps`)."""
    value: Float[Array, ""] | None = None
    """Adapted runs: the step size or tolerance after this iteration."""
    check: AdaptationCheck | None = None
    """Adapted runs: what this iteration's check measured (NaN accuracies, 0 NFE if none
    ran)."""
    penalties: dict[str, Float[Array, ""]] | None = None
    """Regularised runs: each penalty's batch mean (before its weight)."""
    penalty_nfe: Int[Array, ""] | None = None
    """Regularised runs: the evaluations the penalties cost beyond `nfe`."""


@functools.lru_cache(maxsize=64)
def adam(learning_rate: float) -> optax.GradientTransformation:
    """Adam with the learning rate as a traced hyper-parameter (no recompiles).

    One object per learning rate: the training program takes the optimizer as a static
    argument, so that runs with the same configuration share one compiled program."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


def cross_entropy(logits: Float[Array, "batch classes"], labels: Int[Array, " batch"]):
    """Mean softmax cross-entropy of integer labels: the papers' training loss."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def negative_log_likelihood(log_likelihood: Float[Array, " batch"], targets: Array):
    """The mean negative log-likelihood of a density model's outputs (`odeness.CNF`):
    a flow's training loss. The targets are not used."""
    del targets
    return -jnp.mean(log_likelihood)


Regularisation = tuple[tuple[AbstractRegulariser, float], ...]
"""A run's regularisers and their weights (a `RandomEndTime` has no penalty: weight 0)."""

PENALTY_STREAM = 0x5EED
"""Folded into a seed's key: the random numbers of the regularisers of one iteration are
`fold_in(fold_in(key, PENALTY_STREAM), step)`, a pure function of (seed, step)."""
MODEL_STREAM = 0xF10
"""Folded into a seed's key: a model's own random numbers of one iteration (a CNF's trace
probes, `AbstractODEModel.with_key`) are `fold_in(fold_in(key, MODEL_STREAM), step)`."""


def loss_fn(
    model,
    integ: Integrator | Regularised,
    x,
    y,
    loss: Loss = cross_entropy,
    metric: AbstractMetric = _ACCURACY,
    regularisation: Regularisation = (),
):
    """`loss(model(x), y)` plus each penalty's batch mean times its weight; auxiliary:
    the batch's `metric`, the solve's statistics and the penalties' batch means.

    **Raises:** `ValueError` (while tracing) if the model's statistics lack a penalty of
    `integ`'s regularisers (a model that does not return `odeness.solve`'s statistics).
    """
    outputs, stats = model(x, integ)
    value = loss(outputs, y)
    penalties = {name: jnp.mean(v) for name, v in stats.penalties.items()}
    for regulariser, weight in regularisation:
        if not isinstance(regulariser, AbstractPenalty):
            continue
        if regulariser.name not in penalties:
            raise ValueError(
                f"the model returned no penalty {regulariser.name!r}: regularisers need a "
                "model that solves with odeness.solve and returns its SolveStats"
            )
        value = value + weight * penalties[regulariser.name]
    return value, (metric.mean(outputs, y), stats, penalties)


def train_step(
    state: TrainState,
    static: PyTree,
    integ: Integrator | AbstractRule,
    opt: optax.GradientTransformation,
    x: Float[Array, "batch ..."],
    y: Array,
    due: Bool[Array, ""] | bool = False,
    *,
    loss: Loss = cross_entropy,
    metric: AbstractMetric = _ACCURACY,
    regularisation: Regularisation = (),
) -> tuple[TrainState, StepMetrics]:
    """One optimiser step of `loss` on the batch `(x, y)`. Pure.

    `integ` is the training integrator, or an adaptation rule whose state
    (`state.adapt`) gives it. With a rule, the check runs if `due` (before the optimiser
    update, on the same batch; see `odeness.adapt_step`) and compares `metric` between
    the training and the test solver. `regularisation`: the regularisers of the training
    solve and their weights (the check's solves have none).
    """
    rule = integ if isinstance(integ, AbstractRule) else None
    if rule is not None:
        integ = rule.integrator(state.adapt)
    assert isinstance(integ, Integrator)
    trained = integ
    if regularisation:
        key = jax.random.fold_in(jax.random.fold_in(state.key, PENALTY_STREAM), state.step)
        trained = integ.regularised(tuple(r for r, _ in regularisation), key=key)

    def loss_of_params(params):
        model = eqx.combine(params, static)
        if isinstance(model, AbstractODEModel) and model.needs_key:
            key = jax.random.fold_in(
                jax.random.fold_in(state.key, MODEL_STREAM), state.step
            )
            model = model.with_key(key)
        return loss_fn(model, trained, x, y, loss, metric, regularisation)

    (value, (accuracy, stats, penalties)), grads = jax.value_and_grad(
        loss_of_params, has_aux=True
    )(state.params)
    nfe = jnp.max(stats.nfe)
    metrics = StepMetrics(
        value,
        accuracy,
        nfe,
        jnp.max(stats.num_steps),
        jnp.isfinite(value),
        jnp.all(stats.success),
    )
    if regularisation:
        metrics = metrics._replace(
            penalties=penalties, penalty_nfe=jnp.max(jnp.asarray(stats.penalty_nfe))
        )
    adapt = state.adapt
    if rule is not None:
        model = eqx.combine(state.params, static)

        unit = metric.scale(y)  # the rule compares scores in threshold units

        def evaluate(test_integ: Integrator):
            outputs, test_stats = model(x, test_integ)
            return (
                metric.mean(outputs, y) / unit,
                jnp.max(test_stats.nfe),
                jnp.all(test_stats.success),
            )

        adapt, check = adapt_step(  # the values are checked on the host (`train`)
            rule, adapt, jnp.asarray(due), evaluate, accuracy / unit, nfe, check_value=False
        )
        metrics = metrics._replace(value=rule.value(adapt), check=check)
    updates, opt_state = opt.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = metrics._replace(finite=metrics.finite & all_finite(params))
    return TrainState(params, opt_state, state.key, state.step + 1, adapt), metrics


def all_finite(tree: PyTree[Array]) -> Bool[Array, ""]:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts traces: eqx.debug.get_num_traces
def train_chunk(
    states: TrainState,
    static: PyTree,
    integ: Integrator | AbstractRule,
    opt: optax.GradientTransformation,
    x_all,
    y_all,
    *,
    batch_size: int,
    length: int,
    start: Int[Array, ""] | None = None,
    batch_sharding: NamedSharding | None = None,
    loss: Loss = cross_entropy,
    metric: AbstractMetric = _ACCURACY,
    regularisation: Regularisation = (),
) -> tuple[TrainState, StepMetrics]:
    """`length` train steps of every seed: `lax.scan` inside, `vmap` over seeds.

    The seed axis may be sharded over devices (the inputs' sharding decides);
    `batch_sharding` splits every batch along its batch axis (data parallelism).

    With an adaptation rule, `start` is the (common) step of every seed: the checks
    are due where `step % rule.interval == 0`, decided from this shared counter, so
    that under `vmap` the check stays a branch taken only on those iterations.
    """
    rule = integ if isinstance(integ, AbstractRule) else None
    offsets = jnp.arange(length)
    if rule is None:
        due = jnp.zeros(length, dtype=bool)
    else:
        assert start is not None
        due = (start + offsets) % rule.interval == 0

    def batch(idx):
        xb, yb = x_all[idx], y_all[idx]
        if batch_sharding is None:
            return xb, yb
        return (
            jax.lax.with_sharding_constraint(xb, batch_sharding),
            jax.lax.with_sharding_constraint(yb, batch_sharding),
        )

    def run(state):
        idx = chunk_batch_indices(state.key, state.step, length, x_all.shape[0], batch_size)
        return jax.lax.scan(
            lambda s, xs: train_step(
                s,
                static,
                integ,
                opt,
                *batch(xs[0]),
                xs[1],
                loss=loss,
                metric=metric,
                regularisation=regularisation,
            ),
            state,
            (idx, due),
        )

    return jax.vmap(run)(states)
