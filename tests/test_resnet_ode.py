"""odeness.resnet_ode: residual stages, distance to the ODE, smoothness, the adjoint."""

from pathlib import Path
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from archives import accept, write_idx_set
from scripts import Script

from experiments.sander2022.discretisation import finetune_rows, loglog_slope
from odeness.data import Dataset, OdenessMnist
from odeness.resnet_ode import (
    IID,
    AbstractStageMethod,
    EulerStep,
    HeunStep,
    LinearInTheta,
    LinearMap,
    MLPBlock,
    ResidualStage,
    Smooth,
    TanhLayer,
    depth_distance,
    fit_linear_resnet,
    gradient_memory,
    ode_distance,
    smoothness,
)

REPO = Path(__file__).resolve().parents[1]
STEPS = {"euler": EulerStep(), "heun": HeunStep()}


DEPTHS = (8, 32)

resnet_ode_cli = Script("resnets")


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _grads(stage, x, y):
    def loss(w, x):
        out = ResidualStage(stage.residual, w, stage.method, stage.adjoint)(x)
        return 0.5 * jnp.sum((out - y) ** 2)

    return jax.jit(jax.grad(loss, argnums=(0, 1)))(stage.weights, x)


def _relative_error(stage, x, y) -> float:
    """The adjoint's relative gradient error on the first weight tensor."""
    exact = _grads(stage, x, y)
    adjoint = _grads(
        ResidualStage(stage.residual, stage.weights, stage.method, adjoint=True), x, y
    )
    e, a = jax.tree.leaves(exact[0])[0], jax.tree.leaves(adjoint[0])[0]
    return float(jnp.linalg.norm(a - e) / jnp.linalg.norm(e))


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_stage_is_the_recursion(method, getkey):
    f = TanhLayer(3)
    stage = ResidualStage.init(f, 5, key=getkey(), family=IID(), method=STEPS[method])
    x = jax.random.normal(getkey(), (4, 3))
    w = stage.weights
    z = x
    for n in range(5):
        k1 = f(z, w[n])
        z = z + k1 / 5 if method == "euler" else z + (k1 + f(z + k1 / 5, w[n + 1])) / 10
    np.testing.assert_allclose(stage(x), z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stage.trajectory(x)[-1], z, rtol=1e-5, atol=1e-6)
    assert stage.depth == 5 and stage.weights.shape[0] == 5 + (method == "heun")


class _Midpoint(AbstractStageMethod):
    """A user's own method: explicit midpoint, the weights averaged at mid-step."""

    extra_weights: ClassVar[int] = 1

    def step(self, f, x, a, b, h):
        mid = jax.tree.map(lambda u, v: (u + v) / 2, a, b)
        return x + h * f(x + (h / 2) * f(x, a), mid)

    def reverse(self, f, y, a, b, h):
        mid = jax.tree.map(lambda u, v: (u + v) / 2, a, b)
        return y - h * f(y - (h / 2) * f(y, b), mid)


def test_a_method_of_ones_own(getkey):
    f = TanhLayer(3)
    stage = ResidualStage.init(f, 4, key=getkey(), method=_Midpoint())
    x = jax.random.normal(getkey(), (2, 3))
    w, z = stage.weights, x
    for n in range(4):
        z = z + f(z + f(z, w[n]) / 8, (w[n] + w[n + 1]) / 2) / 4
    assert stage.depth == 4 and w.shape[0] == 5
    np.testing.assert_allclose(stage(x), z, rtol=1e-5, atol=1e-6)
    adjoint = ResidualStage(f, w, _Midpoint(), adjoint=True)
    g = jax.grad(lambda s: jnp.sum(s(x)))(adjoint)
    assert g.weights.shape == w.shape and bool(jnp.all(jnp.isfinite(g.weights)))


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_zero_residual_adjoint_equals_backprop(method, getkey):
    # f = tanh(W x) with W = 0 is the zero residual: the reverse steps reconstruct the
    # activations exactly, so the adjoint is exact backprop (the gradient is not zero).
    stage = ResidualStage(
        TanhLayer(4), jnp.zeros((16 + (method == "heun"), 4, 4)), method=STEPS[method]
    )
    x, y = jax.random.normal(getkey(), (8, 4)), jax.random.normal(getkey(), (8, 4))
    exact = _grads(stage, x, y)
    adjoint = _grads(ResidualStage(stage.residual, stage.weights, stage.method, True), x, y)
    assert float(jnp.abs(exact[0]).max()) > 0.1
    for e, a in zip(jax.tree.leaves(exact), jax.tree.leaves(adjoint), strict=True):
        np.testing.assert_array_equal(a, e)


