"""The vector fields of Ott et al. (ICLR 2021) and the ODE classifier.

Fields are autonomous and act on a whole batch: `field(t, y, args)` with `y` of shape
`(batch, *state_shape)`, so that a batch can be integrated as one ODE state (the paper's
choice). Weights are kept in PyTorch's layouts (`(out, in)`, `(out, in, kernel)`),
initialised Kaiming-normal (fan-in, gain sqrt 2) with zero biases, as the paper's code does.
"""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._checks import integer, one_of
from ._integrate import Integrator, SolveStats, solve
from ._neural_ode import AbstractODEModel


def kaiming_normal(key: PRNGKeyArray, shape: tuple[int, ...]) -> Float[Array, "..."]:
    """Normal weights with std `sqrt(2 / fan_in)`; `shape = (out, in, *kernel)`."""
    fan_in = math.prod(shape[1:])
    return jax.random.normal(key, shape) * math.sqrt(2.0 / fan_in)


def _three_layers(key: PRNGKeyArray, *shapes: tuple[int, ...]) -> tuple:
    """`(w1, b1), (w2, b2), (w3, b3)`: Kaiming-normal weights of the given `(out, in,
    *kernel)` shapes and zero biases, one key each."""
    keys = jax.random.split(key, len(shapes))
    return tuple(
        (kaiming_normal(k, shape), jnp.zeros(shape[0]))
        for k, shape in zip(keys, shapes, strict=True)
    )


def _linear(
    w: Float[Array, "out inp"], b: Float[Array, " out"], x: Float[Array, "... inp"]
):
    return x @ w.T + b


def _conv1d_k3(h: Float[Array, "*batch L C"], w: Float[Array, "O C 3"]):
    """`Conv1d(kernel=3, padding=1)` on a channels-last signal, without bias.

    For signals of length <= 3 the convolution is one dense banded (block-Toeplitz)
    matrix, a single matmul with no padding work (the spheres experiments' d = 2 is the
    case it serves; the docs' Performance page has the comparison). Longer
    signals use the three shifted copies side by side. Both equal
    `lax.conv_general_dilated` (tests/test_models.py).
    """
    length, channels = h.shape[-2:]
    out = w.shape[0]
    if length <= 3:
        # shifts[k, a, b] = 1 where input position a = output position b + k - 1.
        shifts = np.stack([np.eye(length, k=1 - k) for k in range(3)])
        m = jnp.einsum("kab,oik->aibo", shifts, w).reshape(length * channels, length * out)
        flat = h.reshape(*h.shape[:-2], length * channels) @ m
        return flat.reshape(*h.shape[:-2], length, out)
    pad = [(0, 0)] * (h.ndim - 2) + [(1, 1), (0, 0)]
    hp = jnp.pad(h, pad)
    stacked = jnp.concatenate(
        [hp[..., :-2, :], hp[..., 1:-1, :], hp[..., 2:, :]], axis=-1
    )  # (..., L, 3C), blocks ordered by kernel tap
    return stacked @ jnp.transpose(w, (2, 1, 0)).reshape(3 * channels, out)


class ConvField1d(eqx.Module):
    """The spheres vector field of Ott et al.: a point of `R^d` as a 1-channel signal.

    `Conv1d(1→C, k=1) → ReLU → Conv1d(C→C, k=3, pad=1) → ReLU → Conv1d(C→1, k=1)`.
    """

    w1: Float[Array, "C 1 1"]
    b1: Float[Array, " C"]
    w2: Float[Array, "C C 3"]
    b2: Float[Array, " C"]
    w3: Float[Array, "1 C 1"]
    b3: Float[Array, " 1"]

    def __init__(self, dim: int, channels: int = 32, *, key: PRNGKeyArray):
        del dim  # any signal length works; kept for a uniform field signature
        (self.w1, self.b1), (self.w2, self.b2), (self.w3, self.b3) = _three_layers(
            key, (channels, 1, 1), (channels, channels, 3), (1, channels, 1)
        )

    def __call__(
        self, t, y: Float[Array, "*batch d"], args=None
    ) -> Float[Array, "*batch d"]:
        del t, args
        h = jax.nn.relu(y[..., None] * self.w1[:, 0, 0] + self.b1)  # (..., d, C)
        h = jax.nn.relu(_conv1d_k3(h, self.w2) + self.b2)
        return h @ self.w3[0, :, 0] + self.b3[0]


