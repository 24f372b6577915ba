"""Matplotlib figures, drawn from what the studies measured (never from a model).

Every figure is saved through `odeness.files.atomic_write`, like every other file.
"""

import functools
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
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
    plt = pyplot()
    try:
        files.atomic_write(
            path,
            lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"),
            binary=True,
        )
    finally:
        plt.close(fig)


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
        for c in curves:
            if c.test_solver != test_solver:
                continue
            colour = colours[c.label]
            mean, std = np.asarray(c.mean), np.asarray(c.std)
            ax.plot(c.xs, mean, "o-", color=colour, ms=3, lw=1.2, label=c.label)
            ax.fill_between(c.xs, mean - std, mean + std, color=colour, alpha=0.15)
            if c.star is not None:
                ax.plot(*c.star, "*", color=colour, ms=13, mec="k", mew=0.6)
        ax.set_xscale("log", base=base)
        ax.set_xlabel(xlabel)
        ax.set_title(f"test solver: {test_solver}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][-1].legend(title="training", fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


CLASS_COLOURS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:gray",
    "tab:olive",
    "tab:cyan",
)


_MAX_MARKS = 2000


def draw_failing(ax, x: np.ndarray, labels: np.ndarray, failing: np.ndarray, *, title=""):
    """2-D inputs coloured by class, the failing ones (`failing`: their indices) ringed
    in red."""
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        colour = CLASS_COLOURS[int(c) % len(CLASS_COLOURS)]
        ax.plot(x[idx, 0], x[idx, 1], ".", color=colour, ms=3, label=f"class {c}")
    if len(failing):
        ax.plot(
            x[failing, 0],
            x[failing, 1],
            "o",
            mfc="none",
            color="tab:red",
            ms=6,
            mew=0.8,
            label=f"prediction changes ({len(failing)})",
        )
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("$x_0$")
    ax.set_ylabel("$x_1$")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")


def draw_trajectories(
    ax,
    paths: np.ndarray,
    labels: np.ndarray,
    crossing_points=None,
    *,
    dims=(0, 1),
    title: str = "",
) -> None:
    """2-D trajectories `(points, batch, d)` coloured by class; starts as dots, ends as
    squares, crossings as red crosses (at most `_MAX_MARKS`, evenly thinned)."""
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        colour = CLASS_COLOURS[int(c) % len(CLASS_COLOURS)]
        ax.plot(
            paths[:, idx, dims[0]],
            paths[:, idx, dims[1]],
            "-",
            color=colour,
            lw=0.5,
            alpha=0.6,
        )
        ax.plot(paths[0, idx, dims[0]], paths[0, idx, dims[1]], ".", color=colour, ms=2)
        ax.plot(
            paths[-1, idx, dims[0]],
            paths[-1, idx, dims[1]],
            "s",
            color=colour,
            ms=2,
            label=f"class {c}",
        )
    if crossing_points is not None and len(crossing_points):
        every = -(-len(crossing_points) // _MAX_MARKS)
        ax.plot(
            crossing_points[::every, 0],
            crossing_points[::every, 1],
            "x",
            color="tab:red",
            ms=2.5,
            mew=0.6,
            alpha=0.8,
            label="crossings" if every == 1 else f"crossings (1 in {every} marked)",
        )
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"$x_{dims[0]}$")
    ax.set_ylabel(f"$x_{dims[1]}$")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right", markerscale=2)


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
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0.0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)


def draw_fan(
    ax, fan, index: int = 0, *, dims=(0, 1), title: str = "", max_curves: int = 16
) -> None:
    """Lady Windermere's fan of input `index`: the numerical solution (black) and the
    exact flow started from its iterates (coloured; at most `max_curves`, evenly
    thinned, the first always drawn), in two coordinates."""
    plt = pyplot()
    every = -(-fan.fan.shape[0] // max_curves)
    curves = fan.fan[::every, :, index]
    curves = curves.reshape(*curves.shape[:2], -1)  # images: flattened coordinates
    colours = plt.get_cmap("plasma")(np.linspace(0, 0.85, len(curves)))
    for k, (curve, colour) in enumerate(zip(curves, colours, strict=True)):
        ax.plot(
            curve[:, dims[0]],
            curve[:, dims[1]],
            "-",
            color=colour,
            lw=1,
            label="exact flow" if k == 0 else None,
        )
        ax.plot(curve[-1, dims[0]], curve[-1, dims[1]], "o", color=colour, ms=4)
    it = fan.iterates[:, index].reshape(fan.iterates.shape[0], -1)
    ax.plot(it[:, dims[0]], it[:, dims[1]], "k.-", lw=1.2, ms=6, label="numerical solution")
    ax.set_xlabel(f"$x_{dims[0]}$")
    ax.set_ylabel(f"$x_{dims[1]}$")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


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
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (seed, rows) in enumerate(sorted(by_seed.items())):
        color = colors[k % len(colors)]
        x = [r["check_step"] for r in rows]
        v = [r[value] for r in rows]
        top.plot(
            x,
            [1 / a for a in v] if value == "dt" else v,
            color=color,
            drawstyle="steps-post",
            label=f"seed {seed}",
        )
        bottom.plot(
            x,
            [r["check_train_accuracy"] for r in rows],
            color=color,
            lw=1,
            label=f"seed {seed}: training solver" if k < 3 else None,
        )
        bottom.plot(
            x,
            [r["test_accuracy"] for r in rows],
            color=color,
            ls=":",
            label=f"seed {seed}: test solver" if k < 3 else None,
        )
    top.set_yscale("log")
    top.set_ylabel("steps per unit time (1/h)" if value == "dt" else "tolerance")
    top.grid(alpha=0.3, which="both")
    top.legend(fontsize=7, ncol=3)
    bottom.set_xlabel("iteration")
    bottom.set_ylabel("accuracy on the batch")
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
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, marker="o", ms=3, label=label)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    save_figure(fig, path)


