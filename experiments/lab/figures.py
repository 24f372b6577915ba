"""Matplotlib figures, drawn from what the studies measured (never from a model).

Every figure is saved through `odeness.files.atomic_write`, like every other file.
"""

import functools
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from odeness import files


@functools.cache
def pyplot():
    """`matplotlib.pyplot` with the non-interactive Agg backend, imported when the first
    figure is drawn (a script that draws none, or fails before, never imports it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


def save_figure(fig, path: str | Path) -> None:
    """Save `fig` as a PNG, atomically, and close it (on process 0 only)."""
    try:
        save = functools.partial(fig.savefig, format="png", dpi=120, bbox_inches="tight")
        files.atomic_write(path, save, binary=True)
    finally:
        pyplot().close(fig)


class SwapCurve(NamedTuple):
    """One training configuration under one test solver: the score (mean and std over
    seeds) at each test step count or tolerance, and where the training one sits."""

    test_solver: str
    label: str
    """The training configuration, e.g. `n=8` or `tol=0.001`."""
    xs: list[float]
    mean: list[float]
    std: list[float]
    star: tuple[float, float] | None
    """`(training value, training score)`, drawn on the training solver's panel."""


def plot_swap_sweep(
    curves: Sequence[SwapCurve],
    path: str | Path,
    *,
    xlabel: str,
    base: int,
    title: str = "",
) -> None:
    """Test accuracy against the test solver's steps (or tolerance), one panel per test
    solver and one curve per training configuration (mean over seeds, ± std shaded), the
    training configuration starred: the layout of Ott et al.'s Fig. 4. The x axis is
    `xlabel`, on a log scale of `base`."""
    plt = pyplot()
    solvers = list(dict.fromkeys(c.test_solver for c in curves))
    labels = list(dict.fromkeys(c.label for c in curves))
    colours = dict(
        zip(labels, plt.get_cmap("viridis")(np.linspace(0, 0.9, len(labels))), strict=True)
    )
    fig, axes = plt.subplots(
        1, len(solvers), figsize=(4.2 * len(solvers), 3.6), sharey=True, squeeze=False
    )
    for ax, test_solver in zip(axes[0], solvers, strict=True):
        for c in (c for c in curves if c.test_solver == test_solver):
            colour = colours[c.label]
            mean, std = np.asarray(c.mean), np.asarray(c.std)
            ax.plot(c.xs, mean, "o-", color=colour, ms=3, lw=1.2, label=c.label)
            ax.fill_between(c.xs, mean - std, mean + std, color=colour, alpha=0.15)
            if c.star is not None:
                ax.plot(*c.star, "*", color=colour, ms=13, mec="k", mew=0.6)
        ax.set_xscale("log", base=base)
        ax.set(xlabel=xlabel, title=f"test solver: {test_solver}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][-1].legend(title="training", fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


_MAX_MARKS = 2000


def _by_class(labels: np.ndarray):
    """`(class, its indices, its colour)` for each class in `labels`: the colours of the
    default cycle (`C0` ... `C9`, tab10), in turn."""
    for c in np.unique(labels):
        yield c, np.flatnonzero(labels == c), f"C{int(c) % 10}"


def _xy(points: np.ndarray) -> tuple:
    """The coordinates 0 and 1 of `points` (along their last axis)."""
    return points[..., 0], points[..., 1]


def _plane(ax, title: str, **legend) -> None:
    """Name the axes `x_0`, `x_1` and title a panel of 2-D points."""
    ax.set(xlabel="$x_0$", ylabel="$x_1$")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, **legend)


def draw_failing(ax, x: np.ndarray, labels: np.ndarray, failing: np.ndarray, *, title=""):
    """2-D inputs coloured by class, the failing ones (`failing`: their indices) ringed
    in red."""
    for c, idx, colour in _by_class(labels):
        ax.plot(*_xy(x[idx]), ".", color=colour, ms=3, label=f"class {c}")
    if len(failing):
        label = f"prediction changes ({len(failing)})"
        ax.plot(*_xy(x[failing]), "o", mfc="none", c="tab:red", ms=6, mew=0.8, label=label)
    ax.set_aspect("equal", adjustable="datalim")
    _plane(ax, title, loc="upper right")


