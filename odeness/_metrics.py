"""Metrics: what a solver swap compares, and how a degradation is judged.

A metric scores a model's outputs against targets, batch by batch: `batch_total` is the
sum of the examples' scores, so that a data set evaluated in batches scores exactly what
it would in one. Its direction (`higher_is_better`) turns two scores into a
*degradation* (an accuracy drop; an increase in squared error), and its `scale` is the
unit thresholds are measured in:

- accuracy: 1 (a model is an ODE if its accuracy drops by at most `threshold`, 0.1 in
  the paper);
- squared error: the targets' mean square (with 0.1: the squared error may grow by a
  tenth of the targets' power, whatever units the data are in; a degradation measured
  against the training error instead would call almost every good fit not an ODE, since
  any solver difference is large next to a small error);
- cross-entropy: 1 (nats); a `Metric` of your own: 1 unless you give a `scale`.

```python
odeness.evaluate_solver_swap(model, integ, x, y, metric="mse")
odeness.Metric(my_fn, name="mae", higher_is_better=False)  # my_fn(outputs, targets)
```
"""

import abc
import math
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Shaped


class AbstractMetric(eqx.Module):
    """A score of outputs against targets, with its direction and threshold semantics.

    Subclass it for a metric of your own (or wrap a function in `Metric`).
    """

    name: eqx.AbstractVar[str]
    """The name results are reported under."""
    higher_is_better: eqx.AbstractVar[bool]
    needs_targets: ClassVar[bool] = True
    """Whether it scores outputs against targets; without (a likelihood), `y=None`."""

    @abc.abstractmethod
    def batch_total(
        self, outputs: Shaped[Array, "batch ..."], targets: Shaped[Array, "batch ..."]
    ) -> Float[Array, ""]:
        """The sum over the batch of each example's score."""

    @abc.abstractmethod
    def scale(self, targets: Shaped[Array, "N ..."]) -> Float[Array, ""]:
        """The unit of thresholds for these targets (see the module), > 0."""

    @abc.abstractmethod
    def check_shapes(self, outputs: tuple[int, ...], targets: tuple[int, ...]) -> None:
        """**Raises:** `ValueError` if outputs of this shape cannot be scored against
        targets of that shape."""

    def per_example(
        self, outputs: Shaped[Array, "batch ..."], targets: Shaped[Array, "batch ..."]
    ) -> Float[Array, " batch"]:
        """Each example's score (its share of `batch_total`): by default
        `batch_total` of each example alone."""
        return jax.vmap(lambda o, t: self.batch_total(o[None], t[None]))(outputs, targets)

    def mean(self, outputs, targets) -> Float[Array, ""]:
        """The batch's mean score."""
        return self.batch_total(outputs, targets) / outputs.shape[0]

    def degradation(self, train: float, test: float):
        """How much worse `test` is than `train`, in the metric's units (negative if
        better)."""
        return train - test if self.higher_is_better else test - train

    def check_threshold(self, threshold: float) -> None:
        """**Raises:** `ValueError` unless `threshold` is a finite number >= 0 (in
        `[0, 1]` for accuracy, whose drops cannot exceed 1)."""
        number = isinstance(threshold, int | float) and not isinstance(threshold, bool)
        if isinstance(self, Accuracy):
            if not (number and 0 <= threshold <= 1):
                raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}")
        elif not (number and math.isfinite(threshold) and threshold >= 0):
            raise ValueError(
                f"threshold must be a finite number >= 0 for metric {self.name!r}, got "
                f"{threshold!r}"
            )


def _same_batch(name: str, outputs: tuple[int, ...], targets: tuple[int, ...]) -> None:
    if not outputs or not targets or outputs[0] != targets[0]:
        raise ValueError(
            f"metric {name!r}: outputs of shape {outputs} and targets of shape {targets} "
            "do not hold the same number of examples"
        )


def _logits_and_labels(name: str, outputs, targets) -> None:
    _same_batch(name, outputs, targets)
    if len(outputs) != 2 or len(targets) != 1:
        raise ValueError(
            f"metric {name!r} needs logits (batch, classes) and class labels (batch,), "
            f"got outputs {outputs} and targets {targets}"
        )


class Accuracy(AbstractMetric):
    """The fraction of examples whose largest logit is the target class (the papers')."""

    name: str = eqx.field(static=True, default="accuracy")
    higher_is_better: bool = eqx.field(static=True, default=True)

    def batch_total(self, outputs, targets):
        return jnp.sum(jnp.argmax(outputs, axis=-1) == targets)

    def scale(self, targets):
        return jnp.asarray(1.0)

    def check_shapes(self, outputs, targets):
        _logits_and_labels(self.name, outputs, targets)


class CrossEntropy(AbstractMetric):
    """Mean negative log-likelihood of the target class under softmax(logits)."""

    name: str = eqx.field(static=True, default="nll")
    higher_is_better: bool = eqx.field(static=True, default=False)

    def batch_total(self, outputs, targets):
        return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(outputs, targets))

    def scale(self, targets):
        return jnp.asarray(1.0)

    def check_shapes(self, outputs, targets):
        _logits_and_labels(self.name, outputs, targets)


class MeanSquaredError(AbstractMetric):
    """Per example, the mean of `(output − target)²` over its entries; averaged over the
    examples."""

    name: str = eqx.field(static=True, default="mse")
    higher_is_better: bool = eqx.field(static=True, default=False)

    def batch_total(self, outputs, targets):
        sq = (outputs - targets) ** 2
        return jnp.sum(jnp.mean(sq.reshape(sq.shape[0], -1), axis=1))

    def scale(self, targets):
        """The targets' mean square (1 for all-zero targets)."""
        power = jnp.mean(jnp.asarray(targets, dtype=float) ** 2)
        return jnp.where(power > 0, power, 1.0)

    def check_shapes(self, outputs, targets):
        if outputs != targets:
            raise ValueError(
                f"metric 'mse' needs outputs and targets of the same shape, got outputs "
                f"{outputs} and targets {targets}"
            )


