"""What odeness asks of a model, and a Neural ODE that assembles one from its parts.

The solver swap needs only a callable `model(x, integ) -> (outputs, stats)` that solves
with the `Integrator` it is given. The diagnostics and the initial step size also need
the ODE itself: an `AbstractODEModel` says how inputs become the initial state and what
the vector field is. `NeuralODE` is the ready-made one:

```python
model = odeness.NeuralODE(
    field,                  # field(t, y, args) -> dy/dt, on a batch of states
    encoder=encoder,        # optional: inputs -> initial states (a batch)
    decoder=decoder,        # optional: final states -> outputs (a batch)
    augment=2,              # optional: zeros appended to the state's last axis
    ts=jnp.linspace(0, 1, 11),  # optional: outputs at each save time
)
outputs, stats = model(x, integ)
```

`batched=False` takes the field, encoder and decoder written for one example, as diffrax
writes a vector field (`y` of shape `(d,)`), and maps them over the batch.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._checks import integer
from ._integrate import Integrator, SolveStats, save_times, solve


class AbstractODEModel(eqx.Module):
    """A model whose prediction integrates an ODE with the `Integrator` it is given.

    Subclass it (or use `NeuralODE`) so that the diagnostics (`odeness.diagnostics`) and
    Hairer's initial step size can reach the ODE: `initial_state(x)` (any upstream layer
    applied) and `vector_field(t, y, args)` (the model's own `args` bound; the `args`
    passed in are ignored).
    """

    @abc.abstractmethod
    def initial_state(self, x: Float[Array, "batch ..."]) -> Float[Array, "batch ..."]:
        """The ODE's initial state for the inputs `x`."""

    @abc.abstractmethod
    def vector_field(
        self, t, y: Float[Array, "batch ..."], args
    ) -> Float[Array, "batch ..."]:
        """`dy/dt` at time `t`, for a batch of states."""

    @abc.abstractmethod
    def __call__(
        self, x: Float[Array, "batch ..."], integ: Integrator
    ) -> tuple[PyTree[Array], SolveStats]:
        """`(outputs, stats)`: the prediction for `x`, solved with `integ`."""

    @property
    def needs_key(self) -> bool:
        """Whether the model draws random numbers of its own (a CNF's trace probes):
        then training gives it fresh ones each iteration (`with_key`)."""
        return False

    def with_key(self, key: PRNGKeyArray) -> "AbstractODEModel":
        """The model with fresh random numbers from `key` (itself, by default)."""
        del key
        return self


class _PerExampleField(eqx.Module):
    """A vector field of one state, mapped over the batch: a module, so that its
    parameters stay in the term (the continuous adjoint differentiates them)."""

    field: PyTree

    def __call__(self, t, y, args):
        return jax.vmap(self.field, in_axes=(None, 0, None))(t, y, args)


class _PerExample(eqx.Module):
    """A module of one example, mapped over the batch."""

    module: PyTree

    def __call__(self, x):
        return jax.vmap(self.module)(x)


def _times(ts) -> tuple[float, ...] | None:
    return None if ts is None else tuple(float(t) for t in save_times(ts))


class NeuralODE(AbstractODEModel):
    """`outputs = decoder(Φ(encoder(x) ⊕ 0))`: a vector field with optional upstream and
    downstream modules, augmented dimensions, `args` and save times.

    **Arguments:**

    - `field`: the vector field `field(t, y, args) -> dy/dt` on a batch of states (an
        `eqx.Module` or a function; time-dependent fields use `t`).
    - `encoder`: maps a batch of inputs to a batch of initial states (default: none).
    - `decoder`: maps a batch of states to a batch of outputs (default: none). With
        `ts`, it is applied to the states at each save time.
    - `augment`: zeros appended to the last axis of the initial state (augmented Neural
        ODEs; default 0).
    - `args`: passed to `field` as its third argument.
    - `ts`: save times in `[t0, t1]`, strictly increasing (kept as static floats, never
        trained): the outputs are then `(batch, T, ...)`, one per save time (see
        `odeness.solve` for save times that fall between steps). Default: the state at
        `t1` only.
    - `batched`: whether `field`, `encoder` and `decoder` take a batch (default, the
        papers' models) or one example each, as diffrax writes a vector field
        (`field(t, y, args)` with `y` of shape `(d,)`, e.g. an `eqx.nn.MLP`); then they
        are mapped over the batch (`jax.vmap`), and `augment` appends to each example's
        last axis all the same.

    **Raises:** `ValueError` for a negative `augment`, a field that is not callable or
    save times that are not strictly increasing; when called, for save times outside
    the integrator's `[t0, t1]`.
    """

    field: PyTree
    encoder: PyTree = None
    decoder: PyTree = None
    augment: int = eqx.field(static=True, default=0)
    args: PyTree = None
    ts: tuple[float, ...] | None = eqx.field(static=True, default=None, converter=_times)
    """The save times, as Python floats: static, so training never moves them."""
    batched: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        integer("augment", self.augment, minimum=0)
        if not callable(self.field):
            raise ValueError(
                f"field must be callable as field(t, y, args), got {self.field!r}"
            )

    def _field(self):
        return self.field if self.batched else _PerExampleField(self.field)

    def _per_batch(self, module):
        return module if self.batched else _PerExample(module)

    def initial_state(self, x):
        y0 = x if self.encoder is None else self._per_batch(self.encoder)(x)
        if self.augment:
            zeros = jnp.zeros((*y0.shape[:-1], self.augment), y0.dtype)
            y0 = jnp.concatenate([y0, zeros], axis=-1)
        return y0

    def vector_field(self, t, y, args):
        del args
        return self._field()(t, y, self.args)

    def __call__(self, x, integ):
        ts = None if self.ts is None else np.asarray(self.ts)
        y, stats = solve(self._field(), self.initial_state(x), integ, self.args, ts=ts)
        if self.ts is None:
            return (y if self.decoder is None else self._per_batch(self.decoder)(y)), stats
        if self.decoder is not None:  # each save time's batch of states
            y = jax.vmap(self._per_batch(self.decoder))(y)
        return jnp.moveaxis(y, 0, 1), stats  # (T, batch, ...) → (batch, T, ...)