class MLPField(eqx.Module):
    """Fully connected field: `Linear(d→C) → ReLU → Linear(C→C) → ReLU → Linear(C→d)`."""

    w1: Float[Array, "C d"]
    b1: Float[Array, " C"]
    w2: Float[Array, "C C"]
    b2: Float[Array, " C"]
    w3: Float[Array, "d C"]
    b3: Float[Array, " d"]

    def __init__(self, dim: int, channels: int = 32, *, key: PRNGKeyArray):
        (self.w1, self.b1), (self.w2, self.b2), (self.w3, self.b3) = _three_layers(
            key, (channels, dim), (channels, channels), (dim, channels)
        )

    def __call__(
        self, t, y: Float[Array, "*batch d"], args=None
    ) -> Float[Array, "*batch d"]:
        del t, args
        h = jax.nn.relu(_linear(self.w1, self.b1, y))
        h = jax.nn.relu(_linear(self.w2, self.b2, h))
        return _linear(self.w3, self.b3, h)


class ConcatSquashField(eqx.Module):
    """A flow's field of flat states (FFJORD's, and diffrax's CNF example's): `depth`
    hidden layers of width `C`, each a ConcatSquash layer `(W h + b) · σ(a t + c) + e t`
    (the time gates and shifts every unit), tanh between them. Weights normal with std
    `1/sqrt(fan_in)`, `a` standard normal, the biases, `c` and `e` zero."""

    layers: tuple[tuple[Float[Array, "o i"], Float[Array, "4 o"]], ...]
    """Each layer's `W` and its `(b, a, c, e)`."""

    def __init__(self, dim: int, channels: int = 64, depth: int = 3, *, key: PRNGKeyArray):
        sizes = [dim, *([channels] * depth), dim]
        layers = []
        for k, i, o in zip(
            jax.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:], strict=True
        ):
            kw, ka = jax.random.split(k)
            time = jnp.zeros((4, o)).at[1].set(jax.random.normal(ka, (o,)))
            layers.append((jax.random.normal(kw, (o, i)) / math.sqrt(i), time))
        self.layers = tuple(layers)

    def __call__(
        self, t, y: Float[Array, "*batch d"], args=None
    ) -> Float[Array, "*batch d"]:
        del args
        h = y
        for i, (w, (b, a, c, e)) in enumerate(self.layers):
            h = _linear(w, b, h) * jax.nn.sigmoid(a * t + c) + e * t
            if i < len(self.layers) - 1:
                h = jnp.tanh(h)
        return h


FIELDS: dict[str, Callable[..., eqx.Module]] = {"conv": ConvField1d, "mlp": MLPField}
"""Fields of flat inputs `(d,)`, by name."""


