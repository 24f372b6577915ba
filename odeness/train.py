"""Training: a pure train step, scanned in chunks, `vmap`-ed over seeds.

One compiled program trains every seed of a configuration at once. The host only sees
the loop once per chunk (`log_every` iterations): to log metrics, write checkpoints and
move the progress bar.
"""

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree
from tqdm.auto import tqdm

from . import io
from .adapt import (
    Check,
    Rule,
    StepSizeRule,
    ToleranceRule,
    adapt_step,
    initial_step_size,
    rule_for,
)
from .data import DATASETS, Dataset, load_dataset
from .errors import Diverged, SolveFailed
from .integrate import Integrator
from .models import FIELDS, ODEClassifier, make_classifier
from .parallel import Placement, placement, to_host
from .solvers import SOLVERS, is_adaptive, order, solver


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _is_int(x) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


MAX_SEED = 2**32 - 1
"""The largest seed: JAX's PRNG keys hold 32 bits, so larger seeds would alias."""


def _is_seed(x) -> bool:
    return _is_int(x) and 0 <= x <= MAX_SEED


def paper_channels(dataset: str) -> int:
    """The paper's hidden channels C of the vector field: 128 for CIFAR-10, else 32."""
    return 128 if dataset == "cifar10" else 32


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved as `config.json` in its run folder.

    Fixed-step training gives `steps` (the step size is `1/steps` on `[0, 1]`); adaptive
    training gives `tol` (rtol = atol = tol). Defaults are the paper's (Adam, lr 1e-4,
    batch 128, 10,000 iterations, C = 32). Every seed trains on the same data set
    (`data_seed`), from its own initialisation and batch order.

    With `adapt=True` the step size (or tolerance) is adapted during training by the
    paper's rule (`odeness.adapt`, see `rule()`), each seed on its own: `steps` / `tol`
    are the starting values. A fixed-step solver without `steps` starts at Hairer's
    initial step size; an adaptive solver must be given `tol` (the paper's is 1e-6).
    `threshold`, `interval` and `test_solver` (default: the paper's for the solver) are
    the rule's; `max_steps` caps its step count (default 500, the paper's).

    **Raises:** `ValueError` at construction, naming the bad field and value.
    """

    dataset: str = "sphere2"
    solver: str = "euler"
    steps: int | None = 2
    tol: float | None = None
    field: str = "conv"
    channels: int = 32
    seeds: tuple[int, ...] = (0,)
    iterations: int = 10_000
    batch_size: int = 128
    learning_rate: float = 1e-4
    log_every: int = 100
    checkpoint_every: int = 1000
    data_seed: int = 0
    data_dir: str | None = None
    max_steps: int | None = None
    adapt: bool = False
    threshold: float = 0.1
    interval: int = 50
    test_solver: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))
        _check(
            self.dataset in DATASETS,
            f"unknown dataset {self.dataset!r}; expected one of {', '.join(DATASETS)}",
        )
        _check(
            self.solver in SOLVERS,
            f"unknown solver {self.solver!r}; expected one of {', '.join(SOLVERS)}",
        )
        _check(
            self.field in FIELDS,
            f"unknown field {self.field!r}; expected one of {', '.join(FIELDS)}",
        )
        _check(
            self.steps is None or self.tol is None,
            f"give exactly one of steps and tol, got steps={self.steps!r}, "
            f"tol={self.tol!r}",
        )
        _check(
            (self.steps is not None or self.tol is not None)
            or (self.adapt and not is_adaptive(solver(self.solver))),
            f"give exactly one of steps and tol, got steps={self.steps!r}, "
            f"tol={self.tol!r}"
            + (
                " (adaptive solvers start from a tol, the paper's is 1e-6)"
                if self.adapt
                else ""
            ),
        )
        if self.steps is not None:
            _check(
                _is_int(self.steps) and self.steps >= 1,
                f"steps must be an integer >= 1, got {self.steps!r}",
            )
        if self.tol is not None:
            _check(
                isinstance(self.tol, int | float)
                and math.isfinite(self.tol)
                and self.tol > 0,
                f"tol must be a finite number > 0, got {self.tol!r}",
            )
            _check(
                is_adaptive(solver(self.solver)),
                f"solver {self.solver!r} has no error estimate and cannot train with "
                "tol; give steps instead",
            )
        _check(
            len(self.seeds) >= 1 and all(_is_seed(s) for s in self.seeds),
            f"seeds must be one or more integers in [0, 2**32 - 1], got {self.seeds!r}",
        )
        _check(
            _is_seed(self.data_seed),
            f"data_seed must be an integer in [0, 2**32 - 1], got {self.data_seed!r}",
        )
        _check(
            len(set(self.seeds)) == len(self.seeds),
            f"seeds must be distinct, got {self.seeds!r}",
        )
        for name in (
            "channels",
            "iterations",
            "batch_size",
            "log_every",
            "checkpoint_every",
        ):
            value = getattr(self, name)
            _check(
                _is_int(value) and value >= 1,
                f"{name} must be an integer >= 1, got {value!r}",
            )
        _check(
            self.checkpoint_every % self.log_every == 0,
            f"checkpoint_every ({self.checkpoint_every}) must be a multiple of "
            f"log_every ({self.log_every})",
        )
        _check(
            isinstance(self.learning_rate, int | float)
            and math.isfinite(self.learning_rate)
            and self.learning_rate > 0,
            f"learning_rate must be a finite number > 0, got {self.learning_rate!r}",
        )
        _check(
            isinstance(self.adapt, bool), f"adapt must be true or false, got {self.adapt!r}"
        )
        if self.adapt:
            rule = self.rule()  # validates threshold, interval, test_solver and max_steps
            if isinstance(rule, StepSizeRule) and self.steps is not None:
                _check(
                    self.steps <= rule.max_steps,
                    f"steps {self.steps} exceeds the adaptation's cap of "
                    f"max_steps={rule.max_steps}; raise max_steps or start from fewer "
                    "steps",
                )

    def rule(self) -> Rule | None:
        """The adaptation rule (`odeness.adapt`), or None without `adapt`."""
        if not self.adapt:
            return None
        if self.test_solver is not None:
            _check(
                self.test_solver in SOLVERS,
                f"unknown test solver {self.test_solver!r}; expected one of "
                f"{', '.join(SOLVERS)}",
            )
        return rule_for(
            self.solver,
            adaptive=self.tol is not None,
            test_solver=self.test_solver,
            threshold=self.threshold,
            interval=self.interval,
            max_steps=self.max_steps,
        )

    def integrator(self) -> Integrator:
        """The training integrator on `[0, 1]` (the starting one of an adapted run).

        **Raises:** `ValueError` for an adapted run that starts at Hairer's step size,
        which depends on the initial model (see `TrainResult.integrator_of`).
        """
        _check(
            self.steps is not None or self.tol is not None,
            "this adapted run starts at Hairer's step size, known once the model is "
            "initialised",
        )
        if self.steps is not None:
            return Integrator(
                solver(self.solver), steps=self.steps, max_steps=self.max_steps
            )
        return Integrator(
            solver(self.solver), rtol=self.tol, atol=self.tol, max_steps=self.max_steps
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        _check(not unknown, f"unknown config keys {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


class TrainState(NamedTuple):
    """The carry of the training loop (one per seed; stacked along axis 0 under vmap)."""

    params: PyTree[Array]
    opt_state: optax.OptState
    key: PRNGKeyArray  # the seed's data-order key
    step: Int[Array, ""]
    adapt: PyTree = None  # the adaptation rule's state (`odeness.adapt`), if adapting


class StepMetrics(NamedTuple):
    loss: Float[Array, ""]
    accuracy: Float[Array, ""]
    nfe: Int[Array, ""]
    num_steps: Int[Array, ""]
    finite: Bool[Array, ""]
    """The loss and every parameter after the update are finite."""
    success: Bool[Array, ""]
    """The training solve reached `t1` (it may not, for an adaptive solver at its
    `max_steps`)."""
    value: Float[Array, ""] | None = None
    """Adapted runs: the step size or tolerance after this iteration."""
    check: Check | None = None
    """Adapted runs: what this iteration's check measured (NaN accuracies, 0 NFE if none
    ran)."""


def optimizer(learning_rate: float) -> optax.GradientTransformation:
    """Adam with the learning rate as a traced hyper-parameter (no recompiles)."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


