"""`train`: every seed of a configuration at once, resumed from its run folder.

The host sees the loop once per chunk (`log_every` iterations): to check that the chunk
stayed finite, log metrics, write checkpoints and move the progress bar.
"""

import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray, PyTree
from tqdm.auto import tqdm

from . import files
from ._batching import batch_indices
from ._cnf import make_flow
from ._config import TrainConfig
from ._devices import Layout, Placement, placement, to_host
from ._errors import Diverged, FolderInUse, RunFailed, SolveFailed
from ._integrate import Integrator
from ._metrics import AbstractMetric, Accuracy, LogLikelihood, as_metric
from ._models import make_classifier
from ._neural_ode import AbstractODEModel
from ._regularisers import (
    AbstractPenalty,
    AbstractRegulariser,
    check_regularisers,
    weight_ok,
)
from ._rules import AbstractRule, initial_step_size
from ._run_folder import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    CheckRow,
    Components,
    MetricsRow,
    check_components,
    check_run_folder,
    checkpointable,
    from_checkpointable,
    remove_new_files,
    resume,
)
from ._solvers import order
from ._stop import Interrupted, signal_name, stop_requested
from ._train_step import (
    Loss,
    Regularisation,
    StepMetrics,
    TrainState,
    adam,
    all_finite,
    cross_entropy,
    negative_log_likelihood,
    train_chunk,
)
from .data import Dataset

ModelInit = Callable[[PRNGKeyArray], eqx.Module]
"""A user's model builder: one seed's initial model from its key."""


class Recipe(NamedTuple):
    """What a run optimises and how, beyond its `TrainConfig`: the parts a user may give
    as objects (`train`'s `model`, `loss`, `metric`, `rule`, `optimizer`)."""

    model: ModelInit | None
    """The model builder (None: the classifier the configuration names)."""
    loss: Loss
    metric: AbstractMetric
    optimizer: optax.GradientTransformation
    rule: AbstractRule | None
    """The adaptation rule (None: no adaptation)."""
    regularisation: Regularisation
    """The training solves' regularisers and their weights (the configuration's, then
    those given as objects)."""
    components: Components
    """Which of them are the user's own, as the run folder records them."""


def recipe(
    config: TrainConfig,
    *,
    model: ModelInit | None = None,
    loss: Loss | None = None,
    metric: str | AbstractMetric | None = None,
    rule: AbstractRule | None = None,
    optimizer: optax.GradientTransformation | None = None,
    regularisers: Sequence[tuple[AbstractRegulariser, float]] = (),
    unlabelled: bool = False,
) -> Recipe:
    """`train`'s optional objects, checked, with the configuration's defaults filled in:
    a classifier's cross-entropy and accuracy, or for `unlabelled` data (a density) a
    flow's negative log-likelihood and log-likelihood.

    **Raises:** `ValueError` for a rule without `config.adapt`, a rule or optimizer of
    the wrong type, regularisers that are not `(regulariser, weight)` pairs with a
    finite weight >= 0, or two of one name.
    """
    given = []
    for pair in regularisers:
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise ValueError(
                f"regularisers must be (regulariser, weight) pairs, got {pair!r}"
            )
        regulariser, weight = pair
        if not weight_ok(weight):
            raise ValueError(
                f"the weight of {regulariser!r} must be a finite number >= 0, got "
                f"{weight!r}"
            )
        if weight or not isinstance(regulariser, AbstractPenalty):
            given.append((regulariser, float(weight)))
    regularisation = (*config.regularisers(), *given)
    check_regularisers([r for r, _ in regularisation], 0.0, 1.0)
    if rule is not None:
        if not isinstance(rule, AbstractRule):
            raise ValueError(f"rule must be an odeness.AbstractRule, got {rule!r}")
        if not config.adapt:
            raise ValueError(
                "rule= adapts the step size or tolerance: it needs a configuration with "
                "adapt=True"
            )
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(
            f"optimizer must be an optax.GradientTransformation, got {optimizer!r}"
        )
    return Recipe(
        model,
        (negative_log_likelihood if unlabelled else cross_entropy)
        if loss is None
        else loss,
        as_metric(metric or (LogLikelihood() if unlabelled else Accuracy())),
        adam(config.learning_rate) if optimizer is None else optimizer,
        config.rule() if rule is None else rule,
        regularisation,
        Components(
            model=None if model is None else "given",
            rule=None if rule is None else type(rule).__name__,
            optimizer=None if optimizer is None else "given",
            regularisers=(
                None if not given else ", ".join(f"{r.name} {w:g}" for r, w in given)
            ),
        ),
    )


