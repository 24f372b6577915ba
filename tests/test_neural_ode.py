"""Any Neural ODE: `NeuralODE`, save times, metrics, and the toolkit on a user's model."""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odeness
from odeness._metrics import as_metric
from odeness.data import Dataset


def growth(t, y, args):
    """`dy/dt = y`: the exact flow to t = 1 multiplies by e."""
    return y


EULER4 = (5 / 4) ** 4  # Euler with 4 steps on dy/dt = y from y = 1


class Scale(eqx.Module):
    """A batched linear map `y ↦ w · y` (an encoder or decoder of one's own)."""

    w: jax.Array

    def __call__(self, y):
        return self.w * y


def euler(steps, **kw):
    return odeness.Integrator(odeness.solver("euler"), steps=steps, **kw)


# --- NeuralODE and save times.


def test_neural_ode_assembles_encoder_augment_args_and_decoder():
    def field(t, y, args):  # time-dependent, reads its args
        return args * t * y

    def decoder(y):
        return y[:, :1] + y[:, 1:].sum(1, keepdims=True)

    model = odeness.NeuralODE(
        field,
        encoder=Scale(jnp.asarray(2.0)),
        decoder=decoder,
        augment=2,
        args=jnp.asarray(3.0),
    )
    x = jnp.array([[1.0], [-0.5]])
    y0 = model.initial_state(x)
    assert y0.shape == (2, 3) and np.allclose(y0, [[2, 0, 0], [-1, 0, 0]])
    out, stats = model(x, odeness.Integrator(odeness.solver("rk4"), steps=64))
    # y' = 3 t y: y(1) = y0 · e^{3/2}; the augmented zeros stay zero.
    np.testing.assert_allclose(out[:, 0], 2 * x[:, 0] * math.exp(1.5), rtol=1e-5)
    assert int(stats.nfe) == 4 * 64
    np.testing.assert_allclose(model.vector_field(0.5, y0, None), field(0.5, y0, 3.0))


def test_save_times_on_the_grid_are_the_iterates_and_between_them_interpolate():
    integ = euler(4)
    y0 = jnp.ones((3, 2))
    ys, _ = odeness.solve(growth, y0, integ, ts=jnp.array([0.25, 0.5, 1.0]))
    assert ys.shape == (3, 3, 2)
    np.testing.assert_allclose(ys[:, 0, 0], [1.25, 1.25**2, EULER4], rtol=1e-6)
    # Between two Euler steps: diffrax's linear interpolation of the iterates.
    mid, _ = odeness.solve(growth, y0, integ, ts=jnp.array([0.125]))
    np.testing.assert_allclose(mid[0, 0, 0], 1.125, rtol=1e-6)
    per_row, _ = odeness.solve(
        growth, y0, euler(4, per_sample=True), ts=jnp.array([0.25, 1.0])
    )
    np.testing.assert_allclose(per_row, ys[jnp.array([0, 2])], rtol=1e-6)
    # A model with save times outputs (batch, T, ...).
    model = odeness.NeuralODE(growth, ts=jnp.array([0.5, 1.0]))
    out, _ = model(jnp.ones((5, 1)), integ)
    assert out.shape == (5, 2, 1) and np.allclose(out[0, :, 0], [1.5625, EULER4])


@pytest.mark.parametrize(
    "ts, message",
    [
        ([0.5, 0.25], "must run from t0 = 0 towards t1 = 1, got 0.5 then 0.25"),
        ([0.5, 0.5], "strictly increasing (or strictly decreasing, for a solve backwards"),
        ([0.2, 0.5, 0.4], "got 0.5 then 0.4"),
        ([0.2, 1.5], "save time 1.5 lies outside [t0, t1] = [0, 1]"),
        ([-0.1], "save time -0.1 lies outside"),
        ([], "non-empty 1-D"),
        ([[0.1, 0.2]], "non-empty 1-D array, got shape (1, 2)"),
        ([0.1, float("nan")], "must be finite"),
    ],
)
def test_bad_save_times_are_one_line_errors(ts, message):
    with pytest.raises(ValueError, match=None) as info:
        odeness.solve(growth, jnp.ones((1, 1)), euler(2), ts=ts)
    assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match=None) as info:  # when built, or when solved
        odeness.NeuralODE(growth, ts=ts)(jnp.ones((1, 1)), euler(2))
    assert message in str(info.value)


