"""The training configuration: everything that defines a run, saved as `config.json`."""

import dataclasses
from collections.abc import Callable
from typing import Any

import diffrax

from . import _checks as check
from ._control import AbstractControl, Steps, Tolerances
from ._integrate import Integrator
from ._models import check_field
from ._regularisers import (
    AbstractRegulariser,
    ErrorEstimate,
    check_error_estimate,
    check_regularisers,
    named_regulariser,
)
from ._rules import AbstractRule, rule_for
from ._solvers import SOLVERS, is_adaptive, solver
from .data import check_dataset, load_dataset

ADJOINTS: dict[str, Callable[[], diffrax.AbstractAdjoint | None]] = {
    "backprop": lambda: None,  # `Integrator`'s default: through the solver's operations
    "backsolve": diffrax.BacksolveAdjoint,
}
"""How training computes gradients through the solve, by name: backpropagation through
the solver (discretise-then-optimise) or the continuous adjoint (optimise-then-
discretise)."""

SEEDS = (0, 1, 2, 3, 4)
"""The paper's five seeds: `TrainConfig`'s default."""


def _pairs(regularise) -> tuple[tuple[str, float], ...]:
    """`regularise` as a tuple of `(name, value)` pairs (JSON gives lists).

    **Raises:** `ValueError` for anything else.
    """
    try:
        pairs = tuple((name, value) for name, value in regularise)
    except (TypeError, ValueError):
        raise ValueError(
            f"regularise must be (name, weight) pairs, e.g. (('kinetic', 0.01),), got "
            f"{regularise!r}"
        ) from None
    for name, value in pairs:
        if not (isinstance(name, str) and check.is_number(value)):
            raise ValueError(
                f"regularise must be (name, weight) pairs, got ({name!r}, {value!r})"
            )
    return pairs