class TrainResult(NamedTuple):
    """A finished (or resumed-and-finished) training run."""

    config: TrainConfig
    models: Any
    """The trained models of all seeds (an `ODEClassifier`, or the type your builder
    returns), stacked along axis 0 of every array."""
    integrator: Integrator
    """The training integrator (of an adapted run: the first seed's final one)."""
    metrics: list[MetricsRow]
    """Every seed's rows of `metrics.jsonl`, in order."""
    adaptation: PyTree = None
    """Adapted runs: the rule's final states, stacked over seeds."""
    rule: AbstractRule | None = None
    """Adapted runs: the rule that adapted them."""

    def model(self, i: int) -> Any:
        """The trained model of the `i`-th seed of `config.seeds`."""
        return unstack(self.models, i)

    def integrator_of(self, i: int) -> Integrator:
        """The integrator the `i`-th seed ended training with (its adapted step size or
        tolerance, as a concrete integrator); `integrator` for runs without adaptation."""
        if self.adaptation is None or self.rule is None:
            return self.integrator
        return self.rule.final_integrator(unstack(self.adaptation, i))


def unstack(stacked: PyTree, i: int) -> PyTree:
    """Index `i` along axis 0 of every array of a stacked pytree."""
    return jax.tree.map(lambda a: a[i] if eqx.is_array(a) else a, stacked)


@eqx.filter_jit
def _init_optimizer(opt: optax.GradientTransformation, params: PyTree) -> PyTree:
    # One compiled program (not one per operation); the optimizer's state starts at
    # zeros, the same compiled or not.
    return jax.vmap(opt.init)(params)


def init_models(
    config: TrainConfig, data: Dataset, model: ModelInit | None = None
) -> eqx.Module:
    """The seeds' initial models, stacked (one `vmap`-ed init): `model(key)` for each
    seed's key, or by default the classifier `config` names (`make_classifier`), or for
    unlabelled data a flow (`make_flow`)."""
    keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 0) for s in config.seeds])

    def named(k):
        if data.unlabelled:
            return make_flow(data.input_shape, channels=config.model_channels, key=k)
        return make_classifier(
            config.field,
            data.input_shape,
            data.num_classes,
            channels=config.model_channels,
            key=k,
        )

    # Eager, not jitted: a compiled initialisation fuses the scaling of the normal
    # draws differently and moves the weights by an ulp.
    return eqx.filter_vmap(named if model is None else model)(keys)


def check_data(config: TrainConfig, data: Dataset) -> None:
    """Check that `config` can train on `data`: finite inputs, a batch that fits.

    **Raises:** `ValueError` naming the problem.
    """
    if config.batch_size > data.x_train.shape[0]:
        raise ValueError(
            f"batch_size {config.batch_size} exceeds the {data.x_train.shape[0]} "
            f"training examples of {config.dataset or 'the data given'}"
        )
    for split, x in (("training", data.x_train), ("test", data.x_test)):
        bad = ~np.isfinite(x)
        if bad.any():
            first = int(np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))[0])
            raise ValueError(
                f"the {split} inputs hold {int(bad.sum())} non-finite values (the first "
                f"in example {first}); odeness trains and evaluates on finite inputs only"
            )