def _conv2d_k3(h: Float[Array, "N H W C"], kernel: Float[Array, "3 3 C O"]):
    """`Conv2d(kernel=3, padding=1)`, channels last, without bias: XLA's convolution."""
    return jax.lax.conv_general_dilated(
        h, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _conv2d_k3_matmul(h: Float[Array, "N H W C"], kernel: Float[Array, "3 3 C O"]):
    """`_conv2d_k3` as three matmuls: the width taps side by side (`(N, H+2, W, 3C)`),
    one matmul per row tap. Used on CPU, where XLA's convolution gradients inside the
    solver's loop are much slower than matmuls (the docs' Performance page).
    """
    width = h.shape[2]
    hp = jnp.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
    taps = jnp.concatenate([hp[:, :, j : j + width] for j in range(3)], axis=-1)
    rows = kernel.reshape(3, -1, kernel.shape[-1])  # (3, 3C, O), blocks by width tap
    height = h.shape[1]
    return sum(taps[:, i : i + height] @ rows[i] for i in range(3))


def conv3x3(h: Float[Array, "N H W C"], kernel: Float[Array, "3 3 C O"]):
    """`Conv2d(kernel=3, padding=1)`, channels last (`HWIO` kernel), without bias: as
    three matmuls on CPU (`_conv2d_k3_matmul`), XLA's convolution elsewhere."""
    return jax.lax.platform_dependent(h, kernel, cpu=_conv2d_k3_matmul, default=_conv2d_k3)


class ConvField2d(eqx.Module):
    """The image vector field of Ott et al. on the full-resolution image, channels last.

    `Conv2d(c→C, k=1) → ReLU → Conv2d(C→C, k=3, pad=1) → ReLU → Conv2d(C→c, k=1)`
    (C = 128 for CIFAR-10 in the paper). Weights in PyTorch's `(out, in, kh, kw)` layout.
    """

    w1: Float[Array, "C c 1 1"]
    b1: Float[Array, " C"]
    w2: Float[Array, "C C 3 3"]
    b2: Float[Array, " C"]
    w3: Float[Array, "c C 1 1"]
    b3: Float[Array, " c"]

    def __init__(self, image_channels: int, channels: int = 128, *, key: PRNGKeyArray):
        (self.w1, self.b1), (self.w2, self.b2), (self.w3, self.b3) = _three_layers(
            key,
            (channels, image_channels, 1, 1),
            (channels, channels, 3, 3),
            (image_channels, channels, 1, 1),
        )

    def __call__(
        self, t, y: Float[Array, "*batch H W c"], args=None
    ) -> Float[Array, "*batch H W c"]:
        del t, args
        lead = y.shape[:-3]
        h = y.reshape(-1, *y.shape[-3:])
        h = jax.nn.relu(h @ self.w1[:, :, 0, 0].T + self.b1)
        kernel = jnp.transpose(self.w2, (2, 3, 1, 0))  # HWIO
        h = conv3x3(h, kernel)
        h = jax.nn.relu(h + self.b2)
        out = h @ self.w3[:, :, 0, 0].T + self.b3
        return out.reshape(*lead, *out.shape[1:])


IMAGE_FIELDS: dict[str, Callable[..., eqx.Module]] = {"conv": ConvField2d}
"""Fields of images `(H, W, C)`, by name."""


class Linear(eqx.Module):
    """The downstream layer: flattened state → logits, Kaiming-normal, zero bias."""

    weight: Float[Array, "out inp"]
    bias: Float[Array, " out"]

    def __init__(self, in_features: int, out_features: int, *, key: PRNGKeyArray):
        self.weight = kaiming_normal(key, (out_features, in_features))
        self.bias = jnp.zeros(out_features)

    def __call__(self, x: Float[Array, "batch ..."]) -> Float[Array, "batch out"]:
        return _linear(self.weight, self.bias, x.reshape(x.shape[0], -1))


class ODEClassifier(AbstractODEModel):
    """`logits = head(Φ(x))`, `Φ` the time-1 flow of the field: the papers' model, with
    no upstream layer (the inputs are the initial state).

    The integrator is an argument, not a field: evaluating the same parameters with
    another solver means passing another `Integrator`.
    """

    field: eqx.Module
    head: Linear

    def initial_state(self, x):
        return x

    def vector_field(self, t, y, args):
        return self.field(t, y, args)  # pyright: ignore[reportCallIssue]

    def flow(self, x: Float[Array, "batch ..."], integ: Integrator):
        """The ODE state at `t1` and the solve's `SolveStats`."""
        return solve(self.field, x, integ)  # pyright: ignore[reportArgumentType]

    def __call__(
        self, x: Float[Array, "batch ..."], integ: Integrator
    ) -> tuple[Float[Array, "batch classes"], SolveStats]:
        z, stats = self.flow(x, integ)
        return self.head(z), stats


def check_field(field: str, channels: int) -> None:
    """**Raises:** `ValueError` unless `field` names a field of `FIELDS` and `channels`
    is an integer >= 1."""
    one_of("field", field, FIELDS)
    integer("channels", channels)


def make_classifier(
    field: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    channels: int,
    key: PRNGKeyArray,
) -> ODEClassifier:
    """Build an `ODEClassifier` with the named field (`conv` or `mlp`) for inputs of shape
    `input_shape` (one example, no batch axis).

    **Raises:** `ValueError` for an unknown field name or a field that does not fit the
    input shape.
    """
    check_field(field, channels)
    kf, kh = jax.random.split(key)
    if len(input_shape) == 1:
        vector_field = FIELDS[field](input_shape[0], channels, key=kf)
    elif len(input_shape) == 3 and field in IMAGE_FIELDS:
        vector_field = IMAGE_FIELDS[field](input_shape[-1], channels, key=kf)
    else:
        raise ValueError(
            f"field {field!r} takes flat inputs (d,)"
            + (" or images (H, W, C)" if field in IMAGE_FIELDS else "")
            + f", got shape {input_shape}"
        )
    return ODEClassifier(vector_field, Linear(math.prod(input_shape), num_classes, key=kh))