def batch_indices(
    key: PRNGKeyArray, step: Int[Array, ""], num_examples: int, batch_size: int
) -> Int[Array, " batch"]:
    """Indices of the batch at `step`: epoch-wise shuffles, last partial batch dropped.

    A pure function of `(key, step)`, so a resumed run sees the same batches.
    """
    per_epoch = num_examples // batch_size
    epoch, position = jnp.divmod(step, per_epoch)
    order = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
    return jax.lax.dynamic_slice_in_dim(order, position * batch_size, batch_size)


def chunk_batch_indices(
    key: PRNGKeyArray,
    start: Int[Array, ""],
    length: int,
    num_examples: int,
    batch_size: int,
) -> Int[Array, "length batch"]:
    """`batch_indices` of steps `start, ..., start + length - 1`, shuffling each epoch once.

    Equal to stacking `batch_indices` over the steps (tests/test_train.py), at the cost
    of a few permutations per chunk instead of one per step.
    """
    per_epoch = num_examples // batch_size
    first = start // per_epoch
    num_epochs = length // per_epoch + 2  # static bound on the epochs a chunk touches
    orders = jax.vmap(
        lambda e: jax.random.permutation(jax.random.fold_in(key, e), num_examples)
    )(first + jnp.arange(num_epochs))
    batches = orders[:, : per_epoch * batch_size].reshape(num_epochs, per_epoch, batch_size)
    epoch, position = jnp.divmod(start + jnp.arange(length), per_epoch)
    return batches[epoch - first, position]


