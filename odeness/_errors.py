"""Failures of a run that are not bad input: training diverged, or a solve failed.

Bad input raises `ValueError` before anything runs. These are raised while a run is under
way, with a one-line message that says where it failed and what to change.
"""


class RunFailed(RuntimeError):
    """A training run or an evaluation could not produce a result (base class)."""


class Diverged(RunFailed):
    """A loss or a parameter became non-finite during training.

    `seed` and `iteration` (1-based) say where; nothing of that iteration was saved.
    """

    def __init__(self, message: str, *, seed: int, iteration: int):
        super().__init__(message)
        self.seed = seed
        self.iteration = iteration


class SolveFailed(RunFailed):
    """A solve did not reach its end time (diffrax's `RESULTS`, e.g. `max_steps` hit)."""


class FolderInUse(OSError):
    """Another process (or another thread of this one) is writing the folder: it holds
    the folder's lock (`odeness.files.folder_lock`). Nothing was written."""
