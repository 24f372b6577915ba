"""Figure 3 of Ott et al.: Lady Windermere's fan on the XOR problem (their Sec. 2.2).

The four XOR points `(0,0)→0, (1,1)→0, (0,1)→1, (1,0)→1` are moved by the ODE (Eq. 4)

    z' = [[α, 1], [−γ‖z‖^δ, β]] z

(growing ellipses that turn faster the further out a point is) and solved with Euler.
With a coarse step the numerical end points are linearly separable; with a fine one (and
the exact flow) they are not: the coarse solution's biased global error is the feature.
The paper does not state α, β, γ, δ or the end time; `XorODE`'s defaults (α = 0.3,
β = 0.2, γ = 2, δ = 2, T = 2.5) come from a search over α, β ∈ {0, 0.1, 0.2, 0.3},
γ ∈ {1, 2, 5, 10, 20}, δ ∈ {1, 2, 3}, T ∈ {1, …, 5} for values where Euler at the coarse
step separates the points and the fine step and the exact flow do not, in float32 and
float64 alike, with one change of verdict along the sweep of h.

Separability is decided exactly: two classes of two points each are linearly separable
if and only if their segments (convex hulls) are disjoint, which
`odeness.diagnostics.segments_intersect` decides with exact predicates.
"""

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np

import odeness
from experiments.lab.markdown import write_results
from experiments.lab.options import AbstractOptions, option
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
    are linearly separable: exactly when the two segments share no point."""
    p = np.asarray(points, dtype=np.float64)
    return not bool(segments_intersect(p[0], p[1], p[2], p[3])[0])


def _euler(h: float, end: float, max_steps: int | None = None) -> odeness.Integrator:
    return odeness.Integrator(odeness.solver("euler"), dt=h, t1=end, max_steps=max_steps)


class Panel(NamedTuple):
    """One step size: the Euler trajectories of the four points and their separability."""

    h: float
    ts: np.ndarray
    paths: np.ndarray
    """`(points, 4, 2)`: the iterates."""
    separable: bool


def panel(ode: XorODE, h: float, end: float) -> Panel:
    ts, paths = trajectories(ode, _euler(h, end), XOR)
    return Panel(h, ts, paths, separable(paths[-1]))


def sweep(
    ode: XorODE, hs: Sequence[float] | np.ndarray, end: float
) -> list[tuple[float, bool]]:
    """`(h, separable)` of Euler's end points at each step size. One step budget for all
    (the smallest step's): each `h` is then an input of one compiled solve, not a new
    program."""
    budget = _euler(float(min(hs)), end).max_steps
    rows = []
    for h in hs:
        euler = _euler(float(h), end, budget)
        ends = np.asarray(odeness.solve(ode, jnp.asarray(XOR), euler)[0])
        rows.append((float(h), separable(ends)))
    return rows


def exact_end(ode: XorODE, end: float, steps: int = 20_000) -> np.ndarray:
    """The end points by classic RK4 with `steps` steps (the exact flow, closely)."""
    integ = odeness.Integrator(odeness.solver("rk4"), steps=steps, t1=end)
    return np.asarray(odeness.solve(ode, jnp.asarray(XOR), integ)[0])


@dataclasses.dataclass(frozen=True)
class Figure3Options(AbstractOptions):
    """Figure 3 of Ott et al.: the XOR points under Euler at a coarse and a fine step.

        python experiments/figure3.py [--out results/figure3] [--points 41]

    Writes `figure3.png`, `figure3.json` and `figure3.md` (see
    `experiments.ott2021.xor_fan`).
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
        return _figure3(out, ode, end, coarse, fine, sweep_points)


def _figure3(out, ode, end, coarse, fine, sweep_points) -> dict:
    from experiments.lab.figures import plot_xor_fan  # matplotlib only when drawing

    panels = [panel(ode, coarse, end), panel(ode, fine, end)]
    hs = np.logspace(np.log10(coarse), np.log10(fine), sweep_points)
    swept = sweep(ode, hs, end)
    exact = exact_end(ode, end)
    # The largest step whose end points are not separable, and every larger one that is.
    lost = next((h for h, s in swept if not s), None)
    numbers = {
        "ode": {
            "alpha": ode.alpha,
            "beta": ode.beta,
            "gamma": ode.gamma,
            "delta": ode.delta,
            "end_time": end,
        },
        "panels": [
            {
                "h": p.h,
                "steps": len(p.ts) - 1,
                "separable": p.separable,
                "end_points": p.paths[-1].tolist(),
            }
            for p in panels
        ],
        "exact": {"end_points": exact.tolist(), "separable": separable(exact)},
        "sweep": [{"h": h, "separable": s} for h, s in swept],
        "largest_h_not_separable": lost,
    }
    plot_xor_fan(panels, swept, exact, LABELS, out / "figure3.png")
    write_results(out, "figure3", numbers, _markdown(numbers))
    return numbers


def _markdown(n: dict) -> str:
    o = n["ode"]
    lines = [
        "# Figure 3: Lady Windermere's fan on the XOR problem",
        "",
        f"z' = [[α, 1], [−γ‖z‖^δ, β]] z with α = {o['alpha']:g}, β = {o['beta']:g}, "
        f"γ = {o['gamma']:g}, δ = {o['delta']:g}, from t = 0 to {o['end_time']:g}; Euler.",
        "",
        "| Euler step h | steps | end points linearly separable? |",
        "|---|---|---|",
    ]
    for p in n["panels"]:
        lines.append(
            f"| {p['h']:.3g} | {p['steps']} | {'yes' if p['separable'] else 'no'} |"
        )
    lines += [
        f"| exact (RK4, 20,000 steps) | | {'yes' if n['exact']['separable'] else 'no'} |",
        "",
        "Sweep of h (log-spaced between the two): separable at "
        + ", ".join(f"{s['h']:.3g}" for s in n["sweep"] if s["separable"])
        + "; not at "
        + ", ".join(f"{s['h']:.3g}" for s in n["sweep"] if not s["separable"])
        + ".",
        "",
        "![figure 3](figure3.png)",
        "",
    ]
    return "\n".join(lines)
