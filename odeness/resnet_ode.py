"""ResNets as discretised Neural ODEs (Sander, Ablin & Peyré, NeurIPS 2022).

A residual stage of depth N is `x_{n+1} = x_n + (1/N) f(x_n, θ_n)`: Euler's method with N
steps on `dx/dt = f(x, θ(t))`, `t ∈ [0, 1]`, where `θ(t)` interpolates the layer weights
piecewise affinely (`θ(n/N) = θ_n`). Heun's stage is the second-order version,
`x_{n+1} = x_n + (1/2N) (f(x_n, θ_n) + f(x_n + (1/N) f(x_n, θ_n), θ_{n+1}))`; it evaluates
f at both ends of each step and so takes N + 1 weight sets `θ_0 … θ_N`.

```python
stage = ResidualStage.init(TanhLayer(16), depth=64, key=key, family=Smooth())
x_N = stage(x)                          # lax.scan over the stacked layer weights
ode_distance(stage, x)                  # max_n ‖x_n − x(n/N)‖ against the limit ODE
smoothness(stage)                       # S_N = N · max_n ‖θ_{n+1} − θ_n‖
stage = ResidualStage(f, w, HeunStep(), adjoint=True)  # Heun, memory-free backward
```

Residual functions hold no trainable arrays: every weight lives in the stage's `weights`,
a pytree whose leaves are stacked along a leading depth axis.
"""

import abc
import math
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from ._checks import integer
from ._integrate import Integrator, trajectory
from ._models import conv3x3
from ._solvers import solver

__all__ = [
    "AbstractResidual",
    "AbstractStageMethod",
    "compiled_memory",
    "ConvBlock",
    "depth_distance",
    "EulerStep",
    "fit_linear_resnet",
    "gradient_memory",
    "HeunStep",
    "IID",
    "interpolated_weights",
    "limit_field",
    "LinearFit",
    "LinearInTheta",
    "LinearMap",
    "MLPBlock",
    "ode_distance",
    "ResidualStage",
    "Smooth",
    "smoothness",
    "StageClassifier",
    "TanhLayer",
]

# --- Residual functions f(x, θ) ------------------------------------------------------


class AbstractResidual(eqx.Module):
    """`f(x, θ)` for one layer: `x` of shape `(*batch, *state)`, `θ` one layer's weights.

    Subclass it for a residual function of your own: implement `__call__` and `init`.
    """

    @abc.abstractmethod
    def __call__(self, x: Array, theta: PyTree) -> Array:
        """`f(x, θ)`."""

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray) -> PyTree:
        """One layer's weights, drawn at random (the i.i.d. initialisation)."""


def _normal(key: PRNGKeyArray, shape: tuple[int, ...], fan_in: int) -> Array:
    return jax.random.normal(key, shape) / math.sqrt(fan_in)


class TanhLayer(AbstractResidual):
    """`f(x, W) = tanh(W x)`: nonlinear in θ (the case where i.i.d. weights give no ODE)."""

    dim: int = eqx.field(static=True)

    def __call__(self, x: Float[Array, "*batch d"], theta: Float[Array, "d d"]):
        return jnp.tanh(x @ theta.T)

    def init(self, key: PRNGKeyArray) -> Float[Array, "d d"]:
        return _normal(key, (self.dim, self.dim), self.dim)


class LinearInTheta(AbstractResidual):
    """`f(x, W) = W tanh(x)`: linear in θ, the control case (the gap telescopes)."""

    dim: int = eqx.field(static=True)

    def __call__(self, x: Float[Array, "*batch d"], theta: Float[Array, "d d"]):
        return jnp.tanh(x) @ theta.T

    def init(self, key: PRNGKeyArray) -> Float[Array, "d d"]:
        return _normal(key, (self.dim, self.dim), self.dim)


