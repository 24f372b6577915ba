"""Command-line options shared by the training experiments (sweep.py, adapt.py)."""

import argparse

from odeness import parallel
from odeness.train import paper_channels

DATASETS = (
    "sphere2, sphere3, sphere10, sphere900, three_minima, mnist, fashion_mnist or cifar10"
)


def add_training_args(p: argparse.ArgumentParser) -> None:
    """Add the dataset, seed and optimisation options every training script takes."""
    p.add_argument("--dataset", default="sphere2", help=DATASETS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--iterations", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    p.add_argument("--field", default="conv", help="vector field: conv or mlp")
    p.add_argument(
        "--channels",
        type=int,
        default=None,
        help="hidden channels C of the field (default: the paper's, 128 for cifar10, "
        "else 32)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with the official archives of mnist, fashion_mnist or cifar10 "
        "(default: $ODENESS_MNIST_DIR, ...; see the README)",
    )


def training_fields(args: argparse.Namespace) -> dict:
    """The `TrainConfig` fields set by `add_training_args`'s options."""
    return dict(
        dataset=args.dataset,
        seeds=tuple(args.seeds),
        iterations=args.iterations,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        field=args.field,
        channels=args.channels or paper_channels(args.dataset),
        data_dir=args.data_dir,
    )


def add_parallel_args(p: argparse.ArgumentParser) -> None:
    """--parallel and the multi-process options (see `odeness.parallel`)."""
    p.add_argument(
        "--parallel",
        default="seeds",
        choices=parallel.LAYOUTS,
        help="use the devices for the seeds (default), for data parallelism within "
        "each run (every batch split), or use one device",
    )
    p.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 "
                   "(multi-process runs; default $ODENESS_COORDINATOR)")  # fmt: skip
    p.add_argument("--num-processes", type=int, default=None,
                   help="processes in the run (default $ODENESS_NUM_PROCESSES)"
                   )  # fmt: skip
    p.add_argument("--process-id", type=int, default=None,
                   help="this process's rank (default $ODENESS_PROCESS_ID)")  # fmt: skip


def start_processes(args: argparse.Namespace) -> None:
    """Join a multi-process run if the options or the environment ask for one."""
    parallel.initialize(args.coordinator, args.num_processes, args.process_id)
