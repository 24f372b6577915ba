"""Training across devices and hosts with JAX's own machinery (`jax.sharding`,
`jax.distributed`): no scheduler of our own.

Two layouts of one training program (`train(..., parallel=...)`):

- `"seeds"` (the default): the seed axis of the training state is split across the
  devices of a one-axis mesh `("seeds",)`. Seeds are independent, so every seed computes
  exactly what it would on one device; on one device nothing changes.
- `"data"`: data parallelism for each run. The state is replicated, every batch is split
  along its batch axis over a mesh `("data",)`, and the compiler averages the gradients
  with its collectives.

Several hosts: call `initialize()` first (the experiment scripts do), then every process
runs the same program on the global mesh. Results are gathered to every host after each
chunk of iterations, and only process 0 writes files (`odeness.io`).
"""

import os
from collections.abc import Sequence
from typing import Literal, NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree

Layout = Literal["seeds", "data", "none"]
"""How a training program uses several devices (`train(..., parallel=...)`): `"seeds"`
splits the seed axis of the training state over the devices (the default), `"data"`
splits every batch along its batch axis (data parallelism), `"none"` uses one device."""
LAYOUTS: tuple[Layout, ...] = get_args(Layout)

ENV = {
    "coordinator_address": "ODENESS_COORDINATOR",
    "num_processes": "ODENESS_NUM_PROCESSES",
    "process_id": "ODENESS_PROCESS_ID",
}
"""Environment variables read by `initialize` when an argument is not given."""


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Join a multi-process JAX run (`jax.distributed.initialize`) if one is asked for.

    Arguments left as None are read from `$ODENESS_COORDINATOR`,
    `$ODENESS_NUM_PROCESSES`, `$ODENESS_PROCESS_ID`. With none of them set, a SLURM job
    with several tasks (`$SLURM_NTASKS` > 1) lets JAX read everything from SLURM's
    variables; otherwise nothing happens (one process).

    **Returns:** whether `jax.distributed` was initialised.

    **Raises:** `ValueError` if only some of the three are given or one is malformed.
    """
    given = {
        "coordinator_address": coordinator_address,
        "num_processes": num_processes,
        "process_id": process_id,
    }
    for name, var in ENV.items():
        if given[name] is None and os.environ.get(var):
            given[name] = os.environ[var]
    if all(v is None for v in given.values()):
        if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
            jax.distributed.initialize()  # JAX's SLURM cluster detection
            return True
        return False
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise ValueError(
            f"a multi-process run needs the coordinator address, process count and "
            f"process id; missing: {', '.join(missing)}"
        )
    try:
        n, pid = int(given["num_processes"]), int(given["process_id"])  # pyright: ignore[reportArgumentType]
    except ValueError:
        raise ValueError(
            f"process count and id must be integers, got {given['num_processes']!r}, "
            f"{given['process_id']!r}"
        ) from None
    if n < 1 or not 0 <= pid < n:
        raise ValueError(f"need 0 <= process id < process count, got {pid} and {n}")
    # Cross-process collectives of the CPU backend go through gloo (no effect on GPUs).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(str(given["coordinator_address"]), n, pid)
    return True


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


class Placement(NamedTuple):
    """Where a training program's arrays live: the seed-stacked state, the data set,
    and (data parallelism) the constraint put on every batch."""

    layout: Layout
    mesh: Mesh | None
    state: NamedSharding | None
    data: NamedSharding | None
    batch: NamedSharding | None

    @property
    def num_devices(self) -> int:
        return 1 if self.mesh is None else self.mesh.size

    def put_state(self, tree: PyTree) -> PyTree:
        """Lay out arrays whose leading axis is the seed axis (`state`)."""
        return _put(tree, self.state)

    def put_data(self, tree: PyTree) -> PyTree:
        """Replicate the data set over the mesh."""
        return _put(tree, self.data)


def _put(tree: PyTree, sharding: NamedSharding | None) -> PyTree:
    if sharding is None:
        return jax.tree.map(jnp.asarray, tree)

    def put(x):
        if _is_key(x):  # typed PRNG keys travel as their raw key data
            return jax.random.wrap_key_data(put(jax.random.key_data(x)))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(put, tree)


def placement(
    layout: Layout,
    num_seeds: int,
    batch_size: int,
    devices: Sequence | None = None,
) -> Placement:
    """The placement of a training program of `num_seeds` seeds (see the module
    docstring); `devices` defaults to all devices of all processes.

    `"seeds"` uses the largest number of devices that divides `num_seeds` (5 seeds on 4
    devices run on 1); `"data"` needs `batch_size` divisible by the device count.

    **Raises:** `ValueError` for an unknown layout or a batch that does not split.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    devices = list(jax.devices() if devices is None else devices)
    if layout == "none" or len(devices) == 1:
        return Placement(layout, None, None, None, None)
    if layout == "seeds":
        n = _largest_divisor(num_seeds, len(devices))
        if n == 1:
            return Placement(layout, None, None, None, None)
        mesh = Mesh(np.array(devices[:n]), ("seeds",))
        return Placement(
            layout,
            mesh,
            NamedSharding(mesh, PartitionSpec("seeds")),
            NamedSharding(mesh, PartitionSpec()),
            None,
        )
    if batch_size % len(devices):
        raise ValueError(
            f"data parallelism over {len(devices)} devices needs a batch size divisible "
            f"by {len(devices)}, got {batch_size}"
        )
    mesh = Mesh(np.array(devices), ("data",))
    replicated = NamedSharding(mesh, PartitionSpec())
    return Placement(
        layout, mesh, replicated, replicated, NamedSharding(mesh, PartitionSpec("data"))
    )


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def to_host(tree: PyTree) -> PyTree:
    """Every array of `tree` as a NumPy array on this host, gathered from all processes
    where it is spread over several (`multihost_utils.process_allgather`)."""

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(get, tree)