class LogLikelihood(AbstractMetric):
    """The mean log-likelihood a density model reports (`odeness.CNF`), per example in
    nats (higher is better), or, with `bits_per_dim=True`, the negative log-likelihood
    in bits per dimension (lower is better; the images' unit). The outputs are the
    log-likelihoods themselves: no targets are needed (`y=None`), and targets given
    must hold one entry per example. Thresholds are in nats (bits per dimension).
    """

    name: str = eqx.field(static=True)
    higher_is_better: bool = eqx.field(static=True)
    bits_per_dim: bool = eqx.field(static=True)
    dims: int | None = eqx.field(static=True)
    """The dimensions of one example, for bits per dimension."""
    needs_targets: ClassVar[bool] = False

    def __init__(self, bits_per_dim: bool = False, dims: int | None = None):
        if bits_per_dim and (
            isinstance(dims, bool) or not isinstance(dims, int) or dims < 1
        ):
            raise ValueError(
                f"bits per dimension need the dimensions of one example (dims=), got "
                f"{dims!r}"
            )
        self.bits_per_dim, self.dims = bits_per_dim, dims
        self.name = "bpd" if bits_per_dim else "loglik"
        self.higher_is_better = not bits_per_dim

    def batch_total(self, outputs, targets):
        del targets
        if self.bits_per_dim:
            assert self.dims is not None
            return jnp.sum(-outputs / (self.dims * math.log(2.0)))
        return jnp.sum(outputs)

    def per_example(self, outputs, targets):
        del targets
        if self.bits_per_dim:
            assert self.dims is not None
            return -outputs / (self.dims * math.log(2.0))
        return outputs

    def scale(self, targets):
        return jnp.asarray(1.0)

    def check_shapes(self, outputs, targets):
        if len(outputs) != 1:
            raise ValueError(
                f"metric {self.name!r} needs one log-likelihood per example (batch,), got "
                f"outputs of shape {outputs}"
            )
        _same_batch(self.name, outputs, targets)


class Metric(AbstractMetric):
    """A metric from a function `fn(outputs, targets) -> scalar`, the batch's mean score
    (a mean over its examples, so that batches combine exactly).

    **Arguments:** `fn`; `name`; `higher_is_better` (required: True for a score such as
    accuracy, False for an error); `scale`: the unit of thresholds, a number > 0 or a
    function of the targets (default 1).

    **Raises:** `ValueError` without a direction, with a function that is not callable,
    or with a scale that is not a number > 0 or a function.
    """

    fn: Callable = eqx.field(static=True)
    name: str = eqx.field(static=True)
    higher_is_better: bool = eqx.field(static=True)
    unit: float | Callable = eqx.field(static=True)

    def __init__(
        self,
        fn: Callable,
        *,
        name: str = "custom",
        higher_is_better: bool | None = None,
        scale: float | Callable = 1.0,
    ):
        if not callable(fn):
            raise ValueError(f"metric function must be callable, got {fn!r}")
        if not isinstance(higher_is_better, bool):
            raise ValueError(
                f"metric {name!r} needs a direction: higher_is_better=True (a score) or "
                f"False (an error), got {higher_is_better!r}"
            )
        if not callable(scale) and not (
            isinstance(scale, int | float) and math.isfinite(scale) and scale > 0
        ):
            raise ValueError(
                f"metric {name!r}: scale must be a number > 0 or a function of the "
                f"targets, got {scale!r}"
            )
        self.fn = fn
        self.name = name
        self.higher_is_better = higher_is_better
        self.unit = scale

    def batch_total(self, outputs, targets):
        return self.fn(outputs, targets) * outputs.shape[0]

    def scale(self, targets):
        return jnp.asarray(self.unit(targets) if callable(self.unit) else self.unit)

    def check_shapes(self, outputs, targets):
        _same_batch(self.name, outputs, targets)


METRICS: dict[str, Callable[[], AbstractMetric]] = {
    "accuracy": Accuracy,
    "mse": MeanSquaredError,
    "nll": CrossEntropy,
    "loglik": LogLikelihood,
}
"""The named metrics."""


def as_metric(spec: "str | AbstractMetric") -> AbstractMetric:
    """The metric named `spec` (`accuracy`, `mse`, `nll`, `loglik`), or `spec` itself if
    it is one.

    **Raises:** `ValueError` for an unknown name, or a bare function (it has no
    direction: wrap it in `Metric`).
    """
    if isinstance(spec, AbstractMetric):
        return spec
    if isinstance(spec, str):
        if spec not in METRICS:
            raise ValueError(
                f"unknown metric {spec!r}; expected one of {', '.join(METRICS)} or an "
                "odeness.Metric"
            )
        return METRICS[spec]()
    if callable(spec):
        raise ValueError(
            f"metric {spec!r} has no direction; wrap it as odeness.Metric(fn, "
            "higher_is_better=...)"
        )
    raise ValueError(
        f"metric must be a name ({', '.join(METRICS)}) or an odeness.Metric, got {spec!r}"
    )


def targets_of(metric: AbstractMetric, x, y):
    """The targets the metric scores against: `y`, or, for a metric that needs none and
    `y=None`, a placeholder of one zero per example.

    **Raises:** `ValueError` for `y=None` with a metric that needs targets."""
    if y is not None:
        return y
    if metric.needs_targets:
        raise ValueError(
            f"metric {metric.name!r} scores outputs against targets: give y (y=None is "
            "for a metric without targets, such as 'loglik')"
        )
    return np.zeros(len(x), np.float32)