def loss_fn(model: ODEClassifier, integ: Integrator, x, y):
    """Mean cross-entropy; auxiliary: accuracy and the solve's statistics."""
    logits, stats = model(x, integ)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == y)
    return loss, (accuracy, stats)


def train_step(
    state: TrainState,
    static: PyTree,
    integ: Integrator | Rule,
    opt: optax.GradientTransformation,
    x: Float[Array, "batch ..."],
    y: Int[Array, " batch"],
    due: Bool[Array, ""] | bool = False,
) -> tuple[TrainState, StepMetrics]:
    """One optimiser step on the batch `(x, y)`. Pure.

    `integ` is the training integrator, or an adaptation rule whose state
    (`state.adapt`) gives it. With a rule, the check runs if `due` (before the optimiser
    update, on the same batch; see `odeness.adapt.adapt_step`).
    """
    rule = integ if isinstance(integ, StepSizeRule | ToleranceRule) else None
    if rule is not None:
        integ = rule.integrator(state.adapt)
    assert isinstance(integ, Integrator)

    def loss_of_params(params):
        return loss_fn(eqx.combine(params, static), integ, x, y)

    (loss, (accuracy, stats)), grads = jax.value_and_grad(loss_of_params, has_aux=True)(
        state.params
    )
    nfe = jnp.max(stats.nfe)
    metrics = StepMetrics(
        loss,
        accuracy,
        nfe,
        jnp.max(stats.num_steps),
        jnp.isfinite(loss),
        jnp.all(stats.success),
    )
    adapt = state.adapt
    if rule is not None:
        model = eqx.combine(state.params, static)

        def evaluate(test_integ: Integrator):
            logits, test_stats = model(x, test_integ)
            return (
                jnp.mean(jnp.argmax(logits, axis=-1) == y),
                jnp.max(test_stats.nfe),
                jnp.all(test_stats.success),
            )

        adapt, check = adapt_step(rule, adapt, jnp.asarray(due), evaluate, accuracy, nfe)
        metrics = metrics._replace(value=rule.value(adapt), check=check)
    updates, opt_state = opt.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = metrics._replace(finite=metrics.finite & _all_finite(params))
    return TrainState(params, opt_state, state.key, state.step + 1, adapt), metrics


def _all_finite(tree: PyTree[Array]) -> Bool[Array, ""]:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts traces: eqx.debug.get_num_traces
def train_chunk(
    states: TrainState,
    static: PyTree,
    integ: Integrator | Rule,
    opt: optax.GradientTransformation,
    x_all,
    y_all,
    batch_size: int,
    length: int,
    start: Int[Array, ""] | None = None,
    batch_sharding: NamedSharding | None = None,
) -> tuple[TrainState, StepMetrics]:
    """`length` train steps of every seed: `lax.scan` inside, `vmap` over seeds.

    The seed axis may be sharded over devices (the inputs' sharding decides);
    `batch_sharding` splits every batch along its batch axis (data parallelism).

    With an adaptation rule, `start` is the (common) step of every seed: the checks
    are due where `step % rule.interval == 0`, decided from this shared counter, so
    that under `vmap` the check stays a branch taken only on those iterations.
    """
    rule = integ if isinstance(integ, StepSizeRule | ToleranceRule) else None
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
            lambda s, xs: train_step(s, static, integ, opt, *batch(xs[0]), xs[1]),
            state,
            (idx, due),
        )

    return jax.vmap(run)(states)


