"""Continuous normalising flows: a Neural ODE as a density model (FFJORD, RNODE).

A flow carries samples of a base distribution at `t0` to the data at `t1`; a data point's
log-density is the base's at the point carried back to `t0`, minus the integral of the
field's divergence along the way (the instantaneous change of variables, Chen et al.
2018):

    log p(x) = log p₀(z(t0)) − ∫_{t0}^{t1} tr(∂f/∂z)(t, z(t)) dt,   z(t1) = x.

`CNF(field)(x, integ)` solves this backwards in time with `integ` (from `t1` to `t0`),
the divergence accumulated along the same solve, and returns each example's
log-likelihood. That number is the model's log-density only if the solve is accurate:
whether the model is an ODE decides whether the likelihood it reports is a likelihood.
"""

import abc
import math
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._integrate import Integrator, Regularised, SolveStats, solve
from ._models import ConcatSquashField
from ._neural_ode import AbstractODEModel, _PerExampleField
from ._regularisers import AbstractIntegralPenalty, JacobianFrobenius, per_example

EXACT_TRACE_MAX = 16
"""The largest state (numbers per example) whose divergence `CNF` computes exactly by
default: one Jacobian-vector product per number and stage evaluation. Larger states use
Hutchinson's estimator, one product each."""


class AbstractTrace(eqx.Module):
    """How a CNF computes the divergence `tr(∂f/∂z)` of its field, per example: exactly
    (`ExactTrace`) or by Hutchinson's estimator (`HutchinsonTrace`)."""

    needs_key: ClassVar[bool] = False
    """Whether it draws random probes (then the `CNF` needs a `key`)."""

    @abc.abstractmethod
    def probes(self, key: PRNGKeyArray | None, z: Float[Array, "batch ..."]) -> PyTree:
        """The vectors the Jacobian is applied to, drawn once per solve."""

    @abc.abstractmethod
    def passes(self, z: Float[Array, "batch ..."]) -> int:
        """Jacobian-vector products per evaluation of the field."""

    @abc.abstractmethod
    def products(
        self, z: Float[Array, "batch ..."], products: Array, probes: PyTree
    ) -> tuple[Float[Array, " batch"], Float[Array, " batch"]]:
        """`(trace, squared Frobenius norm)` per example, from `products`: the Jacobian
        applied to each probe (stacked on a leading axis)."""


def _numbers(z) -> int:
    return math.prod(z.shape[1:])


class ExactTrace(AbstractTrace):
    """The exact divergence: the Jacobian applied to each unit vector, one product per
    number of the state. It gives the exact Frobenius norm (RNODE's Jacobian penalty) at
    no extra cost."""

    def probes(self, key, z):
        del key
        d = _numbers(z)
        basis = jnp.eye(d, dtype=z.dtype).reshape(d, 1, *z.shape[1:])
        return jnp.broadcast_to(basis, (d, *z.shape))

    def passes(self, z):
        return _numbers(z)

    def products(self, z, products, probes):
        # Σ_i e_iᵀ J e_i and Σ_i ‖J e_i‖²: elementwise products and sums (a diagonal
        # taken by indexing is a gather, whose gradient is slow inside the training loop).
        trace = jax.vmap(lambda e, p: per_example(e * p))(probes, products)
        square = jax.vmap(lambda p: per_example(p**2))(products)
        return jnp.sum(trace, axis=0), jnp.sum(square, axis=0)


class HutchinsonTrace(AbstractTrace):
    """Hutchinson's estimator: `tr(J) = E[εᵀ J ε]` for probes `ε` with `E[ε εᵀ] = I`,
    Rademacher (default, the smaller variance) or standard Gaussian (`gaussian=True`),
    drawn once per solve and held along it (Grathwohl et al. 2019, FFJORD). The same
    product gives `‖J ε‖²`, an unbiased estimate of RNODE's Jacobian penalty.

    **Raises:** `ValueError` for `probes` not an integer >= 1.
    """

    gaussian: bool = eqx.field(static=True, default=False)
    count: int = eqx.field(static=True, default=1)
    """Probes per example (their mean is the estimate)."""
    needs_key: ClassVar[bool] = True

    def __check_init__(self):
        if (
            isinstance(self.count, bool)
            or not isinstance(self.count, int)
            or self.count < 1
        ):
            raise ValueError(f"count must be an integer >= 1, got {self.count!r}")

    def probes(self, key, z):
        if key is None:
            raise ValueError("HutchinsonTrace draws its probes from a key: give CNF(key=)")
        shape = (self.count, *z.shape)
        if self.gaussian:
            return jax.random.normal(key, shape, z.dtype)
        return jax.random.rademacher(key, shape, z.dtype)

    def passes(self, z):
        return self.count

    def products(self, z, products, probes):
        trace = jax.vmap(lambda e, p: per_example(e * p))(probes, products)
        square = jax.vmap(lambda p: per_example(p**2))(products)
        return jnp.mean(trace, axis=0), jnp.mean(square, axis=0)


