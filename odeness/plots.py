"""Matplotlib figures, drawn from the rows that experiments write to disk."""

import os
import tempfile
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig, path: str | Path) -> None:
    """Save `fig` as a PNG, atomically, and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        plt.close(fig)


def plot_swap_sweep(rows: list[dict], path: str | Path, *, title: str = "") -> None:
    """Test accuracy against the test solver's steps (or tolerance), one panel per test
    solver and one curve per training configuration (mean over seeds, ± std shaded), the
    training configuration starred: the layout of Ott et al.'s Fig. 4.
    """
    fixed = "train_steps" in rows[0]
    train_key, test_key = (
        ("train_steps", "test_steps") if fixed else ("train_tol", "test_rtol")
    )
    solvers = list(dict.fromkeys(r["test_solver"] for r in rows if not r["reference"]))
    trains = sorted({r[train_key] for r in rows}, reverse=not fixed)
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(trains)))
    fig, axes = plt.subplots(
        1, len(solvers), figsize=(4.2 * len(solvers), 3.6), sharey=True, squeeze=False
    )
    for ax, test_solver in zip(axes[0], solvers, strict=True):
        for colour, train in zip(colours, trains, strict=True):
            acc = defaultdict(list)
            for r in rows:
                if (
                    r[train_key] == train
                    and r["test_solver"] == test_solver
                    and not r["reference"]
                ):
                    acc[r[test_key]].append(r["accuracy"])
            xs = sorted(acc)
            mean = np.array([np.mean(acc[x]) for x in xs])
            std = np.array([np.std(acc[x]) for x in xs])
            label = f"n={train}" if fixed else f"tol={train:g}"
            ax.plot(xs, mean, "o-", color=colour, ms=3, lw=1.2, label=label)
            ax.fill_between(xs, mean - std, mean + std, color=colour, alpha=0.15)
            train_rows = [r for r in rows if r[train_key] == train]
            if test_solver == train_rows[0]["train_solver"]:
                train_acc = np.mean(
                    list({r["seed"]: r["train_accuracy"] for r in train_rows}.values())
                )
                ax.plot([train], [train_acc], "*", color=colour, ms=13, mec="k", mew=0.6)
        ax.set_xscale("log", base=2 if fixed else 10)
        ax.set_xlabel("test steps" if fixed else "test tolerance")
        ax.set_title(f"test solver: {test_solver}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][-1].legend(title="training", fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