def test_neural_ode_refuses_bad_parts():
    with pytest.raises(ValueError, match="augment must be an integer >= 0, got -1"):
        odeness.NeuralODE(growth, augment=-1)
    with pytest.raises(ValueError, match="field must be callable"):
        odeness.NeuralODE(3.0)


# --- Metrics.


def test_metric_names_directions_and_errors():
    assert as_metric("accuracy").higher_is_better
    mse = as_metric("mse")
    assert not mse.higher_is_better and mse.degradation(1.0, 1.5) == 0.5
    assert float(mse.scale(jnp.array([[1.0, 3.0]]))) == 5.0  # the targets' mean square
    with pytest.raises(
        ValueError, match="unknown metric 'mae'; expected one of accuracy, mse"
    ):
        as_metric("mae")
    with pytest.raises(ValueError, match="has no direction; wrap it as odeness.Metric"):
        as_metric(lambda o, t: 0.0)  # pyright: ignore[reportArgumentType]
    with pytest.raises(
        ValueError, match="metric 'mae' needs a direction: higher_is_better"
    ):
        odeness.Metric(lambda o, t: 0.0, name="mae")
    with pytest.raises(ValueError, match="metric 'mae': scale must be a number > 0"):
        odeness.Metric(lambda o, t: 0.0, name="mae", higher_is_better=False, scale=0)
    with pytest.raises(
        ValueError, match="threshold must be a finite number >= 0 for metric 'mse'"
    ):
        as_metric("mse").check_threshold(-0.1)
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\], got 2"):
        as_metric("accuracy").check_threshold(2)


def _regression_model():
    return odeness.NeuralODE(growth)


def test_mse_swap_of_a_model_that_is_not_an_ode_and_of_one_that_is():
    x = jnp.ones((8, 1))
    train = euler(4)
    model = _regression_model()
    # Targets at Euler-4's answer: only the training solver fits them.
    fitted = jnp.full((8, 1), EULER4)
    swap = odeness.evaluate_solver_swap(model, train, x, fitted, metric="mse")
    assert swap.metric.name == "mse" and swap.train_score == pytest.approx(0, abs=1e-10)
    worst = (math.e - EULER4) ** 2  # rk4 at 8 steps is all but exact
    assert swap.max_gap == pytest.approx(worst, rel=1e-2)
    # Thresholds are in units of the targets' mean square, EULER4² = 5.96.
    assert swap.scale == pytest.approx(EULER4**2, rel=1e-6)
    assert swap.relative_gap == pytest.approx(worst / EULER4**2, rel=1e-2)
    assert not swap.is_ode(0.01) and swap.is_ode(0.02)  # 0.0767 / 5.96 = 0.0129
    assert swap.rows[0].to_json("mse")["mse"] == swap.rows[0].score
    # Targets at the exact flow: finer solvers only do better; the gap is <= 0.
    exact = jnp.full((8, 1), math.e)
    swap = odeness.evaluate_solver_swap(model, train, x, exact, metric="mse")
    assert swap.max_gap <= 0 and swap.is_ode(0.0)


def test_a_custom_metric_with_its_direction():
    x, target = jnp.ones((4, 1)), jnp.full((4, 1), EULER4)

    def swap_with(metric):
        return odeness.evaluate_solver_swap(
            _regression_model(), euler(4), x, target, metric=metric, solvers=("rk4",),
            factors=(1, 2),
        )  # fmt: skip

    mae = odeness.Metric(
        lambda o, t: jnp.mean(jnp.abs(o - t)), name="mae", higher_is_better=False
    )
    swap = swap_with(mae)
    assert swap.metric is mae and swap.train_score == pytest.approx(0, abs=1e-6)
    assert swap.max_gap == pytest.approx(math.e - EULER4, rel=1e-3) and swap.scale == 1
    # A larger-is-better score: the gap is a drop.
    neg = odeness.Metric(
        lambda o, t: -jnp.mean(jnp.abs(o - t)), name="neg", higher_is_better=True
    )
    swap = swap_with(neg)
    assert swap.max_gap == pytest.approx(math.e - EULER4, rel=1e-3)