DIVERGENCE = "divergence"
"""The name the divergence's integral is accumulated under inside a CNF's solve."""


class _Divergence(AbstractIntegralPenalty):
    """`∫ tr(∂f/∂z) dt` along the solve, accumulated as the regularisers' integrals are
    (and, with `jacobian`, `∫ ‖∂f/∂z‖²_F dt` from the same products: RNODE's sharing)."""

    trace: AbstractTrace
    key: PRNGKeyArray | None
    jacobian: bool = eqx.field(static=True, default=False)

    @property
    def name(self) -> str:
        return DIVERGENCE

    @property
    def names(self) -> tuple[str, ...]:
        return (DIVERGENCE, "jacobian") if self.jacobian else (DIVERGENCE,)

    @property
    def extra_evaluations(self) -> int:
        return 0  # counted by the CNF, which knows the state's size

    def noise(self, key, y0):
        del key  # the CNF's own key: the same probes for every solver of a swap
        return self.trace.probes(self.key, y0)

    def evaluate(self, field, t, y, args, noise):
        f, jvp = jax.linearize(lambda z: field(t, z, args), y)
        # One product per probe, each on the batch (a `vmap` over the probes makes the
        # matmuls batched, several times slower on CPU inside the training loop).
        products = jnp.stack([jvp(e) for e in noise.astype(f.dtype)])
        trace, square = self.trace.products(y, products, noise)
        if self.jacobian:
            return f, {DIVERGENCE: trace, "jacobian": square}
        return f, trace

    def rate(self, field, t, y, args, f, noise):
        del f
        return self.evaluate(field, t, y, args, noise)[1]


class AbstractBase(eqx.Module):
    """A CNF's base distribution at `t0`."""

    @abc.abstractmethod
    def log_prob(self, z: Float[Array, "batch ..."]) -> Float[Array, " batch"]:
        """Each example's log-density."""

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, shape: tuple[int, ...]) -> Float[Array, "..."]:
        """Samples of `shape` (the batch first)."""


class StandardNormal(AbstractBase):
    """The standard normal distribution on the state: `N(0, I)`."""

    def log_prob(self, z):
        return per_example(-0.5 * (z**2 + math.log(2 * math.pi)))

    def sample(self, key, shape):
        return jax.random.normal(key, shape)