class TrainResult(NamedTuple):
    """A finished (or resumed-and-finished) training run."""

    config: TrainConfig
    models: ODEClassifier
    """The trained models of all seeds, stacked along axis 0 of every array."""
    integrator: Integrator
    """The training integrator (of an adapted run: the first seed's final one)."""
    metrics: list[dict]
    adaptation: PyTree = None
    """Adapted runs: the rule's final states, stacked over seeds."""

    def model(self, i: int) -> ODEClassifier:
        """The trained model of the `i`-th seed of `config.seeds`."""
        return unstack(self.models, i)

    def integrator_of(self, i: int) -> Integrator:
        """The integrator the `i`-th seed ended training with (its adapted step size or
        tolerance, as a concrete integrator); `integrator` for runs without adaptation."""
        if self.adaptation is None:
            return self.integrator
        return final_integrator(self.config, unstack(self.adaptation, i))


def final_integrator(config: TrainConfig, adapt_state: PyTree) -> Integrator:
    """The concrete training integrator of one seed's adaptation state."""
    rule = config.rule()
    assert rule is not None
    value = float(rule.value(adapt_state))
    if isinstance(rule, StepSizeRule):
        return Integrator(rule.solver, dt=value)
    return Integrator(rule.solver, rtol=value, atol=value, max_steps=rule.max_steps)


def unstack(stacked: PyTree, i: int) -> PyTree:
    """Index `i` along axis 0 of every array of a stacked pytree."""
    return jax.tree.map(lambda a: a[i] if eqx.is_array(a) else a, stacked)


def init_models(config: TrainConfig, data: Dataset) -> ODEClassifier:
    """The seeds' initial models, stacked (one `vmap`-ed init)."""
    keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 0) for s in config.seeds])
    return eqx.filter_vmap(
        lambda k: make_classifier(
            config.field,
            data.input_shape,
            data.num_classes,
            channels=config.channels,
            key=k,
        )
    )(keys)


def check_data(config: TrainConfig, data: Dataset) -> None:
    """Check that `config` can train on `data`: finite inputs, a batch that fits.

    **Raises:** `ValueError` naming the problem.
    """
    _check(
        config.batch_size <= data.x_train.shape[0],
        f"batch_size {config.batch_size} exceeds the {data.x_train.shape[0]} training "
        f"examples of {config.dataset}",
    )
    for split, x in (("training", data.x_train), ("test", data.x_test)):
        bad = ~np.isfinite(x)
        if bad.any():
            first = int(np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))[0])
            raise ValueError(
                f"the {split} inputs hold {int(bad.sum())} non-finite values (the first "
                f"in example {first}); odeness trains and evaluates on finite inputs only"
            )


def init_state(config: TrainConfig, data: Dataset) -> tuple[TrainState, PyTree]:
    """Initial train state of every seed, and the static part of the model."""
    check_data(config, data)
    models = init_models(config, data)
    params, static = eqx.partition(models, eqx.is_array)
    opt_state = jax.vmap(optimizer(config.learning_rate).init)(params)
    data_keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in config.seeds])
    steps = jnp.zeros(len(config.seeds), dtype=jnp.int32)
    adapt = init_adaptation(config, models, data_keys, data)
    return TrainState(params, opt_state, data_keys, steps, adapt), static


def init_adaptation(
    config: TrainConfig, models: ODEClassifier, data_keys: PRNGKeyArray, data: Dataset
) -> PyTree:
    """The rule's initial state of every seed (None without adaptation).

    Starts at `config.steps` / `config.tol`; a fixed-step run without `steps` starts at
    Hairer's step size for the seed's initial field on its first training batch.
    """
    rule = config.rule()
    if rule is None:
        return None
    n = len(config.seeds)
    if isinstance(rule, ToleranceRule):
        assert config.tol is not None
        return jax.vmap(rule.init)(jnp.full(n, config.tol))
    if config.steps is not None:
        return jax.vmap(rule.init)(jnp.full(n, 1.0 / config.steps))
    x_all = jnp.asarray(data.x_train)

    @eqx.filter_vmap
    def hairer(model, key):
        idx = batch_indices(key, jnp.asarray(0), x_all.shape[0], config.batch_size)
        return rule.init(initial_step_size(model.field, x_all[idx], order(rule.solver)))

    return hairer(models, data_keys)


CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.eqx"


def _checkpointable(state: TrainState):
    # Typed PRNG keys are stored as their raw key data.
    return state._replace(key=jax.random.key_data(state.key))


def _from_checkpointable(state) -> TrainState:
    return state._replace(key=jax.random.wrap_key_data(state.key))


def check_run_folder(run_dir: str | Path, config: TrainConfig) -> None:
    """Check that `run_dir` is a folder that can hold the run of `config`: absent, empty,
    or holding a run of the same configuration (`iterations` may be raised).

    Reads only; call it before writing anything.

    **Raises:** `ValueError` naming the first differing field and both values, or if the
    path is not a folder.
    """
    folder = io.check_folder(run_dir, "run folder")
    saved_path = folder / CONFIG
    if not saved_path.exists():
        return
    saved = TrainConfig.from_dict(io.read_json(saved_path))
    difference = io.first_difference(
        saved.replace(iterations=config.iterations).to_dict(), config.to_dict()
    )
    if difference is not None:
        raise ValueError(
            f"run folder {folder} holds a run with another configuration ({difference}); "
            "choose another folder"
        )


def _resume(run_dir: Path, config: TrainConfig, state: TrainState):
    """Load the run folder's checkpoint and metrics, if any (after `check_run_folder`)."""
    io.remove_stale_temporaries(run_dir)
    if not (run_dir / CHECKPOINT).exists():
        io.write_json(run_dir / CONFIG, config.to_dict())
        io.write_jsonl(run_dir / METRICS, [])
        return state, []
    state = _from_checkpointable(
        io.load_checkpoint(run_dir / CHECKPOINT, _checkpointable(state))
    )
    step = int(state.step[0])
    _check(
        step <= config.iterations,
        f"run folder {run_dir} has trained {step} iterations, more than the "
        f"{config.iterations} asked for; ask for at least {step} or choose another folder",
    )
    io.write_json(run_dir / CONFIG, config.to_dict())
    # Metrics written after the checkpoint belong to iterations that will run again (a
    # line cut off by a crash among them).
    rows = io.read_jsonl(run_dir / METRICS, torn_tail=True)
    metrics = [r for r in rows if r["step"] <= step]
    io.write_jsonl(run_dir / METRICS, metrics)
    return state, metrics


def train(
    config: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    data: Dataset | None = None,
    progress: bool = True,
    progress_position: int | None = None,
    parallel: str = "seeds",
) -> TrainResult:
    """Train every seed of `config` at once; resume from `run_dir` if it has a checkpoint.

    **Arguments:**

    - `config`: the `TrainConfig`.
    - `run_dir`: if given, the run folder: `config.json`, `metrics.jsonl` (one row per
        seed every `log_every` iterations: step, seed, loss, training accuracy, NFE per
        forward pass, solver steps, seconds), `checkpoint.eqx` (written every
        `checkpoint_every` iterations and at the end, atomically). A folder with a
        checkpoint is resumed; `iterations` may be raised to train further.
    - `data`: the data set, if already loaded (else `load_dataset(config.dataset, ...)`).
    - `progress`: show a progress bar (`progress_position`: its line, for several at once).
    - `parallel`: how the program uses several devices (`odeness.parallel`): `"seeds"`
        splits the seeds over the devices, `"data"` every batch, `"none"` uses one
        device. The results do not depend on it (up to float rounding for `"data"`).

    **Returns:** a `TrainResult` (its arrays on this host's default device).

    **Raises:** `ValueError` if `run_dir` holds a run of another configuration, for
    non-finite training data or a bad `parallel`; `odeness.errors.Diverged` if a loss or
    parameter becomes non-finite, `odeness.errors.SolveFailed` if a training solve fails
    (an adaptive solver at its `max_steps`). Those two stop training before the failing
    chunk is logged or saved: the folder keeps its last (finite) checkpoint, and a fresh
    folder is left as it was.
    """
    place = placement(parallel, len(config.seeds), config.batch_size)
    if data is None:
        data = load_dataset(config.dataset, seed=config.data_seed, data_dir=config.data_dir)
    folder = None if run_dir is None else Path(run_dir)
    if folder is not None:
        check_run_folder(folder, config)
    state, static = init_state(config, data)
    if folder is None:
        return _train(config, state, static, data, progress=progress,
                      progress_position=progress_position, place=place)  # fmt: skip
    fresh = not (folder / CHECKPOINT).exists()
    existed = {p.name for p in folder.iterdir()} if folder.is_dir() else None
    try:
        state, metrics = _resume(folder, config, state)
        return _train(config, state, static, data, metrics=metrics, folder=folder,
                      progress=progress, progress_position=progress_position, place=place
                      )  # fmt: skip
    except BaseException:
        if fresh and io.writes_files() and not (folder / CHECKPOINT).exists():
            _remove_new_files(folder, existed)
        raise