class MLPBlock(AbstractResidual):
    """`f(x, (W1, W2)) = W2 tanh(W1 x)`: the usual two-layer residual block."""

    dim: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)

    def __call__(self, x: Float[Array, "*batch d"], theta):
        w1, w2 = theta
        return jnp.tanh(x @ w1.T) @ w2.T

    def init(self, key: PRNGKeyArray):
        k1, k2 = jax.random.split(key)
        return (
            _normal(k1, (self.hidden, self.dim), self.dim),
            _normal(k2, (self.dim, self.hidden), self.hidden),
        )


class ConvBlock(AbstractResidual):
    """`f(x, (K1, K2)) = K2 ∗ tanh(K1 ∗ x)`, 3 × 3 convolutions on `(N, H, W, C)` images
    (channels last, `HWIO` kernels)."""

    channels: int = eqx.field(static=True)

    def __call__(self, x: Float[Array, "N H W C"], theta):
        k1, k2 = theta
        return conv3x3(jnp.tanh(conv3x3(x, k1)), k2)

    def init(self, key: PRNGKeyArray):
        c = self.channels
        k1, k2 = jax.random.split(key)
        return _normal(k1, (3, 3, c, c), 9 * c), _normal(k2, (3, 3, c, c), 9 * c)


class LinearMap(AbstractResidual):
    """`f(x, A) = A x`: the linear ResNet of Sander et al.'s Sec. 4."""

    dim: int = eqx.field(static=True)

    def __call__(self, x: Float[Array, "*batch d"], theta: Float[Array, "d d"]):
        return x @ theta.T

    def init(self, key: PRNGKeyArray) -> Float[Array, "d d"]:
        return _normal(key, (self.dim, self.dim), self.dim)


# --- Weight families -----------------------------------------------------------------


class IID(eqx.Module):
    """Independent draws for every layer around a common mean, `θ_n = shared · μ + ξ_n`
    (`μ`, `ξ_n` each drawn as one layer's weights): increments O(1), not smooth in depth.

    With `shared=0` the draws have mean zero; for a residual function odd in θ (such as
    `tanh(W x)`) the stage and the interpolated ODE then both tend to the trivial flow,
    and their distance decays like a random walk's, O(N^-1/2), instead of staying put.
    """

    shared: float = eqx.field(static=True, default=1.0)

    def __call__(
        self, residual: AbstractResidual, times: Float[Array, " L"], *, key: PRNGKeyArray
    ) -> PyTree:
        k_mean, k_layers = jax.random.split(key)
        mean = residual.init(k_mean)
        layers = jax.vmap(residual.init)(jax.random.split(k_layers, times.shape[0]))
        return jax.tree.map(lambda m, w: self.shared * m + w, mean, layers)


class Smooth(eqx.Module):
    """`θ_n = θ(t_n)` with `θ(t) = Σ_{k<modes} c_k cos(π k t) / √modes`, the `c_k` drawn
    as one layer's weights: smooth in depth, and the same `θ(·)` for every depth (for a
    fixed key), so stages of growing depth discretise one ODE."""

    modes: int = eqx.field(static=True, default=4)

    def __call__(
        self, residual: AbstractResidual, times: Float[Array, " L"], *, key: PRNGKeyArray
    ) -> PyTree:
        coeffs = jax.vmap(residual.init)(jax.random.split(key, self.modes))
        basis = jnp.cos(jnp.pi * jnp.arange(self.modes) * times[:, None])
        basis = basis / math.sqrt(self.modes)
        return jax.tree.map(lambda c: jnp.tensordot(basis, c, axes=1), coeffs)


# --- Stepping methods ----------------------------------------------------------------