def test_outputs_that_do_not_fit_the_targets_are_one_line_errors():
    x = jnp.ones((4, 1))
    with pytest.raises(
        ValueError,
        match=r"'mse' needs outputs and targets of the same shape, got outputs \(4, 1\) "
        r"and targets \(4, 2\)",
    ):
        odeness.score(_regression_model(), euler(2), x, jnp.ones((4, 2)), metric="mse")
    with pytest.raises(ValueError, match="metric 'accuracy' needs logits"):
        odeness.score(_regression_model(), euler(2), x, jnp.ones((4, 1)), metric="accuracy")
    with pytest.raises(ValueError, match="4 inputs and 3 targets"):
        odeness.score(_regression_model(), euler(2), x, jnp.ones((3, 1)), metric="mse")


def test_critical_step_size_follows_the_threshold_in_the_metrics_units():
    # Targets at the exact flow: finer solvers only help; every step size is an ODE.
    x, exact = jnp.ones((4, 1)), jnp.full((4, 1), math.e)
    results = [
        odeness.evaluate_solver_swap(_regression_model(), euler(n), x, exact, metric="mse")
        for n in (2, 4, 8)
    ]
    assert odeness.critical_step_size(results, 0.1) == 0.5
    # Targets fitted by each training solver (a discrete map per step size): the gap
    # shrinks with the step, so h* moves with the threshold.
    results = [
        odeness.evaluate_solver_swap(
            _regression_model(),
            euler(n),
            x,
            jnp.full((4, 1), (1 + 1 / n) ** n),
            metric="mse",
        )
        for n in (8, 16, 64)
    ]
    gaps = [r.relative_gap for r in results]
    assert gaps[0] > gaps[1] > gaps[2] > 0
    assert odeness.critical_step_size(results, gaps[2] * 1.01) == 1 / 64
    assert odeness.critical_step_size(results, gaps[0] * 1.01) == 1 / 8
    assert odeness.critical_step_size(results, gaps[2] * 0.99) is None
    with pytest.raises(ValueError, match="needs one metric"):
        acc = odeness.SwapResult(euler(8), odeness.Accuracy(), 1.0, 8, [], 0.0)
        odeness.critical_step_size([results[0], acc], 0.1)


# --- Diagnostics on a model with an encoder and a time-dependent field.


def test_diagnostics_apply_the_upstream_layer_first():
    def field(t, y, args):
        return jnp.stack([-y[:, 1], y[:, 0]], axis=1) * (1 + t)  # rotation, speeding up

    model = odeness.NeuralODE(field, encoder=Scale(jnp.asarray(2.0)))
    x = jnp.array([[1.0, 0.0], [0.0, 0.5]])
    integ = euler(8)
    ts, paths = odeness.diagnostics.trajectories(model, integ, x)
    assert np.allclose(paths[0], 2 * x) and len(ts) == 9
    direct = odeness.diagnostics.global_error(field, integ, 2 * x)
    np.testing.assert_allclose(
        odeness.diagnostics.global_error(model, integ, x), direct, rtol=1e-6
    )
    # The round trip of a fine solve returns to the encoded state.
    fine = odeness.Integrator(odeness.solver("rk4"), steps=64)
    assert np.max(odeness.diagnostics.round_trip_error(model, fine, x)) < 1e-4
    assert np.max(odeness.diagnostics.round_trip_error(model, integ, x)) > 1e-3
    fan = odeness.diagnostics.lady_windermere_fan(model, integ, x[:1], reference_steps=64)
    # The exact curve from the input ends at the exact solution: time enters the field.
    exact = odeness.solve(field, 2 * x[:1], fine)[0]
    np.testing.assert_allclose(fan.fan[0, -1], exact, rtol=1e-4)
    dets = odeness.diagnostics.step_determinants(model, integ, x)
    assert dets.sign.shape == (8, 2) and np.all(dets.sign > 0)
    with pytest.raises(ValueError, match="need an AbstractODEModel"):
        odeness.diagnostics.trajectories(3.0, integ, x)  # pyright: ignore[reportArgumentType]