def init_state(
    config: TrainConfig, data: Dataset, how: Recipe | None = None
) -> tuple[TrainState, PyTree]:
    """Initial train state of every seed, and the static part of the model (`how`:
    `train`'s objects, default the configuration's)."""
    how = recipe(config, unlabelled=data.unlabelled) if how is None else how
    check_data(config, data)
    models = init_models(config, data, how.model)
    params, static = eqx.partition(models, eqx.is_inexact_array)
    opt_state = _init_optimizer(how.optimizer, params)
    data_keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in config.seeds])
    steps = jnp.zeros(len(config.seeds), dtype=jnp.int32)
    adapt = init_adaptation(config, how.rule, models, data_keys, data)
    return TrainState(params, opt_state, data_keys, steps, adapt), static


def init_adaptation(
    config: TrainConfig,
    rule: AbstractRule | None,
    models: eqx.Module,
    data_keys: PRNGKeyArray,
    data: Dataset,
) -> PyTree:
    """The rule's initial state of every seed (None without a rule).

    Starts at `config.steps` / `config.tol`; a run on a grid without `steps` starts at
    Hairer's step size for the seed's initial field on its first training batch.
    """
    if rule is None:
        return None
    n = len(config.seeds)
    if config.control is not None:  # the step size 1 / steps, or the tolerance
        return jax.vmap(rule.init)(jnp.full(n, config.control.size()))
    if not isinstance(models, AbstractODEModel):
        raise ValueError(
            "Hairer's initial step size needs the model's ODE: give an AbstractODEModel "
            "(e.g. odeness.NeuralODE), or start the adaptation from steps"
        )
    x_all = jnp.asarray(data.x_train)

    @eqx.filter_vmap
    def hairer(model, key):
        idx = batch_indices(key, jnp.asarray(0), x_all.shape[0], config.batch_size)
        y0 = model.initial_state(x_all[idx])
        return rule.init(initial_step_size(model.vector_field, y0, order(rule.solver)))

    return hairer(models, data_keys)


