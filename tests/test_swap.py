import math

import equinox as eqx
import jax.numpy as jnp
import pytest

import odeness
from odeness._control import scaled_steps
from odeness._models import Linear


class Growth(eqx.Module):
    """dy/dt = y: Euler with n steps maps 1 to (1 + 1/n)^n, the exact flow to e."""

    def __call__(self, t, y, args=None):
        return y


def threshold_model(threshold: float) -> odeness.ODEClassifier:
    """Predicts class 1 iff the state at t = 1 exceeds `threshold`."""
    head = eqx.tree_at(
        lambda h: (h.weight, h.bias),
        Linear(1, 2, key=_key()),
        (jnp.array([[0.0], [1.0]]), jnp.array([0.0, -threshold])),
    )
    return odeness.ODEClassifier(Growth(), head)


def _key():
    import jax

    return jax.random.key(0)


def test_scaled_steps():
    assert [scaled_steps(2, f) for f in (0.5, 0.75, 1, 1.5, 2)] == [1, 2, 2, 3, 4]
    assert [scaled_steps(1, f) for f in (0.5, 0.75, 1, 1.5, 2)] == [1, 1, 1, 2, 2]
    assert [scaled_steps(128, f) for f in (0.5, 0.75, 1, 1.5, 2)] == [
        64,
        96,
        128,
        192,
        256,
    ]


def test_accuracy_counts_every_example_with_a_partial_last_batch():
    # 1001 inputs, 700 of them labelled as the model predicts: exactly 700/1001,
    # whatever the batch size (the authors' evaluation would under-report).
    model = threshold_model(0.0)
    x = jnp.linspace(-1, 1, 1001)[:, None]
    predicted = (x[:, 0] * math.e > 0).astype(jnp.int32)
    y = predicted.at[:301].set(1 - predicted[:301])
    integ = odeness.Integrator(odeness.solver("euler"), steps=2)
    for batch_size in (128, 1000, 5000):
        acc, nfe = odeness.score(model, integ, x, y, batch_size=batch_size)
        assert acc == 700 / 1001
        assert nfe == 2


def test_swap_arithmetic_on_a_model_with_a_known_answer():
    # Threshold 2.5 sits between Euler with 4 steps ((5/4)^4 = 2.44) and the exact
    # flow (e = 2.718): every label 0 is right for Euler-4 and wrong for anything finer.
    model = threshold_model(2.5)
    x, y = jnp.ones((10, 1)), jnp.zeros(10, dtype=jnp.int32)
    train = odeness.Integrator(odeness.solver("euler"), steps=4)
    ref = odeness.Integrator(odeness.solver("rk4"), steps=256)
    swap = odeness.evaluate_solver_swap(model, train, x, y, reference=ref)
    assert swap.train_score == 1.0 and swap.train_nfe == 4
    steps = [(r.setting.solver, r.setting.control) for r in swap.rows]
    assert steps[:5] == [("euler", odeness.Steps(n)) for n in (2, 3, 4, 6, 8)]
    assert steps[5:10] == [("midpoint", odeness.Steps(n)) for n in (2, 3, 4, 6, 8)]
    assert steps[-1] == ("rk4", odeness.Steps(256)) and swap.rows[-1].factor is None
    for r in swap.rows:
        control, solver = r.setting.control, r.setting.solver
        assert isinstance(control, odeness.Steps)
        n = control.n
        if solver == "euler":
            expected = 1.0 if (1 + 1 / n) ** n < 2.5 else 0.0
        else:
            expected = 0.0  # midpoint and RK4 are already close to e
        if solver == "midpoint" and n == 2:
            expected = 1.0 if (1 + 0.5 + 0.125) ** 2 < 2.5 else 0.0
        assert r.score == expected, r
        stages = {"euler": 1, "midpoint": 2, "rk4": 4}[solver]
        assert r.nfe == stages * n
        assert r.at_least_as_accurate == (n >= 4)
    assert swap.max_gap == 1.0