class CNF(AbstractODEModel):
    """A continuous normalising flow from `base` at `t0` to the data at `t1`.

    `cnf(x, integ)` is `(log_likelihood, stats)`: each example's log-likelihood in nats,
    from a solve of the flow from `x` at `integ.t1` back to `integ.t0`
    (`Integrator.reversed`) with the divergence accumulated along it. With a regularised
    integrator (`Integrator.regularised`) the penalties are those of the same solve;
    RNODE's Jacobian norm (`JacobianFrobenius()`, one probe) then reuses the trace's
    products. `stats.nfe` counts the field's evaluations; the trace's Jacobian-vector
    products (and a penalty's) are in `stats.penalty_nfe`.

    **Arguments:**

    - `field`: the vector field `field(t, z, args) -> dz/dt` on a batch of states, or on
        one state with `batched=False` (diffrax's convention, e.g. an `eqx.nn.MLP` of
        `(t, z)`). It must act on each example alone (no batch statistics).
    - `trace`: how the divergence is computed: `ExactTrace()` or `HutchinsonTrace()`.
        Default: exact for states of at most `EXACT_TRACE_MAX` (16) numbers, Hutchinson's
        estimator with Rademacher probes for larger ones.
    - `key`: the key of Hutchinson's probes, drawn once per solve: every solve of one
        model uses the same probes (a solver swap compares like with like); training
        draws fresh ones each iteration (`with_key`).
    - `base`: the base distribution (default `StandardNormal()`).
    - `args`: passed to `field` as its third argument.
    - `batched`: whether `field` takes a batch (default) or one example.
    - `shape`: the shape of one example, for `sample` (e.g. `(2,)`).

    **Raises:** `ValueError` for a field that is not callable or a Hutchinson trace
    without a key; when called, for a default trace on a large state without a key.
    """

    field: PyTree
    trace: AbstractTrace | None = None
    key: PRNGKeyArray | None = None
    base: AbstractBase = StandardNormal()
    args: PyTree = None
    batched: bool = eqx.field(static=True, default=True)
    shape: tuple[int, ...] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not callable(self.field):
            raise ValueError(
                f"field must be callable as field(t, z, args), got {self.field!r}"
            )
        if self.trace is not None and self.trace.needs_key and self.key is None:
            raise ValueError(
                f"{type(self.trace).__name__} draws random probes: give CNF(..., key=)"
            )

    @property
    def needs_key(self) -> bool:
        return self.key is not None

    def with_key(self, key: PRNGKeyArray) -> "CNF":
        """The flow with fresh probes (a new `key`); training calls it each iteration."""
        if self.key is None:
            return self
        return eqx.tree_at(lambda m: m.key, self, key)

    def _field(self) -> Callable:
        return self.field if self.batched else _PerExampleField(self.field)

    def trace_of(self, z: Float[Array, "batch ..."]) -> AbstractTrace:
        """The trace estimator used on states like `z` (`trace`, or the default rule).

        **Raises:** `ValueError` where the default rule needs Hutchinson's estimator and
        the flow has no key."""
        if self.trace is not None:
            return self.trace
        if _numbers(z) <= EXACT_TRACE_MAX:
            return ExactTrace()
        if self.key is None:
            raise ValueError(
                f"a state of {_numbers(z)} numbers (> {EXACT_TRACE_MAX}) takes "
                "Hutchinson's trace estimator: give CNF(..., key=), or trace=ExactTrace()"
            )
        return HutchinsonTrace()

    def initial_state(self, x):
        """The data themselves: the flow's state at `t1`."""
        return x

    def vector_field(self, t, y, args):
        """The flow's field, forwards in time. A diagnostic that solves the ODE itself
        (`odeness.diagnostics`) follows the flow from the data to the base when given
        `integ.reversed()`."""
        del args
        return self._field()(t, y, self.args)

    def __call__(
        self, x: Float[Array, "batch ..."], integ: Integrator | Regularised
    ) -> tuple[Float[Array, " batch"], SolveStats]:
        """`(log_likelihood, stats)` per example of `x`, solved with `integ` backwards."""
        x = jnp.asarray(x)
        trace = self.trace_of(x)
        plain = integ.integrator if isinstance(integ, Regularised) else integ
        others = integ.regularisers if isinstance(integ, Regularised) else ()
        # RNODE's Jacobian norm from the trace's own products, where they give it.
        one_probe = isinstance(trace, ExactTrace) or trace.passes(x) == 1
        shares = [type(r) is JacobianFrobenius and r.probes == 1 for r in others]
        jacobian = one_probe and any(shares)
        if jacobian:
            others = tuple(r for r, s in zip(others, shares, strict=True) if not s)
        divergence = _Divergence(trace, self.key, jacobian)
        key = integ.key if isinstance(integ, Regularised) else None
        solved = Regularised(plain.reversed(), (divergence, *others), key)
        z, stats = solve(self._field(), x, solved, self.args)
        penalties = dict(stats.penalties)
        log_det = penalties.pop(DIVERGENCE)
        extra = stats.penalty_nfe + trace.passes(x) * stats.nfe
        stats = SolveStats(
            stats.num_steps,
            stats.num_accepted_steps,
            stats.nfe,
            stats.result,
            penalties,
            extra,
        )
        # `log_det` is the divergence's integral over the interval, oriented by the
        # solve: backwards from t1 to t0 it is −∫_{t0}^{t1} tr(∂f/∂z) dt for t0 < t1.
        direction = 1.0 if plain.t1 > plain.t0 else -1.0
        return self.base.log_prob(z) - direction * log_det, stats

    def sample(self, key: PRNGKeyArray, n: int, integ: Integrator) -> Float[Array, "n ..."]:
        """`n` samples of the model: base samples (of `shape`) carried from `integ.t0` to
        `integ.t1`.

        **Raises:** `ValueError` for a flow without `shape`, or `n` not an integer >= 1."""
        if self.shape is None:
            raise ValueError("sampling needs the shape of one example: give CNF(shape=)")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        z0 = self.base.sample(key, (n, *self.shape))
        return solve(self._field(), z0, integ, self.args)[0]


def make_flow(
    input_shape: tuple[int, ...], *, channels: int = 64, key: PRNGKeyArray
) -> CNF:
    """The default flow of flat data `(d,)`: a `CNF` of a `ConcatSquashField` (3 layers of
    width `channels`) from a standard normal, the trace exact up to `EXACT_TRACE_MAX`
    numbers and Hutchinson's (from `key`) above.

    **Raises:** `ValueError` for data that are not flat."""
    if len(input_shape) != 1:
        raise ValueError(f"the default flow takes flat data (d,), got shape {input_shape}")
    field_key, probe_key = jax.random.split(key)
    (dim,) = input_shape
    field = ConcatSquashField(dim, channels, key=field_key)
    return CNF(field, key=None if dim <= EXACT_TRACE_MAX else probe_key, shape=input_shape)