# --- odeness.train with a model and loss of one's own.


def _trajectory_data(n=64, seed=0):
    """Damped rotation sampled at 4 times: inputs (n, 2), targets (n, 4, 2)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * n, 2)).astype(np.float32)
    ts = np.array([0.25, 0.5, 0.75, 1.0])
    a = np.array([[-0.1, -2.0], [2.0, -0.1]])
    w, v = np.linalg.eig(a)
    flows = [np.real(v @ np.diag(np.exp(w * t)) @ np.linalg.inv(v)) for t in ts]
    y = np.stack([x @ f.T for f in flows], axis=1).astype(np.float32)
    return Dataset(x[:n], y[:n], x[n:], y[n:], num_classes=0), jnp.asarray(ts)


class Linear2(eqx.Module):
    a: jax.Array

    def __call__(self, t, y, args):
        return y @ self.a.T


def test_train_takes_a_model_and_loss_of_ones_own(tmp_path):
    data, ts = _trajectory_data()

    def build(key):
        return odeness.NeuralODE(Linear2(0.1 * jax.random.normal(key, (2, 2))), ts=ts)

    def mse(outputs, targets):
        return jnp.mean((outputs - targets) ** 2)

    config = odeness.TrainConfig(
        dataset="sphere2",
        steps=8,
        seeds=(0, 1),
        iterations=60,
        batch_size=32,
        learning_rate=3e-2,
        log_every=20,
        checkpoint_every=20,
    )
    own: dict[str, Any] = dict(
        data=data, loss=mse, metric="mse", progress=False, run_dir=tmp_path / "run"
    )
    result = odeness.train(config, model=build, **own)
    first, last = result.metrics[0].to_json(), result.metrics[-1].to_json()
    assert "train_mse" in last and "train_accuracy" not in last
    assert last["train_mse"] < first["train_mse"] / 2  # it learns
    score, _ = odeness.score(
        result.model(0), result.integrator, data.x_test, data.y_test, metric="mse"
    )
    assert score < first["train_mse"]
    loaded = odeness.load_run(tmp_path / "run", data=data, model=build)
    np.testing.assert_array_equal(loaded.models.field.a, result.models.field.a)
    # Resuming a finished run with the same builder trains nothing and changes nothing;
    # without it (the run folder cannot hold a builder), it is refused in one line.
    again = odeness.train(config, model=build, **own)
    np.testing.assert_array_equal(again.models.field.a, result.models.field.a)
    with pytest.raises(ValueError, match=r"a model builder of your own \(given\)"):
        odeness.train(config, **own)


def test_own_loop_with_the_rule_and_a_user_metric():
    """`init` / `check` / `update` outside `odeness.train`, with the MSE compared."""
    data, ts = _trajectory_data()
    model = odeness.NeuralODE(Linear2(jnp.zeros((2, 2))), ts=ts)
    rule = odeness.StepSizeRule(
        odeness.solver("euler"), odeness.solver("midpoint"), interval=1
    )
    mse = as_metric("mse")
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    unit = mse.scale(y)  # the rule compares scores in threshold units

    def evaluate(integ):
        out, stats = model(x, integ)
        return mse.mean(out, y) / unit, jnp.max(stats.nfe), jnp.all(stats.success)

    state = rule.init(0.5)
    out, stats = model(x, rule.integrator(state))
    check = rule.check(state, evaluate, mse.mean(out, y) / unit, jnp.max(stats.nfe))
    # A zero field: every solver gives the inputs back, so the test and try solves score
    # what the training solve scores: an ODE, and the coarser try is kept.
    assert float(check.test_accuracy) == pytest.approx(float(check.train_accuracy))
    assert float(rule.update(state, check).dt) == pytest.approx(0.55)