def train(
    config: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    data: Dataset | None = None,
    progress: bool = True,
    progress_position: int | None = None,
    parallel: Layout = "seeds",
    model: ModelInit | None = None,
    loss: Loss | None = None,
    metric: str | AbstractMetric | None = None,
    rule: AbstractRule | None = None,
    optimizer: optax.GradientTransformation | None = None,
    regularisers: Sequence[tuple[AbstractRegulariser, float]] = (),
) -> TrainResult:
    """Train every seed of `config` at once; resume from `run_dir` if it has a checkpoint.

    **Arguments:**

    - `config`: the `TrainConfig`.
    - `run_dir`: if given, the run folder: `config.json`, `metrics.jsonl` (one row per
        seed every `log_every` iterations: step, seed, loss, training accuracy, NFE per
        forward pass, solver steps, seconds), `checkpoint.eqx` (written every
        `checkpoint_every` iterations and at the end, atomically). A folder with a
        checkpoint is resumed; `iterations` may be raised to train further.
    - `data`: the data set, if already loaded (else `load_dataset(config.dataset, ...)`);
        required with `config.dataset=None` (data of your own: a `Dataset` whose
        targets `y_*` may be labels or arrays such as sampled trajectories).
    - `progress`: show a progress bar (`progress_position`: its line, for several at once).
    - `parallel`: how the program uses several devices (`odeness.Layout`): `"seeds"`
        splits the seeds over the devices, `"data"` every batch, `"none"` uses one
        device. The results do not depend on it (up to float rounding for `"data"`).
    - `model`: a model of your own, as a builder `model(key) -> eqx.Module` called once
        per seed (any `model(x, integ) -> (outputs, stats)`; an `AbstractODEModel` such
        as `odeness.NeuralODE` for Hairer's initial step). Default: the classifier
        `config.field` and `config.channels` name.
    - `loss`: `loss(outputs, targets) -> scalar`, the batch's mean (default: the
        softmax cross-entropy of integer labels).
    - `metric`: the score logged as `train_<name>` and compared by the adaptation rule
        (`"accuracy"` by default; `"mse"`, `"nll"` or an `odeness.Metric`); the rule sees
        it in threshold units (divided by `metric.scale` of the batch's targets).
    - `rule`: the adaptation rule, any `odeness.AbstractRule` (needs `config.adapt`);
        default: the paper's rule for `config.solver` with the configuration's
        `threshold`, `interval`, `test_solver` and `max_steps` (`TrainConfig.rule`).
        It starts at `config.steps` or `config.tol` (or Hairer's step size).
    - `optimizer`: any `optax.GradientTransformation` (default: Adam at
        `config.learning_rate`, which is otherwise not used).
    - `regularisers`: `(regulariser, weight)` pairs of your own (any
        `odeness.AbstractRegulariser`), added to those `config.regularise` names: each
        penalty's batch mean times its weight joins the loss, accumulated along the
        training solve itself (see `Integrator.regularised`). The metrics log each
        penalty (`penalty_<name>`) and the evaluations they cost (`penalty_nfe`).

    A run folder records `config`; the objects `config.json` cannot hold (a model
    builder, a rule, an optimizer or regularisers of your own) are recorded by name in
    `components.json`, and must be given again to resume the run or to `load_run` it.

    **Returns:** a `TrainResult` (its arrays on this host's default device).

    **Raises:** `ValueError` if `run_dir` holds a run of another configuration or with
    other components, for non-finite training data, a bad `parallel`, `rule` or
    `optimizer`; `odeness.Diverged` if a loss or parameter becomes non-finite,
    `odeness.SolveFailed` if a training solve fails (an adaptive solver at its
    `max_steps`). Those two stop training before the failing chunk is logged or saved:
    the folder keeps its last (finite) checkpoint, and a fresh folder is left as it was.
    """
    place = placement(parallel, len(config.seeds), config.batch_size)
    data = load_data(config, data)
    how = recipe(
        config,
        model=model,
        loss=loss,
        metric=metric,
        rule=rule,
        optimizer=optimizer,
        regularisers=regularisers,
        unlabelled=data.unlabelled,
    )
    how.metric.check_threshold(config.threshold)
    folder = None if run_dir is None else Path(run_dir)
    if folder is not None:
        check_run_folder(folder, config)
        check_components(folder, how.components)
    state, static = init_state(config, data, how)
    if folder is None:
        return _train(
            config,
            state,
            static,
            data,
            progress=progress,
            progress_position=progress_position,
            place=place,
            how=how,
        )
    fresh = not (folder / CHECKPOINT).exists()
    existed = {p.name for p in folder.iterdir()} if folder.is_dir() else None
    try:
        with files.folder_lock(folder, "run folder"):
            state, metrics = resume(folder, config, how.components, state)
            return _train(
                config,
                state,
                static,
                data,
                metrics=metrics,
                folder=folder,
                progress=progress,
                progress_position=progress_position,
                place=place,
                how=how,
            )
    except FolderInUse:
        raise  # the folder is another process's: touch nothing
    except BaseException:
        if fresh and files.writes_files() and not (folder / CHECKPOINT).exists():
            remove_new_files(folder, existed)
        raise