def test_an_ode_keeps_its_accuracy():
    # Threshold far from every solver's answer: an ODE model, no gap.
    swap = odeness.evaluate_solver_swap(
        threshold_model(1.5),
        odeness.Integrator(odeness.solver("euler"), steps=8),
        jnp.ones((4, 1)),
        jnp.ones(4, dtype=jnp.int32),
    )
    assert swap.train_score == 1.0 and swap.max_gap == 0.0


def test_adaptive_swap_scales_tolerances():
    model = threshold_model(2.0)
    train = odeness.Integrator(odeness.solver("dopri5"), rtol=1e-3, atol=1e-4)
    swap = odeness.evaluate_solver_swap(
        model,
        train,
        jnp.ones((3, 1)),
        jnp.ones(3, dtype=jnp.int32),
        solvers=("dopri5",),
        factors=(0.1, 1, 10),
    )
    tolerances = [r.setting.control for r in swap.rows]
    rows = [t for t in tolerances if isinstance(t, odeness.Tolerances)]
    assert len(rows) == len(tolerances)
    assert [t.rtol for t in rows] == pytest.approx([1e-4, 1e-3, 1e-2])
    assert [t.atol for t in rows] == pytest.approx([1e-5, 1e-4, 1e-3])
    assert [r.at_least_as_accurate for r in swap.rows] == [True, True, False]
    with pytest.raises(ValueError, match="solver 'rk4' has no error estimate"):
        odeness.evaluate_solver_swap(
            model, train, jnp.ones((3, 1)), jnp.ones(3, dtype=jnp.int32), solvers=("rk4",)
        )


def test_swap_rejects_bad_arguments():
    model = threshold_model(2.0)
    train = odeness.Integrator(odeness.solver("euler"), steps=2)
    x, y = jnp.ones((3, 1)), jnp.ones(3, dtype=jnp.int32)
    with pytest.raises(
        ValueError, match=r"factors must be finite numbers > 0, got \(0\.0,"
    ):
        odeness.evaluate_solver_swap(model, train, x, y, factors=(0.0, 1.0))
    with pytest.raises(ValueError, match="unknown solver 'rk45'"):
        odeness.evaluate_solver_swap(model, train, x, y, solvers=("rk45",))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        odeness.score(model, train, x, y, batch_size=0)


def test_critical_step_size():
    gaps = {1.0: [0.5, 0.4], 0.5: [0.3], 0.25: [0.05, 0.0], 0.125: [0.0, 0.02]}
    assert odeness.critical_step_size(gaps, threshold=0.1) == 0.25
    assert odeness.critical_step_size(gaps, threshold=0.45) == 1.0
    # Every step size up to h* must pass: a failing fine step size caps h*.
    assert odeness.critical_step_size({0.125: [0.3], 0.25: [0.0]}, threshold=0.1) is None
    assert odeness.critical_step_size({0.1: [0.0], 0.2: [0.5], 0.4: [0.0]}, 0.1) == 0.1
    with pytest.raises(ValueError, match="at least one result"):
        odeness.critical_step_size({}, threshold=0.1)
    for bad in (float("nan"), -0.1, 1.5):
        with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\], got"):
            odeness.critical_step_size(gaps, threshold=bad)


def test_critical_step_size_from_swap_results():
    x, y = jnp.ones((4, 1)), jnp.zeros(4, dtype=jnp.int32)
    model = threshold_model(2.5)
    results = [
        odeness.evaluate_solver_swap(
            model, odeness.Integrator(odeness.solver("euler"), steps=n), x, y
        )
        for n in (1, 2, 4, 8, 16)
    ]
    # n = 1, 2, 4 predict label 0 (gap 1 under finer solvers); n = 8, 16 predict 1 with
    # every solver (accuracy 0 everywhere, gap 0): h* = 1/16 ... 1/8 pass.
    assert [r.max_gap for r in results] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert odeness.critical_step_size(results, threshold=0.1) == 0.125
    assert results[0].train.step_size == 1.0