def _remove_new_files(folder: Path, existed: set[str] | None) -> None:
    # A run that failed before its first checkpoint leaves the folder as it found it.
    for name in (CONFIG, METRICS):
        if existed is None or name not in existed:
            (folder / name).unlink(missing_ok=True)
    if existed is None and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _train(
    config: TrainConfig,
    state: TrainState,
    static: PyTree,
    data: Dataset,
    *,
    metrics: list[dict] | None = None,
    folder: Path | None = None,
    progress: bool,
    progress_position: int | None,
    place: Placement,
) -> TrainResult:
    metrics = [] if metrics is None else metrics
    rule = config.rule()
    integ: Integrator | Rule = (
        dataclasses.replace(config.integrator(), throw=False) if rule is None else rule
    )
    opt = optimizer(config.learning_rate)
    step = int(state.step[0])
    x_all, y_all = place.put_data((data.x_train, data.y_train))
    state = place.put_state(state)
    bar = tqdm(
        total=config.iterations,
        initial=min(step, config.iterations),
        disable=not progress,
        position=progress_position,
        desc=f"{config.solver} {integ_label(config)}",
        unit="it",
        leave=False,
    )
    # The time columns count every process that trained this run.
    start = time.perf_counter() - (metrics[-1]["seconds"] if metrics else 0.0)
    with bar:
        while step < config.iterations:
            length = min(
                config.log_every - step % config.log_every, config.iterations - step
            )
            state, m = train_chunk(
                state,
                static,
                integ,
                opt,
                x_all,
                y_all,
                config.batch_size,
                length,
                jnp.asarray(step),
                place.batch,
            )
            m = to_host(m)
            _check_chunk(config, step, m)
            step += length
            rows = _metric_rows(config, step, m, time.perf_counter() - start, metrics)
            metrics.extend(rows)
            bar.update(length)
            bar.set_postfix(
                loss=f"{np.mean([r['loss'] for r in rows]):.3f}",
                acc=f"{np.mean([r['train_accuracy'] for r in rows]):.3f}",
            )
            if folder is not None:
                io.append_jsonl(folder / METRICS, rows)
                if step % config.checkpoint_every == 0 or step >= config.iterations:
                    io.save_checkpoint(folder / CHECKPOINT, to_host(_checkpointable(state)))
    state = jax.tree.map(jnp.asarray, to_host(_checkpointable(state)))
    return _result(config, _from_checkpointable(state), static, metrics)


def _check_chunk(config: TrainConfig, start: int, m: StepMetrics) -> None:
    """Raise if an iteration of the chunk that began at step `start` failed."""
    finite, success = np.asarray(m.finite), np.asarray(m.success)
    bad = ~(finite & success)  # (seed, iteration of the chunk)
    if not bad.any():
        return
    j = int(np.flatnonzero(bad.any(axis=0))[0])  # the first failing iteration
    i = int(np.flatnonzero(bad[:, j])[0])
    # A failed solve comes first: a loss computed from it may be non-finite too.
    failed = _solve_failed if not success[i, j] else _diverged
    failed(config, config.seeds[i], start + j + 1)