def _chunks(
    config: TrainConfig,
    state: TrainState,
    static: PyTree,
    data: Dataset,
    place: Placement,
    how: Recipe,
) -> Iterator[tuple[TrainState, StepMetrics, int, int]]:
    """Train from `state` to `config.iterations` in chunks of at most `log_every`
    iterations, each one compiled program; yield after each chunk its state, its metrics
    (on the host, checked: `_check_chunk`), the step it ended at and its length."""
    integ: Integrator | AbstractRule = (
        config.integrator().replace(throw=False) if how.rule is None else how.rule
    )
    step = int(state.step[0])
    x_all, y_all = place.put_data((data.x_train, data.y_train))
    state = place.put_state(state)
    while step < config.iterations:
        length = min(config.log_every - step % config.log_every, config.iterations - step)
        state, m = train_chunk(
            state,
            static,
            integ,
            how.optimizer,
            x_all,
            y_all,
            batch_size=config.batch_size,
            length=length,
            start=jnp.asarray(step),
            batch_sharding=place.batch,
            loss=how.loss,
            metric=how.metric,
            regularisation=how.regularisation,
        )
        m = to_host(m)
        _check_chunk(config, how, step, m)
        step += length
        yield state, m, step, length


def _train(
    config: TrainConfig,
    state: TrainState,
    static: PyTree,
    data: Dataset,
    *,
    metrics: list[MetricsRow] | None = None,
    folder: Path | None = None,
    progress: bool,
    progress_position: int | None,
    place: Placement,
    how: Recipe,
) -> TrainResult:
    """`_chunks`, and the run's host side: its metrics (and `folder`'s metrics.jsonl
    and checkpoints), the progress bar, and stop requests (`odeness.stop_requested`),
    which end the run after the chunk in flight, saved."""
    rows = [] if metrics is None else list(metrics)
    step = saved = int(state.step[0])  # `saved`: the iterations the checkpoint holds
    finished = state  # the state after the last chunk whose metrics are on disk
    # The time columns count every process that trained this run.
    start = time.perf_counter() - (rows[-1].seconds if rows else 0.0)
    bar = _progress_bar(config, step, progress, progress_position)
    with bar:
        try:
            for finished, m, step, length in _chunks(
                config, state, static, data, place, how
            ):
                new = _metric_rows(config, how, step, m, time.perf_counter() - start, rows)
                if folder is not None:
                    files.append_jsonl(folder / METRICS, [r.to_json() for r in new])
                rows.extend(new)
                _show(bar, length, new, how.metric.name)
                due = step % config.checkpoint_every == 0 or step >= config.iterations
                if folder is not None and due:
                    files.save_checkpoint(
                        folder / CHECKPOINT, to_host(checkpointable(finished))
                    )
                    saved = step
                signum = stop_requested()
                if signum and step < config.iterations:
                    raise _interrupted(config, folder, finished, step, saved, signum)
        except KeyboardInterrupt:  # Ctrl-C without `stop_on_signals`
            raise _interrupted(
                config, folder, finished, step, saved, signal.SIGINT
            ) from None
    state = jax.tree.map(jnp.asarray, to_host(checkpointable(finished)))
    return _result(config, how, from_checkpointable(state), static, rows)


def _progress_bar(
    config: TrainConfig, step: int, progress: bool, position: int | None
) -> tqdm:
    """The training's progress bar, at `step` of `config.iterations`."""
    return tqdm(
        total=config.iterations,
        initial=min(step, config.iterations),
        disable=not progress,
        position=position,
        desc=f"{config.solver} {config.label}",
        unit="it",
        leave=False,
    )


def _show(bar: tqdm, length: int, rows: list[MetricsRow], metric: str) -> None:
    """Advance `bar` by a chunk of `length` iterations and show its mean loss and score."""
    bar.update(length)
    bar.set_postfix(
        {
            "loss": f"{np.mean([r.loss for r in rows]):.3f}",
            metric: f"{np.mean([r.score for r in rows]):.3g}",
        }
    )


def _interrupted(config, folder, state, step, saved, signum) -> Interrupted:
    """Save the last finished chunk (if the checkpoint lags behind it) and say so."""
    if folder is not None and step > saved:
        files.save_checkpoint(folder / CHECKPOINT, to_host(checkpointable(state)))
    where = f"at iteration {step} of {config.iterations}"
    if folder is None:
        kept = "nothing was saved (no run folder)"
    elif step == 0:
        kept = f"no iteration had finished; {folder} was left as it was"
    else:
        kept = f"{folder} holds a checkpoint of iteration {step}; the same command resumes"
    return Interrupted(
        f"interrupted by {signal_name(signum)} {where}: {kept}",
        signal=signum,
        iteration=step,
        folder=folder,
    )