@pytest.mark.slow
def test_adjoint_error_converges_at_the_predicted_rates(x64, getkey):
    f = MLPBlock(4, 8)
    x, y = jax.random.normal(getkey(), (16, 4)), jax.random.normal(getkey(), (16, 4))
    key = getkey()
    slopes, errors = {}, {}
    for method in ("euler", "heun"):
        for name, family in (("smooth", Smooth()), ("iid", IID())):
            errs = [
                _relative_error(
                    ResidualStage.init(f, n, key=key, family=family, method=STEPS[method]),
                    x,
                    y,
                )
                for n in DEPTHS
            ]
            slopes[method, name], errors[method, name] = loglog_slope(DEPTHS, errs), errs
    assert -1.4 < slopes["euler", "smooth"] < -0.8, slopes
    assert slopes["heun", "smooth"] < -1.8, slopes  # about -3 measured (make resnet-ode)
    # i.i.d. weights: Heun gains nothing in rate over Euler.
    assert slopes["heun", "iid"] > slopes["euler", "iid"] - 0.3, slopes
    assert errors["heun", "smooth"][-1] < errors["heun", "iid"][-1] / 30, errors


def test_adjoint_composes_with_grad_jit_and_vmap(getkey):
    stage = ResidualStage.init(
        MLPBlock(3, 5), 12, key=getkey(), method=HeunStep(), adjoint=True
    )
    xs = jax.random.normal(getkey(), (6, 2, 3))

    def loss(stage, x):
        return jnp.sum(jnp.sin(stage(x)))

    eager = jax.grad(loss)(stage, xs[0])
    jitted = eqx.filter_jit(jax.grad(loss))(stage, xs[0])
    for e, j in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(j, e, rtol=1e-5, atol=1e-6)
    per_example = jax.vmap(jax.grad(loss), in_axes=(None, 0))(stage, xs)
    for i in (0, 5):
        one = jax.grad(loss)(stage, xs[i])
        for p, o in zip(jax.tree.leaves(per_example), jax.tree.leaves(one), strict=True):
            np.testing.assert_allclose(p[i], o, rtol=1e-5, atol=1e-6)
    # The input's gradient goes through the custom VJP too.
    gx = jax.grad(lambda x: loss(stage, x))(xs[0])
    backprop = ResidualStage(stage.residual, stage.weights, HeunStep(), adjoint=False)
    np.testing.assert_allclose(
        gx, jax.grad(lambda x: loss(backprop, x))(xs[0]), rtol=0.05, atol=1e-3
    )


@pytest.mark.slow
def test_distance_to_the_ode(x64, getkey):
    x = jax.random.normal(getkey(), (16, 8))
    key = getkey()

    def distances(f, family, method="euler", depths=DEPTHS):
        return [
            float(ode_distance(ResidualStage.init(f, n, key=key, family=family,
                                                   method=STEPS[method]), x, substeps=4))
            for n in depths
        ]  # fmt: skip

    assert -1.2 < loglog_slope(DEPTHS, distances(TanhLayer(8), Smooth())) < -0.8
    # Heun's stage is second order in depth for smooth weights.
    assert loglog_slope(DEPTHS, distances(TanhLayer(8), Smooth(), "heun")) < -1.7
    # i.i.d. weights, f nonlinear in θ: no convergence (a plateau, 0.23 -> 0.20
    # measured from N = 16 to 64) ...
    iid = distances(TanhLayer(8), IID(), depths=(16, 64))
    assert iid[1] > 0.7 * iid[0], iid
    # ... but f linear in θ telescopes: the gap vanishes like 1/N anyway.
    assert loglog_slope(DEPTHS, distances(LinearInTheta(8), IID())) < -0.8


def test_smoothness(getkey):
    key = getkey()
    smooth = [float(smoothness(ResidualStage.init(TanhLayer(4), n, key=key)))
              for n in (16, 64)]  # fmt: skip
    iid = [float(smoothness(ResidualStage.init(TanhLayer(4), n, key=key, family=IID())))
           for n in (16, 64)]  # fmt: skip
    assert smooth[1] < 1.2 * smooth[0]
    assert iid[1] > 3 * iid[0]
    # A constant stage has S_N = 0; a single jump of size 1 gives S_N = N.
    w = jnp.zeros((8, 2, 2)).at[4:, 0, 0].set(1.0)
    assert float(smoothness(ResidualStage(TanhLayer(2), w))) == pytest.approx(8.0)


