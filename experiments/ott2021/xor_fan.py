"""Figure 3 of Ott et al.: Lady Windermere's fan on the XOR problem (their Sec. 2.2).

The four XOR points `(0,0)→0, (1,1)→0, (0,1)→1, (1,0)→1` are moved by the ODE (Eq. 4)
`z' = [[α, 1], [−γ‖z‖^δ, β]] z` (growing ellipses that turn faster the further out a
point is) and solved with Euler. With a coarse step the numerical end points are
linearly separable; with a fine one (and the exact flow) they are not: the coarse
solution's biased global error is the feature. The paper does not state α, β, γ, δ or
the end time; `XorODE`'s defaults (α = 0.3, β = 0.2, γ = 2, δ = 2, T = 2.5) come from a
search over α, β ∈ {0, 0.1, 0.2, 0.3}, γ ∈ {1, 2, 5, 10, 20}, δ ∈ {1, 2, 3},
T ∈ {1, …, 5} for values where Euler at the coarse step separates the points and the
fine step and the exact flow do not, in float32 and float64 alike, with one change of
verdict along the sweep of h. Separability is decided exactly (`separable`).
"""

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np

import odeness
from experiments.lab.figures import pyplot, save_figure
from experiments.lab.markdown import markdown_table, write_results
from experiments.lab.options import AbstractOptions, option
from experiments.ott2021.crossings_figure import page
from odeness import files
from odeness.diagnostics import segments_intersect, trajectories

XOR = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
LABELS = np.array([0, 0, 1, 1])


class XorODE(eqx.Module):
    """`z' = [[α, 1], [−γ‖z‖^δ, β]] z` on a batch of 2-D states."""

    alpha: float = eqx.field(static=True, default=0.3)
    beta: float = eqx.field(static=True, default=0.2)
    gamma: float = eqx.field(static=True, default=2.0)
    delta: float = eqx.field(static=True, default=2.0)

    def __call__(self, t, z, args):
        r = jnp.linalg.norm(z, axis=-1)
        x, y = z[..., 0], z[..., 1]
        return jnp.stack(
            [self.alpha * x + y, -self.gamma * r**self.delta * x + self.beta * y], -1
        )


def separable(points: np.ndarray) -> bool:
    """Whether `{points[0], points[1]}` (class 0) and `{points[2], points[3]}` (class 1)
    are linearly separable: exactly when the two segments (their convex hulls) share no
    point, which `odeness.diagnostics.segments_intersect` decides with exact predicates."""
    p = np.asarray(points, dtype=np.float64)
    return not bool(segments_intersect(p[0], p[1], p[2], p[3])[0])


def _euler(h: float, end: float, max_steps: int | None = None) -> odeness.Integrator:
    return odeness.Integrator(odeness.solver("euler"), dt=h, t1=end, max_steps=max_steps)


def _ends(ode: XorODE, integ: odeness.Integrator) -> np.ndarray:
    """Where `integ` takes the four XOR points."""
    return np.asarray(odeness.solve(ode, jnp.asarray(XOR), integ)[0])


class Panel(NamedTuple):
    """One step size: the Euler trajectories of the four points and their separability."""

    h: float
    paths: np.ndarray
    """`(points, 4, 2)`: the iterates."""
    separable: bool


def panel(ode: XorODE, h: float, end: float) -> Panel:
    _, paths = trajectories(ode, _euler(h, end), XOR)
    return Panel(h, paths, separable(paths[-1]))


def sweep(
    ode: XorODE, hs: Sequence[float] | np.ndarray, end: float
) -> list[tuple[float, bool]]:
    """`(h, separable)` of Euler's end points at each step size. One step budget for all
    (the smallest step's): each `h` is then an input of one compiled solve, not a new
    program."""
    budget = _euler(float(min(hs)), end).max_steps
    return [(h, separable(_ends(ode, _euler(h, end, budget)))) for h in map(float, hs)]


def exact_end(ode: XorODE, end: float, steps: int = 20_000) -> np.ndarray:
    """The end points by classic RK4 with `steps` steps (the exact flow, closely)."""
    return _ends(ode, odeness.Integrator(odeness.solver("rk4"), steps=steps, t1=end))


@dataclasses.dataclass(frozen=True)
class Figure3Options(AbstractOptions):
    """Figure 3 of Ott et al.: the XOR points under Euler at a coarse and a fine step.

        python experiments/figure3.py [--out results/figure3] [--points 41]

    Writes `figure3.png`, `figure3.json` and `figure3.md`.
    """

    command = "figure3"
    published = ("figure3.md", "figure3.png")

    out: str | None = option(None, "output folder (default results/figure3)")
    points: int = option(41, "step sizes in the sweep of h")

    def __post_init__(self):
        if self.points < 2:
            raise ValueError(f"--points must be an integer >= 2, got {self.points}")

    @property
    def folder(self) -> Path:
        return Path(self.out or "results/figure3")

    def run(self) -> str:
        n = run_figure3(self.folder, sweep_points=self.points)
        coarse, fine = n["panels"]
        return (
            f"h = {coarse['h']:.3g}: separable {coarse['separable']}; h = {fine['h']:.3g}: "
            f"separable {fine['separable']}; exact: separable {n['exact']['separable']}; "
            f"largest h not separable: {n['largest_h_not_separable']}"
        )


