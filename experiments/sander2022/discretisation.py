"""The five ResNet ↔ ODE experiments of `make resnet-ode` (Sander et al., NeurIPS 2022).

Each `*_rows` function measures one experiment and returns JSON-ready rows; `run_all`
runs them, writes `<name>.jsonl`, a figure per experiment and `summary.md` into the
output folder, and skips experiments whose rows are already there (resume).
Experiments 1-4 run in float64 (the Heun adjoint's errors reach 1e-8, below float32's
resolution); fine-tuning runs in float32.
"""

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import odeness
from experiments.lab.figures import plot_lines
from experiments.lab.markdown import markdown_table, mean_std
from experiments.lab.options import AbstractOptions, option
from odeness import files, resnet_ode as ro
from odeness.data import load_dataset

FAMILIES = {"smooth": ro.Smooth(), "iid": ro.IID(), "iid, zero mean": ro.IID(shared=0.0)}
METHODS = {"euler": ro.EulerStep(), "heun": ro.HeunStep()}
"""The stage methods the experiments compare, by the label their rows carry."""


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The least-squares slope of `log y` against `log x`."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def _curves(rows: list[dict], keys: Sequence[str], x: str, y: str) -> dict:
    out: dict = {}
    for r in rows:
        xs, ys = out.setdefault(", ".join(str(r[k]) for k in keys), ([], []))
        xs.append(r[x])
        ys.append(r[y])
    return out


# --- 1. Distance ResNet ↔ ODE ----------------------------------------------------------


def distance_rows(
    depths: Sequence[int],
    *,
    dim: int = 16,
    batch: int = 64,
    seed: int = 0,
    families: Sequence[str] = tuple(FAMILIES),
):
    """`max_n ‖x_n − x(n/N)‖` for `tanh(W x)` (nonlinear in θ) and `W tanh(x)` (linear in
    θ, the control) with smooth, i.i.d. and zero-mean i.i.d. weights."""
    key, kx = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (batch, dim))
    rows = []
    for f in (ro.TanhLayer(dim), ro.LinearInTheta(dim)):
        for family in families:
            for n in depths:
                stage = ro.ResidualStage.init(f, n, key=key, family=FAMILIES[family])
                rows.append(
                    {
                        "residual": type(f).__name__,
                        "family": family,
                        "depth": n,
                        "distance": float(ro.ode_distance(stage, x)),
                        "smoothness": float(ro.smoothness(stage)),
                    }
                )
    return rows


# --- 2. Adjoint gradient error -----------------------------------------------------------


def adjoint_rows(
    depths: Sequence[int],
    *,
    dim: int = 16,
    batch: int = 64,
    seed: int = 0,
    families: Sequence[str] = ("smooth", "iid"),
):
    """Relative error of the adjoint's gradient against exact backprop, per weight tensor
    (`W1`, `W2` of `W2 tanh(W1 x)`) and for the input, on the loss `½ ‖x_N − y‖²`."""
    key, kx, ky = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, (batch, dim))
    y = jax.random.normal(ky, (batch, dim))
    f = ro.MLPBlock(dim, dim)

    def grads(stage):
        def loss(w, x):
            out = ro.ResidualStage(f, w, stage.method, stage.adjoint)(x)
            return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=-1))

        return jax.jit(jax.grad(loss, argnums=(0, 1)))(stage.weights, x)

    rows = []
    for method, step in METHODS.items():
        for family in families:
            for n in depths:
                stage = ro.ResidualStage.init(
                    f, n, key=key, family=FAMILIES[family], method=step
                )
                exact = grads(stage)
                adj = grads(ro.ResidualStage(f, stage.weights, step, adjoint=True))
                names = ("W1", "W2", "input")
                leaves = (*exact[0], exact[1]), (*adj[0], adj[1])
                for name, e, a in zip(names, *leaves, strict=True):
                    rows.append(
                        {
                            "method": method,
                            "family": family,
                            "tensor": name,
                            "depth": n,
                            "relative_error": float(
                                jnp.linalg.norm(a - e) / jnp.linalg.norm(e)
                            ),
                        }
                    )
    return rows


# --- 3. Linear ResNets under gradient descent ---------------------------------------------