def test_linear_resnet_stays_smooth_under_training(x64, getkey):
    x = jax.random.normal(getkey(), (64, 3))
    y = x @ jax.scipy.linalg.expm(0.3 * jax.random.normal(getkey(), (3, 3))).T
    fits = {
        n: fit_linear_resnet(n, x, y, iterations=60, learning_rate=0.5, log_every=20)
        for n in (4, 8, 16, 32)
    }
    s_max = {}
    for n, fit in fits.items():
        assert fit.loss[-1] < 0.01 * fit.loss[0]
        s = [float(smoothness(ResidualStage(LinearMap(3), w))) for w in fit.weights]
        assert s[0] == 0.0
        s_max[n] = max(s)
    assert s_max[32] < 1.5 * s_max[4] + 1e-9, s_max
    # Depths discretise one limit: the distance to the deeper reference shrinks with N.
    ref = ResidualStage(LinearMap(3), fits[32].weights[-1])
    d = [float(depth_distance(ResidualStage(LinearMap(3), fits[n].weights[-1]), ref, x))
         for n in (4, 8, 16)]  # fmt: skip
    assert d[2] < d[1] < d[0]


def test_adjoint_memory_is_flat_in_depth(getkey):
    x = jax.random.normal(getkey(), (64, 16))
    mem = {
        (adjoint, n): gradient_memory(
            ResidualStage.init(MLPBlock(16, 16), n, key=getkey(), adjoint=adjoint), x
        )["temp_bytes"]
        for adjoint in (False, True)
        for n in (16, 256)
    }
    assert mem[True, 256] <= 1.05 * mem[True, 16], mem
    assert mem[False, 256] > 8 * mem[False, 16], mem
    assert mem[True, 256] < mem[False, 256] / 10, mem


def test_bad_arguments(getkey):
    with pytest.raises(TypeError, match="method must be an AbstractStageMethod .*'rk4'"):
        ResidualStage(TanhLayer(2), jnp.zeros((3, 2, 2)), method="rk4")  # pyright: ignore
    with pytest.raises(TypeError, match="abstract"):
        AbstractStageMethod()  # pyright: ignore
    with pytest.raises(ValueError, match="depth must be an integer >= 1, got 0"):
        ResidualStage.init(TanhLayer(2), 0, key=getkey())
    with pytest.raises(ValueError, match="at least 2 weight sets"):
        ResidualStage(TanhLayer(2), jnp.zeros((1, 2, 2)), method=HeunStep())
    with pytest.raises(ValueError, match="multiple of the depth 3"):
        a = ResidualStage(TanhLayer(2), jnp.zeros((3, 2, 2)))
        depth_distance(
            a, ResidualStage(TanhLayer(2), jnp.zeros((8, 2, 2))), jnp.ones((1, 2))
        )
    with pytest.raises(ValueError, match="divisible by log_every"):
        fit_linear_resnet(4, jnp.ones((2, 2)), jnp.ones((2, 2)), iterations=10,
                          learning_rate=0.1, log_every=3)  # fmt: skip


def test_finetune_rows_on_a_small_data_set(getkey):
    rng = np.random.default_rng(0)
    x = rng.random((200, 4, 4, 1), dtype=np.float32)
    y = (x.reshape(200, -1).mean(-1) > 0.5).astype(np.int32)
    data = Dataset(x[:150], y[:150], x[150:], y[150:], 2)
    rows = finetune_rows(data=data, depth=8, width=8, pretrain=30, iterations=30,
                         batch=32, seeds=(0, 1))  # fmt: skip
    assert [(r["backward"], r["seed"]) for r in rows] == [
        ("backprop", 0), ("backprop", 1), ("adjoint", 0), ("adjoint", 1)
    ]  # fmt: skip
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    assert rows[2]["temp_bytes"] < rows[0]["temp_bytes"]


def test_cli_quick_runs_all_five(tmp_path, capsys, monkeypatch, offline):
    # Fine-tuned on a small MNIST in the official format (`test_images.py` reads the
    # real files), prepared into the test's own tfds folder.
    made = write_idx_set(tmp_path / "mnist", np.random.default_rng(0), train=256, test=64)
    accept(monkeypatch, OdenessMnist, made["digests"])
    monkeypatch.setenv("ODENESS_TFDS_DIR", str(tmp_path / "tfds"))
    out = tmp_path / "resnet_ode"
    args = ["--quick", "--out", str(out), "--data-dir", str(tmp_path / "mnist")]
    assert resnet_ode_cli.main(args) == 0
    for name in ("distance", "adjoint", "linear", "memory", "finetune"):
        assert (out / f"{name}.jsonl").exists(), name
    for name in ("distance", "adjoint", "linear", "memory"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
    summary = (out / "summary.md").read_text()
    assert "log-log slope" in summary and "Fine-tuning on MNIST" in summary
    # Run again: everything is reused, nothing recomputed.
    assert resnet_ode_cli.main(args) == 0
    assert capsys.readouterr().out.count("reusing") == 5


def test_cli_rejects_an_unknown_experiment(tmp_path, capsys):
    assert resnet_ode_cli.main(["--only", "bogus", "--out", str(tmp_path / "r")]) == 2
    assert "unknown experiment 'bogus'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
