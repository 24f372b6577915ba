"""Which examples each training step sees: a pure function of the seed's key and step."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray


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