def _diverged(config: TrainConfig, seed: int, iteration: int):
    raise Diverged(
        f"training diverged: seed {seed} has a non-finite loss or parameter at iteration "
        f"{iteration} (learning rate {config.learning_rate:g}, the likely cause); "
        "nothing after the last checkpoint was saved",
        seed=seed,
        iteration=iteration,
    )


def _solve_failed(config: TrainConfig, seed: int, iteration: int):
    rule = config.rule()
    max_steps = config.integrator().max_steps if rule is None else rule.max_steps
    raise SolveFailed(
        f"the training solve of seed {seed} did not reach t1 within max_steps="
        f"{max_steps} at iteration {iteration} ({config.solver}, {integ_label(config)}); "
        "raise max_steps or loosen the tolerance"
    )


def _result(config: TrainConfig, state: TrainState, static, metrics) -> TrainResult:
    models = eqx.combine(state.params, static)
    if state.adapt is None:
        return TrainResult(config, models, config.integrator(), metrics)
    first = final_integrator(config, unstack(state.adapt, 0))
    return TrainResult(config, models, first, metrics, state.adapt)


def integ_label(config: TrainConfig) -> str:
    label = (
        f"n={config.steps}"
        if config.steps is not None
        else f"tol={config.tol:g}"
        if config.tol is not None
        else "Hairer h0"
    )
    return f"adapted from {label}" if config.adapt else label


def _metric_rows(
    config: TrainConfig, step: int, m: StepMetrics, seconds: float, previous: list[dict]
):
    # Means over the chunk's iterations, one row per seed; running totals of the NFE.
    loss, acc = np.asarray(m.loss).mean(1), np.asarray(m.accuracy).mean(1)
    nfe, num_steps = np.asarray(m.nfe)[:, -1], np.asarray(m.num_steps)[:, -1]
    chunk_nfe = np.asarray(m.nfe).sum(1)
    totals = {r["seed"]: r.get("train_nfe_total", 0) for r in previous}
    rows = [
        {
            "step": step,
            "seed": seed,
            "loss": float(loss[i]),
            "train_accuracy": float(acc[i]),
            "nfe": int(nfe[i]),
            "num_steps": int(num_steps[i]),
            "train_nfe_total": int(totals.get(seed, 0) + chunk_nfe[i]),
            "seconds": round(seconds, 3),
        }
        for i, seed in enumerate(config.seeds)
    ]
    if m.value is None or m.check is None:
        return rows
    name = "tol" if config.tol is not None else "dt"
    value = np.asarray(m.value)[:, -1]
    check = jax.tree.map(np.asarray, m.check)
    check_totals = {r["seed"]: r.get("check_nfe_total", 0) for r in previous}
    for i, row in enumerate(rows):
        row[name] = float(value[i])
        row["check_nfe_total"] = int(check_totals.get(row["seed"], 0) + check.nfe[i].sum())
        # The chunk's last check, on that iteration's batch (None if no check ran).
        ran = np.flatnonzero(~np.isnan(check.test_accuracy[i]))
        j = ran[-1] if ran.size else None
        length = check.test_accuracy.shape[1]
        row["check_step"] = None if j is None else step - length + int(j)
        for key, field in (
            ("check_train_accuracy", check.train_accuracy),
            ("test_accuracy", check.test_accuracy),
            ("try_accuracy", check.try_accuracy),
        ):
            row[key] = None if j is None else float(field[i, j])
        row["test_ok"] = None if j is None else bool(check.test_ok[i, j])
    return rows


def load_run(run_dir: str | Path, data: Dataset | None = None) -> TrainResult:
    """Load a run folder written by `train`: its config, trained models and metrics.

    **Raises:** `FileNotFoundError` if the folder has no config or checkpoint.
    """
    folder = Path(run_dir)
    for name in (CONFIG, CHECKPOINT):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} does not exist; not a finished run")
    config = TrainConfig.from_dict(io.read_json(folder / CONFIG))
    if data is None:
        data = load_dataset(config.dataset, seed=config.data_seed, data_dir=config.data_dir)
    state, static = init_state(config, data)
    state = _from_checkpointable(
        io.load_checkpoint(folder / CHECKPOINT, _checkpointable(state))
    )
    _check(
        bool(_all_finite(state.params)),
        f"{folder / CHECKPOINT} holds non-finite parameters (a diverged run); delete the "
        "run folder and train again",
    )
    return _result(config, state, static, io.read_jsonl(folder / METRICS))
