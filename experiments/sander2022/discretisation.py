"""The five ResNet ↔ ODE experiments of `make resnet-ode` (Sander et al., NeurIPS 2022).

Each `*_rows` function measures one experiment and returns JSON-ready rows; `run_all`
runs them, writes `<name>.jsonl`, a figure per experiment and `summary.md` into the
output folder, and skips experiments whose rows are already there (resume).
Experiments 1-4 run in float64 (the Heun adjoint's errors reach 1e-8, below float32's
resolution); fine-tuning runs in float32.
"""

import dataclasses
import functools
import itertools
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
    """`(r[k] for k in keys) → (xs, ys)` over `rows`."""
    out: dict = {}
    for r in rows:
        xs, ys = out.setdefault(tuple(r[k] for k in keys), ([], []))
        xs.append(r[x])
        ys.append(r[y])
    return out


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
    residuals = (ro.TanhLayer(dim), ro.LinearInTheta(dim))
    rows = []
    for f, family, n in itertools.product(residuals, families, depths):
        stage = ro.ResidualStage.init(f, n, key=key, family=FAMILIES[family])
        row = {"residual": type(f).__name__, "family": family, "depth": n}
        distance, smoothness = ro.ode_distance(stage, x), ro.smoothness(stage)
        rows.append({**row, "distance": float(distance), "smoothness": float(smoothness)})
    return rows


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

    def grads(weights, method, adjoint):  # (W1, W2, input)
        def loss(w, x):
            out = ro.ResidualStage(f, w, method, adjoint)(x)
            return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=-1))

        return jax.tree.leaves(jax.jit(jax.grad(loss, argnums=(0, 1)))(weights, x))

    rows = []
    for (method, step), family, n in itertools.product(METHODS.items(), families, depths):
        stage = ro.ResidualStage.init(f, n, key=key, family=FAMILIES[family], method=step)
        exact, adj = grads(stage.weights, step, False), grads(stage.weights, step, True)
        for tensor, e, a in zip(("W1", "W2", "input"), exact, adj, strict=True):
            row = {"method": method, "family": family, "tensor": tensor, "depth": n}
            error = jnp.linalg.norm(a - e) / jnp.linalg.norm(e)
            rows.append({**row, "relative_error": float(error)})
    return rows


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
    f = ro.LinearMap(dim)
    rows = []
    for n in depths:
        for i, step in enumerate(np.asarray(fit[n].steps)):
            stage, ref = (
                ro.ResidualStage(f, fit[k].weights[i]) for k in (n, reference_depth)
            )
            row = {"depth": n, "step": int(step), "loss": float(fit[n].loss[i])}
            row["smoothness"] = float(ro.smoothness(stage))
            row["distance_to_reference"] = float(ro.depth_distance(stage, ref, x))
            rows.append(row)
    return rows


def memory_rows(depths: Sequence[int], *, dim: int = 64, batch: int = 256, seed: int = 0):
    """XLA's compiled memory analysis of one gradient through a stage (`MLPBlock`, smooth
    weights) with backprop and with the adjoint, Euler and Heun."""
    key, kx = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (batch, dim))
    f = ro.MLPBlock(dim, dim)
    rows = []
    for method, adjoint, n in itertools.product(METHODS, (False, True), depths):
        stage = ro.ResidualStage.init(
            f, n, key=key, method=METHODS[method], adjoint=adjoint
        )
        backward = "adjoint" if adjoint else "backprop"
        memory = ro.gradient_memory(stage, x)
        rows.append({"method": method, "backward": backward, "depth": n, **memory})
    return rows


def _train(model, data, keys, *, iterations: int, batch: int, lr: float):
    """Adam on the cross-entropy from `model`, once per key (vmapped: each key draws its
    own batches); the trained models stacked over the keys, and `compiled_memory` of one
    gradient on a batch."""
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


def _test_scores(model, data) -> tuple[float, float]:
    """Accuracy and mean cross-entropy on the whole test set (in chunks of 2000)."""
    n = len(data.x_test)
    parts = [slice(i, i + 2000) for i in range(0, n, 2000)]
    scores = [_scores(model, data.x_test[p], data.y_test[p]) for p in parts]
    return sum(int(c) for c, _ in scores) / n, sum(float(loss) for _, loss in scores) / n


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
    train = functools.partial(_train, data=data, batch=batch, lr=lr)
    pretrained, _ = train(model, keys=jax.random.key(1000)[None], iterations=pretrain)
    model = _unstack(pretrained, 0)
    before = _test_scores(model, data)[0]
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    s = model.stage
    rows, weights = [], {}
    for adjoint in (False, True):
        stage = ro.ResidualStage(s.residual, s.weights, s.method, adjoint)
        tuned = eqx.tree_at(lambda m: m.stage, model, stage)
        start = time.perf_counter()
        out, mem = jax.block_until_ready(train(tuned, keys=keys, iterations=iterations))
        seconds = time.perf_counter() - start
        weights[adjoint] = out.stage.weights  # pyright: ignore[reportAttributeAccessIssue]
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
                a, b = (jax.tree.leaves(_unstack(weights[k], i)) for k in (True, False))
                num = sum(float(jnp.sum((u - v) ** 2)) for u, v in zip(a, b, strict=True))
                den = sum(float(jnp.sum(v**2)) for v in b)
                row["weights_vs_backprop"] = math.sqrt(num / den)
            rows.append(row)
    return rows