def paper_channels(dataset: str | None) -> int:
    """The paper's hidden channels C of the vector field: 128 for CIFAR-10, else 32."""
    return 128 if dataset == "cifar10" else 32


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved as `config.json` in its run folder.

    Fixed-step training gives `steps` (the step size is `1/steps` on `[0, 1]`); adaptive
    training gives `tol` (rtol = atol = tol). Defaults are the paper's (Adam, lr 1e-4,
    batch 128, 10,000 iterations, five seeds, C = 128 for CIFAR-10 and 32 otherwise:
    `channels=None` becomes the paper's value for the data set).
    Every seed trains on the same data set (`data_seed`), from its own initialisation and
    batch order.

    With `adapt=True` the step size (or tolerance) is adapted during training by the
    paper's rule (`odeness.adapt`, see `rule()`), each seed on its own: `steps` / `tol`
    are the starting values. A solver without error estimate and no `steps` starts at
    Hairer's initial step size; an adaptive solver must be given `tol` (the paper's is
    1e-6).
    `threshold`, `interval` and `test_solver` (default: the paper's for the solver) are
    the rule's. `max_steps` is the most steps a training solve may take: for `steps`,
    at least `steps` (default: exactly `steps`); adaptively, the solver's budget
    (default 4096); for the step-size adaptation, the cap on its step count (default
    500, the paper's).

    `regularise` names the regularisers of the training solves and their weights
    (`regularisers()`; each penalty's batch mean times its weight joins the loss).

    `adjoint` is how gradients go through the solve (`ADJOINTS`): `"backprop"` (the
    paper's, default) backpropagates through the solver's operations; `"backsolve"`
    solves the continuous adjoint ODE backwards (`diffrax.BacksolveAdjoint`, the paper's
    supplement), for runs without adaptation.

    **Raises:** `ValueError` at construction, naming the bad field and value.
    """

    dataset: str | None = "sphere2"
    """A built-in data set (`odeness.load_dataset`), or None for data of your own,
    given to `train(..., data=...)`."""
    solver: str = "euler"
    steps: int | None = 2
    tol: float | None = None
    field: str = "conv"
    channels: int | None = None
    """The hidden channels C of the field; None becomes the paper's at construction."""
    seeds: tuple[int, ...] = SEEDS
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
    adjoint: str = "backprop"
    regularise: tuple[tuple[str, float], ...] = ()
    """Regularisers by name and weight (`odeness.REGULARISERS`): `(("kinetic", 0.01),
    ("taylor2", 0.001))`; `("steer", spread)` draws each training solve's end time from
    `[1 - spread, 1 + spread]`. A weight of 0 leaves the run as it is without."""

    def __post_init__(self):
        """Check every field, naming the bad one and its value, with the validators of
        the values the fields name (the solver table, the control, the regularisers,
        the rule). No integrator, data set or model is built: `integrator()` and
        `load_dataset()` build them when asked."""
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "regularise", _pairs(self.regularise))
        object.__setattr__(self, "channels", self.model_channels)
        if self.dataset is not None:  # None: the data given to `train`
            check_dataset(self.dataset)
        check_field(self.field, self.model_channels)
        check.one_of("solver", self.solver, SOLVERS)
        check.one_of("adjoint", self.adjoint, ADJOINTS)
        check.boolean("adapt", self.adapt)
        self._check_control()
        self._check_seeds()
        self._check_schedule()
        self._check_regularise()
        if self.adapt:
            self._check_adaptation()

    def _check_control(self) -> None:
        if self.steps is not None and self.tol is not None:
            raise ValueError(
                f"give exactly one of steps and tol, got steps={self.steps!r}, "
                f"tol={self.tol!r}"
            )
        if self.max_steps is not None:
            check.integer("max_steps", self.max_steps)
        control = self.control
        if control is None:
            if not self.adapt or is_adaptive(solver(self.solver)):
                hint = " (adaptive solvers start from a tol, the paper's is 1e-6)"
                raise ValueError(
                    "give exactly one of steps and tol, got steps=None, tol=None"
                    + (hint if self.adapt else "")
                )
            return
        control.check_solver(solver(self.solver))
        if not self.adapt:
            control.budget(1.0, self.max_steps)

    def _check_seeds(self) -> None:
        if not (self.seeds and all(check.is_seed(s) for s in self.seeds)):
            raise ValueError(
                f"seeds must be one or more integers in [0, 2**32 - 1], got {self.seeds!r}"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds!r}")
        check.seed("data_seed", self.data_seed)

    def _check_schedule(self) -> None:
        for name in ("iterations", "batch_size", "log_every", "checkpoint_every"):
            check.integer(name, getattr(self, name))
        if self.checkpoint_every % self.log_every:
            raise ValueError(
                f"checkpoint_every ({self.checkpoint_every}) must be a multiple of "
                f"log_every ({self.log_every})"
            )
        check.positive("learning_rate", self.learning_rate)

    def _check_regularise(self) -> None:
        regularisers = [r for r, _ in self.regularisers()]  # names, weights, spreads
        check_regularisers(regularisers, 0.0, 1.0)
        if any(isinstance(r, ErrorEstimate) for r in regularisers):
            check_error_estimate(solver(self.solver), ADJOINTS[self.adjoint]())

    def _check_adaptation(self) -> None:
        if self.adjoint != "backprop":
            raise ValueError(
                f"adjoint={self.adjoint!r} does not combine with adapt=True: adapted runs "
                "backpropagate through the solver (adjoint='backprop')"
            )
        rule = self.rule()  # threshold, interval, test_solver and max_steps
        assert rule is not None
        control = self.control
        if isinstance(control, Steps) and control.n > rule.max_steps:
            raise ValueError(
                f"steps {control.n} exceeds the adaptation's cap of "
                f"max_steps={rule.max_steps}; raise max_steps or start from fewer steps"
            )

    @property
    def model_channels(self) -> int:
        """The hidden channels C of the field (`channels`, the paper's if it was not
        given), as an `int`."""
        return paper_channels(self.dataset) if self.channels is None else self.channels

    @property
    def control(self) -> AbstractControl | None:
        """How training solves: `Steps(steps)` or `Tolerances(tol)` (rtol = atol = tol);
        None for an adapted run that starts at Hairer's step size.

        **Raises:** `ValueError` for `steps` not an integer >= 1, or `tol` not a finite
        number > 0."""
        if self.steps is not None:
            return Steps(self.steps)
        if self.tol is not None:
            return Tolerances(self.tol)
        return None

    def controlled(self, control: AbstractControl) -> "TrainConfig":
        """This configuration trained with `control`: `Steps(n)` or `Tolerances(tol)`
        (rtol = atol), the training interval being `[0, 1]`.

        **Raises:** `ValueError` for another control."""
        if isinstance(control, Steps):
            return self.replace(steps=control.n, tol=None)
        if isinstance(control, Tolerances) and control.rtol == control.atol:
            return self.replace(steps=None, tol=control.size())
        raise ValueError(
            f"TrainConfig trains with steps (Steps(n)) or with rtol = atol "
            f"(Tolerances(tol)), got {control!r}"
        )

    @property
    def label(self) -> str:
        """How the run integrates, for tables: `n=8`, `tol=0.001`, `adapted from n=2`,
        `n=8, kinetic 0.01`."""
        control = self.control
        label = (
            f"n={self.steps}"
            if isinstance(control, Steps)
            else f"tol={self.tol:g}"
            if control is not None
            else "Hairer h0"
        )
        label = f"adapted from {label}" if self.adapt else label
        return ", ".join([label, *(f"{name} {value:g}" for name, value in self.regularise)])

    def regularisers(self) -> tuple[tuple[AbstractRegulariser, float], ...]:
        """`(regulariser, weight)` of each name of `regularise` (`odeness.REGULARISERS`),
        leaving out those of weight 0 (and a `steer` of spread 0): a run without them.
        `steer`'s weight is 0: it has no penalty.

        **Raises:** `ValueError` for an unknown name, a weight that is not a finite number
        >= 0, an order K < 1, or a spread that is not a finite number >= 0.
        """
        chosen = []
        for name, value in self.regularise:
            if value == 0:  # off: only its name is checked
                named_regulariser(name, 0.5)
            else:
                chosen.append(named_regulariser(name, value))
        return tuple(chosen)

    def rule(self) -> AbstractRule | None:
        """The paper's adaptation rule for this configuration (`odeness.StepSizeRule`,
        `odeness.ToleranceRule`), or None without `adapt`."""
        if not self.adapt:
            return None
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
        if self.control is None:
            raise ValueError(
                "this adapted run starts at Hairer's step size, known once the model is "
                "initialised"
            )
        return Integrator(
            solver(self.solver),
            self.control,
            max_steps=self.max_steps,
            adjoint=ADJOINTS[self.adjoint](),
        )

    def load_dataset(self):
        """The built-in data set the configuration names (`odeness.load_dataset` with
        its `data_seed` and `data_dir`).

        **Raises:** `ValueError` with `dataset=None` (data of your own: load it yourself
        and give it to `train`); as `odeness.load_dataset`.
        """
        if self.dataset is None:
            raise ValueError("the configuration has dataset=None: give the data (data=...)")
        return load_dataset(self.dataset, seed=self.data_seed, data_dir=self.data_dir)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)