class AbstractStageMethod(eqx.Module):
    """A one-step method `x_{n+1} = step(f, x_n, θ_n, θ_{n+k}, h)` of a residual stage,
    with its reverse (the same method run backwards in time, for the adjoint).

    `extra_weights` (`k`): the weight sets it reads beyond the N of an N-step stage.
    Subclass it for a method of your own.
    """

    extra_weights: eqx.AbstractClassVar[int]

    @abc.abstractmethod
    def step(self, f: AbstractResidual, x: Array, a: PyTree, b: PyTree, h: float) -> Array:
        """One step from `x` with the layer's weights `a = θ_n` and `b = θ_{n+k}`."""

    @abc.abstractmethod
    def reverse(
        self, f: AbstractResidual, y: Array, a: PyTree, b: PyTree, h: float
    ) -> Array:
        """The state before `y`, reconstructed by stepping backwards."""


class EulerStep(AbstractStageMethod):
    """`x_{n+1} = x_n + h f(x_n, θ_n)`: the ResNet itself."""

    extra_weights: ClassVar[int] = 0

    def step(self, f, x, a, b, h):
        del b
        return x + h * f(x, a)

    def reverse(self, f, y, a, b, h):
        del b
        return y - h * f(y, a)


class HeunStep(AbstractStageMethod):
    """`x_{n+1} = x_n + (h/2) (f(x_n, θ_n) + f(x_n + h f(x_n, θ_n), θ_{n+1}))`: second
    order, reading the weights at both ends of each step."""

    extra_weights: ClassVar[int] = 1

    def step(self, f, x, a, b, h):
        k1 = f(x, a)
        return x + (h / 2) * (k1 + f(x + h * k1, b))

    def reverse(self, f, y, a, b, h):
        k1 = f(y, b)
        return y - (h / 2) * (k1 + f(y - h * k1, a))


def _layer(weights: PyTree, n: Int[Array, ""]) -> PyTree:
    return jax.tree.map(lambda w: w[n], weights)


def _step_at(f, method: AbstractStageMethod, weights, x, n, h):
    """Step `n` of the stage: reads `θ_n` (and `θ_{n+1}` for Heun) by index, so that
    no shifted copies of the stacked weights are made."""
    nxt = _layer(weights, n + method.extra_weights)
    return method.step(f, x, _layer(weights, n), nxt, h)


def _scan_forward(f, method: AbstractStageMethod, weights, x, h, *, keep: bool):
    def body(x, n):
        y = _step_at(f, method, weights, x, n, h)
        return y, (y if keep else None)

    return jax.lax.scan(body, x, jnp.arange(_depth(weights, method)))


@eqx.filter_custom_vjp
def _adjoint_stage(diff, f, method: AbstractStageMethod):
    weights, x = diff
    return _scan_forward(f, method, weights, x, 1.0 / _depth(weights, method), keep=False)[
        0
    ]


@_adjoint_stage.def_fwd
def _adjoint_stage_fwd(perturbed, diff, f, method: AbstractStageMethod):
    del perturbed
    out = _adjoint_stage.fn(diff, f, method)
    return out, out  # the only residual: the output x_N


@_adjoint_stage.def_bwd
def _adjoint_stage_bwd(x_last, g_last, perturbed, diff, f, method: AbstractStageMethod):
    """Reconstruct `x̃_n` by reverse steps from `x_N` and backpropagate through each step
    at the reconstructed state (Sander et al., Sec. 5). The weights' gradient is one
    buffer in the loop's carry, updated in place layer by layer."""
    del perturbed
    weights, x0 = diff
    h = 1.0 / _depth(weights, method)
    if g_last is None:
        g_last = jnp.zeros_like(x0)

    def body(carry, n):
        y, g, grads = carry
        a, b = _layer(weights, n), _layer(weights, n + method.extra_weights)
        x = method.reverse(f, y, a, b, h)
        _, vjp = jax.vjp(lambda x, a, b: method.step(f, x, a, b, h), x, a, b)
        gx, ga, gb = vjp(g)
        grads = jax.tree.map(lambda G, u: G.at[n].add(u), grads, ga)
        grads = jax.tree.map(lambda G, u: G.at[n + method.extra_weights].add(u), grads, gb)
        return (x, gx, grads), None

    zeros = jax.tree.map(jnp.zeros_like, weights)
    (_, g0, grads), _ = jax.lax.scan(
        body, (x_last, g_last, zeros), jnp.arange(_depth(weights, method)), reverse=True
    )
    return grads, g0