_TITLES = {  # experiment → its section of `summary.md`
    "distance": "1. Distance ResNet ↔ ODE, `max_n ‖x_n − x(n/N)‖`",
    "adjoint": "2. Adjoint gradient error (relative, against backprop)",
    "linear": "3. Linear ResNets under gradient descent",
    "memory": "4. Memory of one gradient step (XLA compiled memory analysis, temp bytes)",
    "finetune": "5. Fine-tuning on MNIST",
}
_FIGURES = {  # experiment → the labels of its figure (`plot_lines`'s keywords)
    "distance": {"ylabel": "max_n ‖x_n − x(n/N)‖", "title": "ResNet ↔ ODE distance"},
    "adjoint": {
        "ylabel": "relative gradient error (W1)",
        "title": "memory-free adjoint against backprop",
    },
    "linear": {
        "xlabel": "gradient-descent iteration",
        "ylabel": "S_N = N max_n ‖A_{n+1} − A_n‖",
        "title": "linear ResNets: smoothness during gradient descent (one line per N)",
        "logx": False,
        "logy": False,
    },
    "memory": {
        "ylabel": "temporary bytes of one gradient (XLA)",
        "title": "memory of backprop and of the adjoint",
    },
}


def _figure(out: Path, name: str, curves: dict) -> None:
    lines = {", ".join(map(str, k)): v for k, v in curves.items()}
    plot_lines(lines, out / f"{name}.png", **{"xlabel": "depth N", **_FIGURES[name]})


def _pivot(head: list[str], curves: dict, cell: Callable, slope_from: int | None = None):
    """A table with a row per curve `label → (depths, values)`, and unless `slope_from` is
    None a column with its log-log slope over the depths from `slope_from` (`nan` for
    fewer than two)."""
    body = []
    for label, (xs, ys) in curves.items():
        body.append([*map(str, label), *map(cell, ys)])
        if slope_from is not None:
            big = [(n, y) for n, y in zip(xs, ys, strict=True) if n >= slope_from]
            fit = loglog_slope(*zip(*big, strict=True)) if len(big) > 1 else math.nan
            body[-1].append(f"{fit:.2f}")
    depths = sorted({n for xs, _ in curves.values() for n in xs})
    head = [*head, *(f"N = {n}" for n in depths)]
    if slope_from is not None:
        head.append(f"log-log slope (N ≥ {slope_from})" if slope_from else "log-log slope")
    return markdown_table(head, body)


def _grouped(rows: list[dict], key: str, values: Sequence, columns: dict[str, Callable]):
    """A table with a row per value of `key` in `values`: its `columns`, heading → cell
    of the rows with that value."""
    groups = ([r for r in rows if r[key] == v] for v in values)
    return markdown_table(
        list(columns), ([c(rs) for c in columns.values()] for rs in groups)
    )


def _report(name: str, rows: list[dict], out: Path) -> list[str]:
    """The table of experiment `name` in `summary.md`; draws its figure into `out`."""
    if name == "distance":
        curves = _curves(rows, ("residual", "family"), "depth", "distance")
        _figure(out, name, curves)
        return _pivot(["residual", "weights"], curves, "{:.2e}".format, 16)
    if name == "adjoint":
        curves = _curves(rows, ("method", "family", "tensor"), "depth", "relative_error")
        _figure(out, name, {k[:2]: v for k, v in curves.items() if k[2] == "W1"})
        return _pivot(["method", "weights", "tensor"], curves, "{:.1e}".format, 0)
    if name == "memory":
        curves = _curves(rows, ("method", "backward"), "depth", "temp_bytes")
        _figure(out, name, curves)
        return _pivot(["method", "backward"], curves, lambda b: f"{b / 2**20:.2f} MiB")
    if name == "linear":
        _figure(out, name, _curves(rows, ("depth",), "step", "smoothness"))
        columns = {  # heading → cell of one depth's rows, in training order
            "N": lambda rs: str(rs[0]["depth"]),
            "max S_N over training": lambda rs: f"{max(r['smoothness'] for r in rs):.3f}",
            "final S_N": lambda rs: f"{rs[-1]['smoothness']:.3f}",
            "final loss": lambda rs: f"{rs[-1]['loss']:.2e}",
            "final distance to the reference": lambda rs: (
                f"{rs[-1]['distance_to_reference']:.2e}"
            ),
        }
        return _grouped(rows, "depth", sorted({r["depth"] for r in rows}), columns)
    columns = {  # finetune: heading → cell of one backward's rows, one per seed
        "backward": lambda rs: rs[0]["backward"],
        "seeds": lambda rs: str(len(rs)),
        "accuracy before": lambda rs: f"{rs[0]['accuracy_before']:.4f}",
        "accuracy after (mean ± std)": lambda rs: mean_std(
            (r["accuracy"] for r in rs), ".4f"
        ),
        "test loss": lambda rs: f"{np.mean([r['test_loss'] for r in rs]):.4f}",
        "gradient temp memory": lambda rs: f"{rs[0]['temp_bytes'] / 2**20:.2f} MiB",
        "seconds (all seeds at once)": lambda rs: f"{rs[0]['seconds_all_seeds']:.1f}",
    }
    diffs = [r["weights_vs_backprop"] for r in rows if "weights_vs_backprop" in r]
    return [
        *_grouped(rows, "backward", ("backprop", "adjoint"), columns),
        "",
        f"Stage weights fine-tuned with the adjoint differ from backprop's by "
        f"{max(diffs):.1e} (relative, largest over seeds).",
    ]