def run_figure3(
    out_dir: str | Path,
    *,
    ode: XorODE | None = None,
    end: float = 2.5,
    coarse: float = 10**-2.5,
    fine: float = 10**-3.5,
    sweep_points: int = 41,
) -> dict:
    """Both panels, the sweep of `h` between `coarse` and `fine` (log-spaced), the exact
    end points, `figure3.json`, `figure3.md` and `figure3.png` in `out_dir`."""
    ode = XorODE() if ode is None else ode
    out = files.check_folder(out_dir, "--out")
    with files.folder_lock(out, "--out"):
        panels = [panel(ode, coarse, end), panel(ode, fine, end)]
        swept = sweep(ode, np.logspace(np.log10(coarse), np.log10(fine), sweep_points), end)
        exact = exact_end(ode, end)
        numbers = {
            "ode": dataclasses.asdict(ode) | {"end_time": end},
            "panels": [
                {
                    "h": p.h,
                    "steps": len(p.paths) - 1,
                    "separable": p.separable,
                    "end_points": p.paths[-1].tolist(),
                }
                for p in panels
            ],
            "exact": {"end_points": exact.tolist(), "separable": separable(exact)},
            "sweep": [{"h": h, "separable": s} for h, s in swept],
            # The first (largest) h whose end points are not separable: all larger h are.
            "largest_h_not_separable": next((h for h, s in swept if not s), None),
        }
        _draw(panels, swept, exact, out / "figure3.png")
        write_results(out, "figure3", numbers, _markdown(numbers))
    return numbers


def _draw(panels: list[Panel], swept, exact: np.ndarray, path: Path) -> None:
    """Both panels' trajectories, end points (each class's segment drawn) and the exact
    end points, and the verdict along the sweep of h."""
    plt = pyplot()
    colours = np.array(["tab:blue", "tab:orange"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, p in zip(axes[:2], panels, strict=True):
        for i in range(p.paths.shape[1]):
            ax.plot(p.paths[:, i, 0], p.paths[:, i, 1], color=colours[LABELS[i]], lw=0.6)
        end = p.paths[-1]
        for cls in (0, 1):
            label = f"class {cls} (end points)"
            pts = end[LABELS == cls]
            ax.plot(*pts.T, "o-", color=colours[cls], ms=7, lw=2, mec="k", label=label)
        ax.plot(exact[:, 0], exact[:, 1], "kx", ms=8, label="exact end points")
        verdict = "separable" if p.separable else "not separable"
        ax.set_title(
            f"Euler, h = {p.h:.3g}: end points {verdict}\n(the view is the end "
            "points'; the trajectories swing far out)"
        )
        both = np.concatenate([end, exact])
        lo, hi = both.min(0), both.max(0)
        pad = 0.25 * (hi - lo).max()
        ax.set(xlim=(lo[0] - pad, hi[0] + pad), ylim=(lo[1] - pad, hi[1] + pad))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    ax = axes[2]
    ax.step([h for h, _ in swept], [int(s) for _, s in swept], where="mid")
    ax.set_xscale("log")
    ax.set_xticks([3e-3, 1e-3, 3e-4], ["3e-3", "1e-3", "3e-4"])
    ax.minorticks_off()
    ax.invert_xaxis()
    ax.set_yticks([0, 1], ["no", "yes"])
    ax.set_xlabel("Euler step h (finer to the right)")
    ax.set_title("end points linearly separable?")
    ax.grid(alpha=0.3)
    fig.suptitle(
        "XOR points under Euler (views around the end points; the trajectories "
        "swing far out between)",
        fontsize=10,
    )
    save_figure(fig, path)


def _markdown(n: dict) -> str:
    o, yes_no = n["ode"], {True: "yes", False: "no"}

    def at(verdict: bool) -> str:
        return ", ".join(f"{s['h']:.3g}" for s in n["sweep"] if s["separable"] == verdict)

    rows = [[f"{p['h']:.3g}", str(p["steps"]), yes_no[p["separable"]]] for p in n["panels"]]
    return page(
        "# Figure 3: Lady Windermere's fan on the XOR problem",
        f"z' = [[α, 1], [−γ‖z‖^δ, β]] z with α = {o['alpha']:g}, β = {o['beta']:g}, "
        f"γ = {o['gamma']:g}, δ = {o['delta']:g}, from t = 0 to {o['end_time']:g}; Euler.",
        [
            *markdown_table(
                ["Euler step h", "steps", "end points linearly separable?"], rows
            ),
            f"| exact (RK4, 20,000 steps) | | {yes_no[n['exact']['separable']]} |",
        ],
        f"Sweep of h (log-spaced between the two): separable at {at(True)}; not at "
        f"{at(False)}.",
        "![figure 3](figure3.png)",
    )