def _depth(weights: PyTree, method: AbstractStageMethod) -> int:
    return jax.tree.leaves(weights)[0].shape[0] - method.extra_weights


# --- The stage -----------------------------------------------------------------------


class ResidualStage(eqx.Module):
    """A residual stage of depth N: `x_{n+1} = x_n + (1/N) f(x_n, θ_n)` (Euler) or its Heun
    version, run with `lax.scan` over the stacked layer weights.

    **Arguments:**

    - `residual`: the residual function `f(x, θ)` (an `AbstractResidual`).
    - `weights`: a pytree of arrays with a leading depth axis: N layers for `EulerStep`,
        N + 1 for `HeunStep` (`θ_0 … θ_N`).
    - `method`: the one-step method (an `AbstractStageMethod`; default `EulerStep()`).
    - `adjoint`: if True, the backward pass is the memory-free adjoint (a custom VJP that
        keeps only `x_N` and reconstructs the activations by reverse steps); `jax.grad`,
        `jit` and `vmap` work through it unchanged. Its gradient differs from exact
        backprop by O(1/N) (Euler; O(1/N²) for Heun with weights smooth in depth).

    **Raises:** `TypeError` for a method that is not an `AbstractStageMethod`;
    `ValueError` for too few weight sets.
    """

    residual: AbstractResidual
    weights: PyTree
    method: AbstractStageMethod = EulerStep()
    adjoint: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        _check_method(self.method)
        if not isinstance(self.adjoint, bool):
            raise ValueError(f"adjoint must be True or False, got {self.adjoint!r}")
        leaves = jax.tree.leaves(self.weights)
        if not leaves or self.depth < 1:
            least = 1 + self.method.extra_weights
            raise ValueError(
                f"a {type(self.method).__name__} stage needs at least {least} weight "
                "sets along the leading axis of `weights`"
            )

    @classmethod
    def init(
        cls,
        residual: AbstractResidual,
        depth: int,
        *,
        key: PRNGKeyArray,
        family: IID | Smooth | None = None,
        method: AbstractStageMethod | None = None,
        adjoint: bool = False,
    ) -> "ResidualStage":
        """A stage of `depth` layers with weights from `family` (default `Smooth()`) at
        `t_n = n / depth`, stepped by `method` (default `EulerStep()`)."""
        family = Smooth() if family is None else family
        method = EulerStep() if method is None else method
        integer("depth", depth)
        _check_method(method)
        times = jnp.arange(depth + method.extra_weights) / depth
        return cls(residual, family(residual, times, key=key), method, adjoint)

    @property
    def depth(self) -> int:
        return _depth(self.weights, self.method)

    @property
    def times(self) -> Float[Array, " L"]:
        """The time `n / N` of each weight set."""
        return jnp.arange(jax.tree.leaves(self.weights)[0].shape[0]) / self.depth

    def __call__(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """`x_N`, the stage's output."""
        if self.adjoint:
            return _adjoint_stage((self.weights, x), self.residual, self.method)
        return _scan_forward(
            self.residual, self.method, self.weights, x, 1.0 / self.depth, keep=False
        )[0]

    def trajectory(self, x: Float[Array, "..."]) -> Float[Array, "N+1 ..."]:
        """All activations `x_0 … x_N` (stacked along a new leading axis)."""
        _, ys = _scan_forward(
            self.residual, self.method, self.weights, x, 1.0 / self.depth, keep=True
        )
        assert ys is not None
        return jnp.concatenate([x[None], ys])


def _check_method(method) -> None:
    if not isinstance(method, AbstractStageMethod):
        raise TypeError(
            f"method must be an AbstractStageMethod (EulerStep(), HeunStep() or one of "
            f"your own), got {method!r}"
        )


# --- The limit ODE and the distance to it ----------------------------------------------


def interpolated_weights(stage: ResidualStage, t: Float[Array, ""]) -> PyTree:
    """`θ(t)`: the stage's weights interpolated piecewise affinely between `t_n = n/N`
    (constant after the last weight set)."""
    last = jax.tree.leaves(stage.weights)[0].shape[0] - 1
    s = jnp.clip(t * stage.depth, 0, last)
    k = jnp.clip(jnp.floor(s), 0, max(last - 1, 0)).astype(int)
    frac = s - k
    nxt = jnp.minimum(k + 1, last)
    return jax.tree.map(lambda w: (1 - frac) * w[k] + frac * w[nxt], stage.weights)


def limit_field(stage: ResidualStage) -> Callable:
    """The limit ODE's vector field `(t, x, args) ↦ f(x, θ(t))`."""
    return lambda t, x, args: stage.residual(x, interpolated_weights(stage, t))


def ode_distance(
    stage: ResidualStage, x0: Float[Array, "batch ..."], *, substeps: int = 16
) -> Float[Array, ""]:
    """`max_n ‖x_n − x(n/N)‖`: the largest distance between the stage's activations and
    the limit ODE's solution at the layer times, over layers and over the batch (‖·‖:
    Euclidean norm of one example's state).

    The ODE is solved with classic RK4 and `substeps` steps per layer, each layer's
    interval one piece of the interpolated weights, so RK4 keeps its order: with the
    default 16, its error is far below the distances measured here.
    """
    n = stage.depth
    integ = Integrator(solver("rk4"), steps=n * substeps)
    _, ys, _ = trajectory(limit_field(stage), x0, integ)
    diff = stage.trajectory(x0) - ys[::substeps]
    return jnp.max(jnp.sqrt(jnp.sum(diff.reshape(*diff.shape[:2], -1) ** 2, axis=-1)))


def depth_distance(
    stage: ResidualStage, reference: ResidualStage, x0: Float[Array, "batch ..."]
) -> Float[Array, ""]:
    """`max_n ‖x_n − x^ref_{n M/N}‖`: the distance between a stage of depth N and a deeper
    reference stage of depth M (a multiple of N) at the shared layer times `n/N`."""
    n, m = stage.depth, reference.depth
    if m % n:
        raise ValueError(f"the reference depth {m} must be a multiple of the depth {n}")
    diff = stage.trajectory(x0) - reference.trajectory(x0)[:: m // n]
    return jnp.max(jnp.sqrt(jnp.sum(diff.reshape(*diff.shape[:2], -1) ** 2, axis=-1)))


def smoothness(stage: ResidualStage) -> Float[Array, ""]:
    """`S_N = N · max_n ‖θ_{n+1} − θ_n‖` (Frobenius norm over one layer's weights): bounded
    in N for weights smooth in depth, growing like N for i.i.d. weights."""
    sq = sum(
        jnp.sum(jnp.diff(w, axis=0).reshape(w.shape[0] - 1, -1) ** 2, axis=-1)
        for w in jax.tree.leaves(stage.weights)
    )
    return stage.depth * jnp.sqrt(jnp.max(sq))


# --- Linear ResNets under gradient descent ----------------------------------------------


class LinearFit(NamedTuple):
    """Snapshots of a linear ResNet trained by gradient descent."""

    steps: Float[Array, " T"]
    """The iterations at which the snapshots were taken (0 first)."""
    weights: Float[Array, "T N d d"]
    """The layer matrices `A_n` at each snapshot."""
    loss: Float[Array, " T"]


def fit_linear_resnet(
    depth: int,
    x: Float[Array, "batch d"],
    y: Float[Array, "batch d"],
    *,
    iterations: int,
    learning_rate: float,
    log_every: int,
) -> LinearFit:
    """Train `x_{n+1} = x_n + (1/N) A_n x_n` from `A_n = 0` (smooth: all equal) to map `x`
    to `y` by full-batch gradient descent on `½ mean ‖x_N − y‖²`, with the step size
    `learning_rate · N` (each `A_n`'s gradient is O(1/N)), as in Sander et al.'s Sec. 4.
    """
    if iterations < 1 or log_every < 1 or iterations % log_every:
        raise ValueError(
            f"need iterations >= 1 divisible by log_every >= 1, got {iterations!r}, "
            f"{log_every!r}"
        )
    dim = x.shape[-1]
    residual = LinearMap(dim)

    def loss(w):
        out = ResidualStage(residual, w)(x)
        return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=-1))

    grad = jax.value_and_grad(loss)

    def chunk(w, _):
        def step(w, _):
            return w - learning_rate * depth * grad(w)[1], None

        w = jax.lax.scan(step, w, None, length=log_every)[0]
        return w, (w, loss(w))

    w0 = jnp.zeros((depth, dim, dim), x.dtype)
    _, (ws, losses) = jax.jit(
        lambda w: jax.lax.scan(chunk, w, None, iterations // log_every)
    )(w0)
    steps = jnp.arange(iterations // log_every + 1) * log_every
    return LinearFit(
        steps,
        jnp.concatenate([w0[None], ws]),
        jnp.concatenate([loss(w0)[None], losses]),
    )


# --- Memory ------------------------------------------------------------------------------


def compiled_memory(fn: Callable, *args) -> dict[str, int]:
    """XLA's compiled memory analysis of `jax.jit(fn)(*args)` (compiled, not run): bytes
    of arguments, outputs and temporaries (`temp`: what the program allocates besides its
    inputs and outputs; it holds the activations that backprop stores)."""
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    if stats is None:
        raise RuntimeError(f"no memory analysis on backend {jax.default_backend()!r}")
    return {
        "argument_bytes": int(stats.argument_size_in_bytes),
        "output_bytes": int(stats.output_size_in_bytes),
        "temp_bytes": int(stats.temp_size_in_bytes),
    }


def gradient_memory(stage: ResidualStage, x: Float[Array, "batch ..."]) -> dict[str, int]:
    """`compiled_memory` of one gradient of `½ ‖stage(x)‖²` with respect to the weights
    and the input."""
    params, static = eqx.partition(stage, eqx.is_array)

    def loss(params, x):
        return 0.5 * jnp.sum(eqx.combine(params, static)(x) ** 2)

    return compiled_memory(jax.grad(loss, argnums=(0, 1)), params, x)


# --- A deep ResNet classifier ----------------------------------------------------------


class StageClassifier(eqx.Module):
    """`logits = head(stage(embed(x)))`: a linear embedding of the flattened input, one
    deep residual stage, a linear head (the model fine-tuned in `make resnet-ode`)."""

    embed: eqx.nn.Linear
    stage: ResidualStage
    head: eqx.nn.Linear

    def __call__(self, x: Float[Array, "batch ..."]) -> Float[Array, "batch classes"]:
        z = jax.vmap(self.embed)(x.reshape(x.shape[0], -1))
        return jax.vmap(self.head)(self.stage(z))

    @classmethod
    def init(
        cls,
        in_features: int,
        num_classes: int,
        *,
        width: int,
        depth: int,
        key: PRNGKeyArray,
        method: AbstractStageMethod | None = None,
        adjoint: bool = False,
    ) -> "StageClassifier":
        k1, k2, k3 = jax.random.split(key, 3)
        stage = ResidualStage.init(
            MLPBlock(width, width), depth, key=k2, method=method, adjoint=adjoint
        )
        return cls(
            eqx.nn.Linear(in_features, width, key=k1),
            stage,
            eqx.nn.Linear(width, num_classes, key=k3),
        )