def load_data(config: TrainConfig, data: Dataset | None = None) -> Dataset:
    """`data` if given, else the built-in data set `config` names."""
    return config.load_dataset() if data is None else data


def check_training(
    config: TrainConfig, data: Dataset, *, parallel: Layout = "seeds"
) -> None:
    """Check, before anything is written, what `train` would refuse of `config` on
    `data` with the device layout `parallel`: a batch larger than the training set,
    non-finite inputs, an unknown layout or a batch that does not split over the
    devices (`"data"`).

    **Raises:** `ValueError` naming the problem.
    """
    placement(parallel, len(config.seeds), config.batch_size)
    check_data(config, data)


def _check_chunk(config: TrainConfig, how: Recipe, start: int, m: StepMetrics) -> None:
    """Raise if an iteration of the chunk that began at step `start` failed."""
    if how.rule is not None and m.value is not None:
        value = np.asarray(m.value)  # (seed, iteration of the chunk)
        bad_value = ~(np.isfinite(value) & (value > 0))
        if bad_value.any():
            j = int(np.flatnonzero(bad_value.any(axis=0))[0])
            i = int(np.flatnonzero(bad_value[:, j])[0])
            raise RunFailed(
                f"{type(how.rule).__name__}.update gave a step size or tolerance that is "
                f"not a finite number > 0 ({float(value[i, j])!r}) for seed "
                f"{config.seeds[i]} at iteration {start + j + 1}"
            )
    finite, success = np.asarray(m.finite), np.asarray(m.success)
    bad = ~(finite & success)  # (seed, iteration of the chunk)
    if not bad.any():
        return
    j = int(np.flatnonzero(bad.any(axis=0))[0])  # the first failing iteration
    i = int(np.flatnonzero(bad[:, j])[0])
    seed, iteration = config.seeds[i], start + j + 1
    if not success[i, j]:  # a failed solve comes first: its loss may be non-finite too
        max_steps = (
            config.integrator().max_steps if how.rule is None else how.rule.max_steps
        )
        raise SolveFailed(
            f"the training solve of seed {seed} did not reach t1 within max_steps="
            f"{max_steps} at iteration {iteration} ({config.solver}, {config.label}); "
            "raise max_steps or loosen the tolerance"
        )
    raise Diverged(
        f"training diverged: seed {seed} has a non-finite loss or parameter at iteration "
        f"{iteration} (learning rate {config.learning_rate:g}, the likely cause); "
        "nothing after the last checkpoint was saved",
        seed=seed,
        iteration=iteration,
    )


def _result(
    config: TrainConfig, how: Recipe, state: TrainState, static, metrics
) -> TrainResult:
    models = eqx.combine(state.params, static)
    if state.adapt is None or how.rule is None:
        return TrainResult(config, models, config.integrator(), metrics)
    first = how.rule.final_integrator(unstack(state.adapt, 0))
    return TrainResult(config, models, first, metrics, state.adapt, how.rule)