def plot_xor_fan(panels, swept, exact, labels, path: str | Path) -> None:
    """Ott et al.'s Fig. 3: the Euler trajectories of the four XOR points and their end
    points (by class, each class's segment drawn) at two step sizes, the exact end
    points, and whether the end points are linearly separable along a sweep of h."""
    plt = pyplot()
    colours = np.array(["tab:blue", "tab:orange"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, p in zip(axes[:2], panels, strict=True):
        for i in range(p.paths.shape[1]):
            ax.plot(p.paths[:, i, 0], p.paths[:, i, 1], color=colours[labels[i]], lw=0.6)
        end = p.paths[-1]
        for cls in (0, 1):
            pts = end[labels == cls]
            ax.plot(
                pts[:, 0],
                pts[:, 1],
                "o-",
                color=colours[cls],
                ms=7,
                lw=2,
                mec="k",
                label=f"class {cls} (end points)",
            )
        ax.plot(exact[:, 0], exact[:, 1], "kx", ms=8, label="exact end points")
        verdict = "separable" if p.separable else "not separable"
        ax.set_title(
            f"Euler, h = {p.h:.3g}: end points {verdict}\n(the view is the end "
            "points'; the trajectories swing far out)"
        )
        both = np.concatenate([end, exact])
        lo, hi = both.min(0), both.max(0)
        pad = 0.25 * (hi - lo).max()
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(lo[1] - pad, hi[1] + pad)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    hs = [h for h, _ in swept]
    axes[2].step(hs, [int(s) for _, s in swept], where="mid")
    axes[2].set_xscale("log")
    axes[2].set_xticks([3e-3, 1e-3, 3e-4], ["3e-3", "1e-3", "3e-4"])
    axes[2].minorticks_off()
    axes[2].invert_xaxis()
    axes[2].set_yticks([0, 1], ["no", "yes"])
    axes[2].set_xlabel("Euler step h (finer to the right)")
    axes[2].set_title("end points linearly separable?")
    axes[2].grid(alpha=0.3)
    fig.suptitle(
        "XOR points under Euler (views around the end points; the trajectories "
        "swing far out between)",
        fontsize=10,
    )
    save_figure(fig, path)


def plot_decision_regions(panels, head, path: str | Path) -> None:
    """Ott et al.'s Fig. 2: the ODE block's outputs of the test set, coloured by true
    label, over the decision regions of the linear `head`, one panel per test step."""
    plt = pyplot()
    colours = np.array(["tab:blue", "tab:orange"])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8))
    for ax, p in zip(np.atleast_1d(axes), panels, strict=True):
        lo, hi = p.outputs.min(0), p.outputs.max(0)
        pad = 0.1 * (hi - lo).max()
        lo, hi = lo - pad, hi + pad
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 400), np.linspace(lo[1], hi[1], 400))
        grid = np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32)
        regions = np.asarray(np.argmax(head(jnp.asarray(grid)), axis=-1)).reshape(gx.shape)
        ax.contourf(gx, gy, regions, levels=[-0.5, 0.5, 1.5], colors=colours, alpha=0.18)
        for cls in (0, 1):
            pts = p.outputs[p.labels == cls]
            ax.scatter(pts[:, 0], pts[:, 1], s=5, color=colours[cls], label=f"class {cls}")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title(
            f"Euler, h = 1/{p.steps}: test accuracy {p.accuracy:.3f}\n"
            f"class 0 in class 1's region {100 * p.misplaced(0):.0f}%, "
            f"class 1 in class 0's {100 * p.misplaced(1):.0f}%",
            fontsize=9,
        )
        ax.set_xlabel("$z_0(1)$")
        ax.set_ylabel("$z_1(1)$")
    np.atleast_1d(axes)[0].legend(fontsize=8, loc="best")
    fig.suptitle(
        "Trained with Euler at h = 1/2: ODE outputs over the classifier's decision regions",
        fontsize=10,
    )
    save_figure(fig, path)