def linear_rows(
    depths: Sequence[int],
    *,
    reference_depth: int = 1024,
    dim: int = 8,
    batch: int = 256,
    iterations: int = 2000,
    log_every: int = 20,
    learning_rate: float = 0.02,
    seed: int = 0,
):
    """`S_N` and the distance to a deeper reference (trained alike) over training, for
    `f(x, A_n) = A_n x` from zero weights, target `y = exp(M) x` with `‖M‖` small."""
    kx, km = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (batch, dim))
    m = 0.5 * jax.random.normal(km, (dim, dim)) / math.sqrt(dim)
    y = x @ jax.scipy.linalg.expm(m).T
    fit = {
        n: ro.fit_linear_resnet(
            n, x, y, iterations=iterations, learning_rate=learning_rate, log_every=log_every
        )
        for n in (*depths, reference_depth)
    }
    ref = fit[reference_depth]
    rows = []
    for n in depths:
        f = fit[n]
        for i, step in enumerate(np.asarray(f.steps)):
            stage = ro.ResidualStage(ro.LinearMap(dim), f.weights[i])
            rows.append(
                {
                    "depth": n,
                    "step": int(step),
                    "loss": float(f.loss[i]),
                    "smoothness": float(ro.smoothness(stage)),
                    "distance_to_reference": float(
                        ro.depth_distance(
                            stage, ro.ResidualStage(ro.LinearMap(dim), ref.weights[i]), x
                        )
                    ),
                }
            )
    return rows


# --- 4. Memory ---------------------------------------------------------------------------


def memory_rows(depths: Sequence[int], *, dim: int = 64, batch: int = 256, seed: int = 0):
    """XLA's compiled memory analysis of one gradient through a stage (`MLPBlock`, smooth
    weights) with backprop and with the adjoint, Euler and Heun."""
    key, kx = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (batch, dim))
    rows = []
    for method, step in METHODS.items():
        for adjoint in (False, True):
            for n in depths:
                stage = ro.ResidualStage.init(
                    ro.MLPBlock(dim, dim), n, key=key, method=step, adjoint=adjoint
                )
                mem = ro.gradient_memory(stage, x)
                rows.append(
                    {
                        "method": method,
                        "backward": "adjoint" if adjoint else "backprop",
                        "depth": n,
                        **mem,
                    }
                )
    return rows


# --- 5. Fine-tuning on MNIST -------------------------------------------------------------