def _metric_rows(
    config: TrainConfig,
    how: Recipe,
    step: int,
    m: StepMetrics,
    seconds: float,
    previous: list[MetricsRow],
) -> list[MetricsRow]:
    """One row per seed of the chunk that ended at `step`: means over its iterations,
    and running totals of the NFE."""
    loss, acc = np.asarray(m.loss).mean(1), np.asarray(m.accuracy).mean(1)
    nfe, num_steps = np.asarray(m.nfe)[:, -1], np.asarray(m.num_steps)[:, -1]
    chunk_nfe = np.asarray(m.nfe).sum(1)
    totals = {r.seed: r.train_nfe_total for r in previous}
    penalties = penalty_nfe = None
    if m.penalties is not None and m.penalty_nfe is not None:
        means = {name: np.asarray(v).mean(1) for name, v in m.penalties.items()}
        penalties = [{k: float(v[i]) for k, v in means.items()} for i in range(len(loss))]
        penalty_nfe = [int(v) for v in np.asarray(m.penalty_nfe)[:, -1]]
    checks = (
        None if m.value is None or m.check is None else _checks(config, step, m, previous)
    )
    return [
        MetricsRow(
            step,
            seed,
            float(loss[i]),
            float(acc[i]),
            how.metric.name,
            int(nfe[i]),
            int(num_steps[i]),
            int(totals.get(seed, 0) + chunk_nfe[i]),
            round(seconds, 3),
            None if penalties is None else penalties[i],
            None if penalty_nfe is None else penalty_nfe[i],
            None if checks is None else checks[i],
        )
        for i, seed in enumerate(config.seeds)
    ]


def _checks(
    config: TrainConfig, step: int, m: StepMetrics, previous: list[MetricsRow]
) -> list[CheckRow]:
    """Each seed's `CheckRow` of an adapted run's chunk: its last check, on that
    iteration's batch (None if no check ran)."""
    assert m.value is not None and m.check is not None
    value = np.asarray(m.value)[:, -1]
    check = jax.tree.map(np.asarray, m.check)
    before = {r.seed: r.check.check_nfe_total for r in previous if r.check is not None}
    length = check.test_accuracy.shape[1]
    rows = []
    for i, seed in enumerate(config.seeds):
        ran = np.flatnonzero(~np.isnan(check.test_accuracy[i]))
        j = ran[-1] if ran.size else None

        def at(field, j=j, i=i):
            return None if j is None else float(field[i, j])

        rows.append(
            CheckRow(
                "tol" if config.tol is not None else "dt",
                float(value[i]),
                int(before.get(seed, 0) + check.nfe[i].sum()),
                None if j is None else step - length + int(j),
                at(check.train_accuracy),
                at(check.test_accuracy),
                at(check.try_accuracy),
                None if j is None else bool(check.test_ok[i, j]),
            )
        )
    return rows


def load_run(
    run_dir: str | Path,
    data: Dataset | None = None,
    model: ModelInit | None = None,
    *,
    rule: AbstractRule | None = None,
    optimizer: optax.GradientTransformation | None = None,
    regularisers: Sequence[tuple[AbstractRegulariser, float]] = (),
) -> TrainResult:
    """Load a run folder written by `train`: its config, trained models and metrics.

    `model`, `rule`, `optimizer`, `regularisers`: the objects of your own the run was
    trained with, if any (`components.json` names them); the run folder cannot hold
    them.

    **Raises:** `FileNotFoundError` if the folder has no config or checkpoint;
    `ValueError` if the components given are not those the run was trained with, or the
    checkpoint holds non-finite parameters.
    """
    folder = Path(run_dir)
    for name in (CONFIG, CHECKPOINT):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} does not exist; not a finished run")
    config = TrainConfig.from_dict(files.read_json(folder / CONFIG))
    data = load_data(config, data)
    how = recipe(
        config,
        model=model,
        rule=rule,
        optimizer=optimizer,
        regularisers=regularisers,
        unlabelled=data.unlabelled,
    )
    check_components(folder, how.components)
    state, static = init_state(config, data, how)
    state = from_checkpointable(
        files.load_checkpoint(folder / CHECKPOINT, checkpointable(state))
    )
    if not bool(all_finite(state.params)):
        raise ValueError(
            f"{folder / CHECKPOINT} holds non-finite parameters (a diverged run); delete "
            "the run folder and train again"
        )
    rows = [MetricsRow.from_json(r) for r in files.read_jsonl(folder / METRICS)]
    return _result(config, how, state, static, rows)