_FULL = {  # experiment → its rows and the full run's arguments (the rest default)
    "distance": (distance_rows, dict(depths=(4, 8, 16, 32, 64, 128, 256, 512))),
    "adjoint": (adjoint_rows, dict(depths=(4, 8, 16, 32, 64, 128, 256, 512))),
    "linear": (linear_rows, dict(depths=(8, 16, 32, 64, 128, 256))),
    "memory": (memory_rows, dict(depths=(16, 32, 64, 128, 256, 512, 1024))),
    "finetune": (finetune_rows, {}),
}
EXPERIMENTS = tuple(_FULL)
_QUICK = {  # `--quick`'s: few, shallow depths and a tiny fine-tuning run
    "distance": dict(depths=(4, 8), dim=4, families=("iid",)),
    "adjoint": dict(depths=(4, 8), dim=4, families=("smooth",)),
    "linear": dict(depths=(4, 8), reference_depth=16, iterations=40),
    "memory": dict(depths=(16, 32)),
    "finetune": dict(depth=8, width=16, pretrain=20, iterations=20, seeds=(0, 1)),
}


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
        None,
        "folder with the official MNIST archives, for fine-tuning (default: "
        "$ODENESS_MNIST_DIR)",
    )
    quick: bool = option(
        False, "smoke test: few, shallow depths and a tiny fine-tuning run"
    )

    @property
    def folder(self) -> Path:
        return Path(self.out or "results/resnet-ode")

    def run(self) -> str:
        results = run_all(
            self.folder, experiments=self.only, quick=self.quick, data_dir=self.data_dir
        )
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
    if unknown := [e for e in experiments if e not in EXPERIMENTS]:
        raise ValueError(
            f"unknown experiment {unknown[0]!r}; expected some of {', '.join(EXPERIMENTS)}"
        )
    out = files.check_folder(out_dir, "output folder")
    spec, spec_path = {"quick": quick}, out / "resnet_ode.json"  # checked when reused
    saved = files.read_json(spec_path) if spec_path.exists() else spec
    if (difference := files.first_difference(saved, spec)) is not None:
        raise ValueError(
            f"{out} holds the experiments of another run ({difference}); choose another "
            "folder"
        )
    needs_mnist = "finetune" in experiments and not (out / "finetune.jsonl").exists()
    mnist = load_dataset("mnist", data_dir=data_dir) if needs_mnist else None  # fails early
    with files.folder_lock(out, "output folder"):
        files.write_json(spec_path, spec)
        results = {}
        summary = ["# ResNet ↔ ODE (Sander et al., NeurIPS 2022)", ""]
        for name in EXPERIMENTS:
            path = out / f"{name}.jsonl"
            odeness.raise_if_stopped(
                f"before the {name} experiment: {out} keeps the finished ones", folder=out
            )
            if name in experiments and path.exists():
                log(f"{name}: reusing {path}")
            elif name in experiments:
                start = time.perf_counter()
                log(f"{name}: running")
                rows_of, arguments = _FULL[name]
                arguments = _QUICK[name] if quick else arguments
                data = {"data": mnist} if name == "finetune" else {}
                with jax.enable_x64(name != "finetune"):  # see the module docstring
                    files.write_jsonl(path, rows_of(**arguments, **data))
                log(f"{name}: done in {time.perf_counter() - start:.0f} s")
            if path.exists():
                results[name] = files.read_jsonl(path)
                if results[name]:  # an empty experiment has no section
                    table = _report(name, results[name], out)
                    summary += [f"## {_TITLES[name]}", "", *table, ""]
        files.atomic_write_text(out / "summary.md", "\n".join(summary))
    return results