def _train(model, data, keys, *, iterations: int, batch: int, lr: float):
    """Adam on the cross-entropy from `model`, once per key (one compiled program,
    vmapped over the keys: each key draws its own batches, with replacement).

    **Returns:** the trained models (stacked over the keys) and `compiled_memory` of one
    gradient on a batch.
    """
    params, static = eqx.partition(model, eqx.is_array)
    opt = optax.adam(lr)
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)

    def loss(params, xb, yb):
        logits = eqx.combine(params, static)(xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def run(key, x_train, y_train):
        def step(carry, k):
            params, state = carry
            idx = jax.random.randint(k, (batch,), 0, x_train.shape[0])
            g = jax.grad(loss)(params, x_train[idx], y_train[idx])
            updates, state = opt.update(g, state, params)
            return (optax.apply_updates(params, updates), state), None

        keys = jax.random.split(key, iterations)
        return jax.lax.scan(step, (params, opt.init(params)), keys)[0][0]

    memory = ro.compiled_memory(jax.grad(loss), params, x_train[:batch], y_train[:batch])
    trained = jax.jit(jax.vmap(run, in_axes=(0, None, None)))(keys, x_train, y_train)
    return eqx.combine(trained, static), memory


@eqx.filter_jit
def _scores(model, x, y):
    logits = model(x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).sum()
    return jnp.sum(jnp.argmax(logits, axis=-1) == y), loss


def _test_scores(model, data, chunk: int = 2000) -> tuple[float, float]:
    """Accuracy and mean cross-entropy on the whole test set."""
    correct, loss = 0, 0.0
    for i in range(0, len(data.x_test), chunk):
        c, l_ = _scores(
            model,
            jnp.asarray(data.x_test[i : i + chunk]),
            jnp.asarray(data.y_test[i : i + chunk]),
        )
        correct, loss = correct + int(c), loss + float(l_)
    return correct / len(data.x_test), loss / len(data.x_test)


def _unstack(tree, i: int):
    return jax.tree.map(lambda a: a[i] if eqx.is_array(a) else a, tree)


def finetune_rows(
    *,
    data_dir: str | None = None,
    depth: int = 128,
    width: int = 64,
    pretrain: int = 1000,
    iterations: int = 1000,
    batch: int = 128,
    lr: float = 1e-3,
    seeds: Sequence[int] = (0, 1, 2),
    data=None,
):
    """Pretrain a deep `StageClassifier` on MNIST with backprop (`pretrain` iterations of
    Adam), then fine-tune it from there as long again with backprop and with the adjoint
    (same seeds, same batches). Rows: test accuracy and loss, compiled memory of one
    gradient, and for the adjoint the relative distance of its fine-tuned stage weights
    to backprop's."""
    data = data if data is not None else load_dataset("mnist", data_dir=data_dir)
    in_features = int(np.prod(data.input_shape))
    model = ro.StageClassifier.init(
        in_features, data.num_classes, width=width, depth=depth, key=jax.random.key(0)
    )
    model, _ = _train(
        model, data, jax.random.key(1000)[None], iterations=pretrain, batch=batch, lr=lr
    )
    model = _unstack(model, 0)
    before = _test_scores(model, data)[0]
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    rows, tuned_weights = [], {}
    for adjoint in (False, True):
        s = model.stage
        tuned = eqx.tree_at(
            lambda m: m.stage,
            model,
            ro.ResidualStage(s.residual, s.weights, s.method, adjoint),
        )
        start = time.perf_counter()
        out, mem = _train(tuned, data, keys, iterations=iterations, batch=batch, lr=lr)
        out = jax.block_until_ready(out)
        seconds = time.perf_counter() - start
        tuned_weights[adjoint] = out.stage.weights  # pyright: ignore[reportAttributeAccessIssue]
        for i, seed in enumerate(seeds):
            accuracy, loss = _test_scores(_unstack(out, i), data)
            row = {
                "backward": "adjoint" if adjoint else "backprop",
                "seed": seed,
                "depth": depth,
                "iterations": iterations,
                "accuracy_before": before,
                "accuracy": accuracy,
                "test_loss": loss,
                "seconds_all_seeds": round(seconds, 2),
                **mem,
            }
            if adjoint:
                a, b = (
                    jax.tree.leaves(_unstack(tuned_weights[k], i)) for k in (True, False)
                )
                num = sum(float(jnp.sum((u - v) ** 2)) for u, v in zip(a, b, strict=True))
                den = sum(float(jnp.sum(v**2)) for v in b)
                row["weights_vs_backprop"] = math.sqrt(num / den)
            rows.append(row)
    return rows


# --- Running and reporting -------------------------------------------------------------


def _depths(rows: list[dict]) -> list[int]:
    return sorted({r["depth"] for r in rows})


def _distance_md(rows: list[dict]) -> list[str]:
    body = []
    for label, (xs, ys) in _curves(
        rows, ("residual", "family"), "depth", "distance"
    ).items():
        big = [(n, d) for n, d in zip(xs, ys, strict=True) if n >= 16]
        slope = loglog_slope(*zip(*big, strict=True)) if len(big) > 1 else float("nan")
        body.append([*label.split(", ", 1), *(f"{d:.2e}" for d in ys), f"{slope:.2f}"])
    head = ["residual", "weights", *(f"N = {n}" for n in _depths(rows))]
    return [
        "## 1. Distance ResNet ↔ ODE, `max_n ‖x_n − x(n/N)‖`",
        "",
        *markdown_table([*head, "log-log slope (N ≥ 16)"], body),
    ]


def _adjoint_md(rows: list[dict]) -> list[str]:
    curves = _curves(rows, ("method", "family", "tensor"), "depth", "relative_error")
    body = [
        [*label.split(", "), *(f"{e:.1e}" for e in ys), f"{loglog_slope(xs, ys):.2f}"]
        for label, (xs, ys) in curves.items()
    ]
    head = ["method", "weights", "tensor", *(f"N = {n}" for n in _depths(rows))]
    return [
        "## 2. Adjoint gradient error (relative, against backprop)",
        "",
        *markdown_table([*head, "log-log slope"], body),
    ]


def _linear_md(rows: list[dict]) -> list[str]:
    body = []
    for n in _depths(rows):
        rs = [r for r in rows if r["depth"] == n]
        body.append(
            [
                str(n),
                f"{max(r['smoothness'] for r in rs):.3f}",
                f"{rs[-1]['smoothness']:.3f}",
                f"{rs[-1]['loss']:.2e}",
                f"{rs[-1]['distance_to_reference']:.2e}",
            ]
        )
    head = [
        "N",
        "max S_N over training",
        "final S_N",
        "final loss",
        "final distance to the reference",
    ]
    return ["## 3. Linear ResNets under gradient descent", "", *markdown_table(head, body)]


def _memory_md(rows: list[dict]) -> list[str]:
    curves = _curves(rows, ("method", "backward"), "depth", "temp_bytes")
    body = [
        [*label.split(", "), *(f"{b / 2**20:.2f} MiB" for b in ys)]
        for label, (_, ys) in curves.items()
    ]
    return [
        "## 4. Memory of one gradient step (XLA compiled memory analysis, temp bytes)",
        "",
        *markdown_table(["method", "backward", *(f"N = {n}" for n in _depths(rows))], body),
    ]


def _finetune_md(rows: list[dict]) -> list[str]:
    body = []
    for backward in ("backprop", "adjoint"):
        rs = [r for r in rows if r["backward"] == backward]
        body.append(
            [
                backward,
                str(len(rs)),
                f"{rs[0]['accuracy_before']:.4f}",
                mean_std((r["accuracy"] for r in rs), ".4f"),
                f"{np.mean([r['test_loss'] for r in rs]):.4f}",
                f"{rs[0]['temp_bytes'] / 2**20:.2f} MiB",
                f"{rs[0]['seconds_all_seeds']:.1f}",
            ]
        )
    head = [
        "backward",
        "seeds",
        "accuracy before",
        "accuracy after (mean ± std)",
        "test loss",
        "gradient temp memory",
        "seconds (all seeds at once)",
    ]
    diffs = [r["weights_vs_backprop"] for r in rows if "weights_vs_backprop" in r]
    return [
        "## 5. Fine-tuning on MNIST",
        "",
        *markdown_table(head, body),
        "",
        f"Stage weights fine-tuned with the adjoint differ from backprop's by "
        f"{max(diffs):.1e} (relative, largest over seeds).",
    ]


_SECTIONS = {
    "distance": _distance_md,
    "adjoint": _adjoint_md,
    "linear": _linear_md,
    "memory": _memory_md,
    "finetune": _finetune_md,
}


def summary_markdown(results: dict[str, list[dict]]) -> str:
    """The slopes, plateaus and memory figures of the experiments that have run."""
    out = ["# ResNet ↔ ODE (Sander et al., NeurIPS 2022)", ""]
    for name, section in _SECTIONS.items():
        if rows := results.get(name):
            out += [*section(rows), ""]
    return "\n".join(out)


def _figures(name: str, rows: list[dict], out: Path) -> None:
    if name == "distance":
        plot_lines(
            _curves(rows, ("residual", "family"), "depth", "distance"),
            out / "distance.png",
            xlabel="depth N",
            ylabel="max_n ‖x_n − x(n/N)‖",
            title="ResNet ↔ ODE distance",
        )
    elif name == "adjoint":
        plot_lines(
            _curves(
                [r for r in rows if r["tensor"] == "W1"],
                ("method", "family"),
                "depth",
                "relative_error",
            ),
            out / "adjoint.png",
            xlabel="depth N",
            ylabel="relative gradient error (W1)",
            title="memory-free adjoint against backprop",
        )
    elif name == "linear":
        plot_lines(
            _curves(rows, ("depth",), "step", "smoothness"),
            out / "linear.png",
            xlabel="gradient-descent iteration",
            ylabel="S_N = N max_n ‖A_{n+1} − A_n‖",
            title="linear ResNets: smoothness during gradient descent (one line per N)",
            logx=False,
            logy=False,
        )
    elif name == "memory":
        plot_lines(
            _curves(rows, ("method", "backward"), "depth", "temp_bytes"),
            out / "memory.png",
            xlabel="depth N",
            ylabel="temporary bytes of one gradient (XLA)",
            title="memory of backprop and of the adjoint",
        )


EXPERIMENTS = ("distance", "adjoint", "linear", "memory", "finetune")


SPEC = "resnet_ode.json"
"""What the folder's experiments were run with (`quick`), checked when it is reused."""


@dataclasses.dataclass(frozen=True)
class ResnetOptions(AbstractOptions):
    """ResNets as discretised Neural ODEs (Sander et al., NeurIPS 2022): the five
    experiments.

        python experiments/resnets.py                      # all five, results/resnet-ode
        python experiments/resnets.py --only adjoint memory --quick

    Writes <experiment>.jsonl, a figure per experiment and summary.md into --out;
    experiments whose rows are already there are reused (delete the .jsonl to run one
    again). See `odeness.resnet_ode` and `experiments.sander2022`.
    """

    command = "resnets"
    published = ("summary.md", "distance.png", "adjoint.png", "linear.png", "memory.png")

    only: tuple[str, ...] = option(
        EXPERIMENTS,
        f"some of: {', '.join(EXPERIMENTS)} (default: all)",
        metavar="EXPERIMENT",
    )
    out: str | None = option(None, "output folder (default results/resnet-ode)")
    data_dir: str | None = option(
        None, "folder with the official MNIST archives, for fine-tuning (default: "
        "$ODENESS_MNIST_DIR)",
    )  # fmt: skip
    quick: bool = option(
        False, "smoke test: few, shallow depths and a tiny fine-tuning run"
    )

    @property
    def folder(self) -> Path:
        return Path(self.out or "results/resnet-ode")

    def run(self) -> str:
        results = run_all(self.folder, experiments=self.only, quick=self.quick,
                          data_dir=self.data_dir)  # fmt: skip
        return f"wrote {', '.join(results)} into {self.folder} (summary.md)"


def run_all(
    out_dir: str | Path,
    *,
    experiments: Sequence[str] = EXPERIMENTS,
    quick: bool = False,
    data_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, list[dict]]:
    """Run the named experiments into `out_dir` (see the module docstring).

    **Raises:** before anything runs, `ValueError` for an unknown experiment name or a
    folder holding experiments run with another `quick`, `FileNotFoundError` if
    fine-tuning's MNIST is missing.
    """
    unknown = [e for e in experiments if e not in EXPERIMENTS]
    if unknown:
        raise ValueError(
            f"unknown experiment {unknown[0]!r}; expected some of {', '.join(EXPERIMENTS)}"
        )
    out = files.check_folder(out_dir, "output folder")
    spec = {"quick": quick}
    if (out / SPEC).exists():
        difference = files.first_difference(files.read_json(out / SPEC), spec)
        if difference is not None:
            raise ValueError(
                f"{out} holds the experiments of another run ({difference}); choose "
                "another folder"
            )
    mnist = None
    if "finetune" in experiments and not (out / "finetune.jsonl").exists():
        mnist = load_dataset("mnist", data_dir=data_dir)  # missing data fails here
    with files.folder_lock(out, "output folder"):
        return _run(out, spec, experiments, quick, mnist, log)


def _run(out, spec, experiments, quick, mnist, log) -> dict[str, list[dict]]:
    files.write_json(out / SPEC, spec)
    depths = (4, 8) if quick else (4, 8, 16, 32, 64, 128, 256, 512)
    jobs: dict[str, Callable[[], list[dict]]] = {
        "distance": lambda: _x64(
            distance_rows,
            depths,
            dim=4 if quick else 16,
            families=("iid",) if quick else tuple(FAMILIES),
        ),
        "adjoint": lambda: _x64(
            adjoint_rows,
            depths,
            dim=4 if quick else 16,
            families=("smooth",) if quick else ("smooth", "iid"),
        ),
        "linear": lambda: _x64(
            linear_rows,
            (4, 8) if quick else (8, 16, 32, 64, 128, 256),
            reference_depth=16 if quick else 1024,
            iterations=40 if quick else 2000,
            log_every=20,
        ),
        "memory": lambda: _x64(
            memory_rows, (16, 32) if quick else (16, 32, 64, 128, 256, 512, 1024)
        ),
        "finetune": lambda: (
            finetune_rows(
                data=mnist, depth=8, width=16, pretrain=20, iterations=20, seeds=(0, 1)
            )
            if quick
            else finetune_rows(data=mnist)
        ),
    }
    results = {}
    for name in EXPERIMENTS:
        path = out / f"{name}.jsonl"
        odeness.raise_if_stopped(
            f"before the {name} experiment: {out} keeps the finished ones", folder=out
        )
        if name in experiments:
            if path.exists():
                log(f"{name}: reusing {path}")
            else:
                start = time.perf_counter()
                log(f"{name}: running")
                files.write_jsonl(path, jobs[name]())
                log(f"{name}: done in {time.perf_counter() - start:.0f} s")
        if path.exists():
            results[name] = files.read_jsonl(path)
            _figures(name, results[name], out)
    files.atomic_write_text(out / "summary.md", summary_markdown(results))
    return results


def _x64(fn, *args, **kwargs):
    with jax.enable_x64(True):
        return fn(*args, **kwargs)