def draw_trajectories(
    ax, paths: np.ndarray, labels: np.ndarray, crossing_points=None, *, title: str = ""
) -> None:
    """Trajectories `(points, batch, d)` in coordinates 0 and 1, coloured by class;
    starts as dots, ends as squares, crossings as red crosses (at most `_MAX_MARKS`,
    evenly thinned)."""
    for c, idx, colour in _by_class(labels):
        ax.plot(*_xy(paths[:, idx]), "-", color=colour, lw=0.5, alpha=0.6)
        ax.plot(*_xy(paths[0, idx]), ".", color=colour, ms=2)
        ax.plot(*_xy(paths[-1, idx]), "s", color=colour, ms=2, label=f"class {c}")
    if crossing_points is not None and len(crossing_points):
        every = -(-len(crossing_points) // _MAX_MARKS)
        label = "crossings" if every == 1 else f"crossings (1 in {every} marked)"
        marks = crossing_points[::every]
        ax.plot(*_xy(marks), "x", c="tab:red", ms=2.5, mew=0.6, alpha=0.8, label=label)
    ax.set_aspect("equal", adjustable="datalim")
    _plane(ax, title, loc="upper right", markerscale=2)


def draw_accuracy_vs_steps(
    ax, curves: dict[str, tuple], *, xlabel="Euler test steps", title: str = ""
) -> None:
    """Accuracy against test steps, one curve per label; `curves[label] = (steps,
    accuracies, train_steps, train_accuracy)`, the training configuration starred."""
    plt = pyplot()
    for i, (label, (steps, accs, n_train, acc_train)) in enumerate(curves.items()):
        colour = plt.get_cmap("tab10")(i)
        ax.plot(steps, accs, "o-", color=colour, ms=3, lw=1.2, label=label)
        ax.plot([n_train], [acc_train], "*", color=colour, ms=14, mec="k", mew=0.6)
    ax.set_xscale("log", base=2)
    ax.set(xlabel=xlabel, ylabel="test accuracy", ylim=(0.0, 1.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)


def draw_fan(ax, fan, index: int = 0, *, title: str = "", max_curves: int = 16) -> None:
    """Lady Windermere's fan of input `index`: the numerical solution (black) and the
    exact flow started from its iterates (coloured; at most `max_curves`, evenly
    thinned, the first always drawn), in coordinates 0 and 1."""
    plt = pyplot()
    every = -(-fan.fan.shape[0] // max_curves)
    curves = fan.fan[::every, :, index]
    curves = curves.reshape(*curves.shape[:2], -1)  # images: flattened coordinates
    colours = plt.get_cmap("plasma")(np.linspace(0, 0.85, len(curves)))
    for k, (curve, colour) in enumerate(zip(curves, colours, strict=True)):
        label = "exact flow" if k == 0 else None
        ax.plot(*_xy(curve), "-", color=colour, lw=1, label=label)
        ax.plot(*_xy(curve[-1]), "o", color=colour, ms=4)
    it = fan.iterates[:, index].reshape(fan.iterates.shape[0], -1)
    ax.plot(*_xy(it), "k.-", lw=1.2, ms=6, label="numerical solution")
    _plane(ax, title)


def plot_adaptation(
    metrics: list[dict], path: str | Path, *, value: str = "dt", title: str = ""
) -> None:
    """The paper's Fig. 5: step size (or tolerance) and accuracies over training.

    Top: `value` after each check (`dt` drawn as steps per unit time `1/dt`, or `tol`),
    per seed, log scale. Bottom: at each check, the accuracy on the batch with the
    training solver (solid) and with the test solver (dotted): the two the rule compares.
    """
    plt = pyplot()
    by_seed: dict = defaultdict(list)
    for r in metrics:
        if r.get("check_step") is not None:
            by_seed[r["seed"]].append(r)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for k, (seed, rows) in enumerate(sorted(by_seed.items())):
        color = f"C{k}"  # the default colour cycle's, in turn
        x = [r["check_step"] for r in rows]
        v = [1 / r[value] if value == "dt" else r[value] for r in rows]
        top.plot(x, v, color=color, drawstyle="steps-post", label=f"seed {seed}")
        for key, solver, style in (
            ("check_train_accuracy", "training", {"lw": 1}),
            ("test_accuracy", "test", {"ls": ":"}),
        ):
            label = f"seed {seed}: {solver} solver" if k < 3 else None
            bottom.plot(x, [r[key] for r in rows], color=color, label=label, **style)
    top.set_yscale("log")
    top.set_ylabel("steps per unit time (1/h)" if value == "dt" else "tolerance")
    top.grid(alpha=0.3, which="both")
    top.legend(fontsize=7, ncol=3)
    bottom.set(xlabel="iteration", ylabel="accuracy on the batch")
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize=7, ncol=2)
    if title:
        top.set_title(title, fontsize=10)
    save_figure(fig, path)


def plot_lines(
    curves: dict[str, tuple[list, list]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = True,
    logy: bool = True,
) -> None:
    """One line with markers per `label → (xs, ys)`, log-log by default."""
    fig, ax = pyplot().subplots(figsize=(6.5, 4.5))
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, marker="o", ms=3, label=label)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    save_figure(fig, path)
