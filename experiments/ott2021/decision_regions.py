"""Figure 2 of Ott et al.: the classifier reads the solver's error (their Sec. 2.1).

The spheres 2-D model trained with Euler at h = 1/2 (Figure 1's): the outputs of its ODE
block on the test set, coloured by true label, over the decision regions of its linear
classifier, with the training step h = 1/2 and with h = 1/4. At the training step the
classes sit in their regions; at h = 1/4 many points of one class land in the other's:
the classifier has adapted to the coarse solver's global error.
"""

import dataclasses
from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

import odeness
from experiments.lab.figures import pyplot, save_figure
from experiments.lab.markdown import markdown_table, write_results
from experiments.lab.options import AbstractOptions, option
from experiments.ott2021.crossings_figure import (
    euler_runs,
    page,
    train_config as train_config,
)


class Panel(NamedTuple):
    """One test step: where the ODE block puts the test inputs and what the head says."""

    steps: int
    outputs: np.ndarray
    """`(N, 2)`: the ODE block's outputs `z(1)`."""
    labels: np.ndarray
    predictions: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels))

    def misplaced(self, cls: int) -> float:
        """The fraction of class `cls` that lands in another class's region."""
        return float(np.mean(self.predictions[self.labels == cls] != cls))


def panel(model: odeness.ODEClassifier, steps: int, x: np.ndarray, y: np.ndarray) -> Panel:
    """The ODE block's outputs with Euler at `steps` steps, and the head's predictions."""
    z, _ = model.flow(
        jnp.asarray(x), odeness.Integrator(odeness.solver("euler"), steps=steps)
    )
    predictions = np.asarray(jnp.argmax(model.head(z), axis=-1))
    return Panel(steps, np.asarray(z), np.asarray(y), predictions)


@dataclasses.dataclass(frozen=True)
class Figure2Options(AbstractOptions):
    """Figure 2 of Ott et al.: the Euler-2 model's ODE outputs over its decision regions.

        python experiments/figure2.py [--out results/figure2] [--quick]

    Trains spheres 2-D with Euler at 2 steps (resumable, in --out/runs/), then draws
    Figure 2 at h = 1/2 and 1/4: `figure2.png`, `figure2.json` and `figure2.md`.
    """

    command = "figure2"
    published = ("figure2.md", "figure2.png")

    out: str | None = option(None, "output folder (default results/figure2)")
    iterations: int = option(10_000, "training iterations")
    seed: int = option(0, "the training seed")
    quick: bool = option(False, "a smoke test: 200 iterations")
    progress: bool = option(True, "no progress bars", flag="--no-progress")

    @property
    def folder(self) -> Path:
        return Path(self.out or "results/figure2")

    def run(self) -> str:
        return "\n".join(
            f"h = 1/{p['test_steps']}: accuracy {p['accuracy']:.3f}, class 0 in class 1's "
            f"region {100 * p['misplaced']['0']:.1f}%, class 1 in class 0's "
            f"{100 * p['misplaced']['1']:.1f}%"
            for p in run_figure2(self)["panels"]
        )


def run_figure2(options: Figure2Options, test_steps: tuple[int, int] = (2, 4)) -> dict:
    """Train (or resume) the Euler-2 model in `options.folder/runs/euler-n0002`, then
    write `figure2.png`, `figure2.json` and `figure2.md` with one panel per test step
    count."""
    with euler_runs(options, (2,)) as (out, data, runs):
        ((run_dir, config),) = runs.values()
        run = odeness.train(config, run_dir=run_dir, data=data, progress=options.progress)
        model = run.model(0)
        panels = [panel(model, n, data.x_test, data.y_test) for n in test_steps]
        numbers = {
            "config": config.to_dict(),
            "panels": [
                {
                    "test_steps": p.steps,
                    "h": 1 / p.steps,
                    "accuracy": p.accuracy,
                    "misplaced": {str(c): p.misplaced(c) for c in (0, 1)},
                }
                for p in panels
            ],
        }
        _draw(panels, model.head, out / "figure2.png")
        write_results(out, "figure2", numbers, _markdown(config, panels))
    return numbers


def _draw(panels: list[Panel], head, path: Path) -> None:
    """The panels' outputs, by true label, over the decision regions of `head`."""
    plt = pyplot()
    colours = np.array(["tab:blue", "tab:orange"])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8))
    axes = np.atleast_1d(axes)
    for ax, p in zip(axes, panels, strict=True):
        pad = 0.1 * (p.outputs.max(0) - p.outputs.min(0)).max()
        lo, hi = p.outputs.min(0) - pad, p.outputs.max(0) + pad
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 400), np.linspace(lo[1], hi[1], 400))
        grid = np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32)
        regions = np.asarray(np.argmax(head(jnp.asarray(grid)), axis=-1)).reshape(gx.shape)
        ax.contourf(gx, gy, regions, levels=[-0.5, 0.5, 1.5], colors=colours, alpha=0.18)
        for cls in (0, 1):
            pts = p.outputs[p.labels == cls]
            ax.scatter(pts[:, 0], pts[:, 1], s=5, color=colours[cls], label=f"class {cls}")
        ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
        ax.set_title(
            f"Euler, h = 1/{p.steps}: test accuracy {p.accuracy:.3f}\n"
            f"class 0 in class 1's region {100 * p.misplaced(0):.0f}%, "
            f"class 1 in class 0's {100 * p.misplaced(1):.0f}%",
            fontsize=9,
        )
        ax.set(xlabel="$z_0(1)$", ylabel="$z_1(1)$")
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(
        "Trained with Euler at h = 1/2: ODE outputs over the classifier's decision regions",
        fontsize=10,
    )
    save_figure(fig, path)


def _markdown(config: odeness.TrainConfig, panels: list[Panel]) -> str:
    head = ["test step h", "test accuracy"]
    head += [f"class {k} in class {1 - k}'s region" for k in (0, 1)]
    rows = [
        [f"1/{p.steps}", f"{p.accuracy:.3f}"]
        + [f"{100 * p.misplaced(k):.1f}%" for k in (0, 1)]
        for p in panels
    ]
    return page(
        "# Figure 2: the classifier reads the solver's error",
        f"Spheres 2-D, trained with Euler at 2 steps (h = 1/2), seed {config.seeds[0]}, "
        f"{config.iterations} iterations; the 1,000 test points.",
        markdown_table(head, rows),
        "![figure 2](figure2.png)",
    )
