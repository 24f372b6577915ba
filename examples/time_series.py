"""Is a Neural ODE fitted to sampled trajectories an ODE? The MSE solver swap.

A damped oscillator, sampled at four times, is fitted by a Neural ODE (an MLP vector
field, written for one state as diffrax writes it) trained with Euler at several step
counts. Each trained model is then solved with more accurate solvers: a model that is an
ODE keeps its squared error; one that only works with its training solver does not. The
critical step size is the coarsest step that still gives an ODE. Beside the swap's
threshold, the two convergence tests: self-convergence (are the outputs in Euler's
asymptotic regime?) and convergence against the targets (does the error stay as the
steps are refined?).

    python examples/time_series.py [--quick]
"""

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import odeness

TS = (0.25, 0.5, 0.75, 1.0)


def oscillator(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` initial states of `x'' = −(2π)² x − 0.5 x'` and their states at `TS`."""
    a = np.array([[0.0, 1.0], [-((2 * np.pi) ** 2), -0.5]])
    w, v = np.linalg.eig(a)
    flows = [np.real(v @ np.diag(np.exp(w * t)) @ np.linalg.inv(v)) for t in TS]
    x = np.random.default_rng(seed).normal(size=(n, 2)).astype(np.float32)
    return x, np.stack([x @ f.T for f in flows], axis=1).astype(np.float32)


class Field(eqx.Module):
    """An MLP vector field of one state `y` of shape (2,)."""

    mlp: eqx.nn.MLP

    def __call__(self, t, y, args):
        return self.mlp(y)


def build(key):
    field = Field(eqx.nn.MLP(2, 2, 64, 2, jax.nn.tanh, key=key))
    return odeness.NeuralODE(field, ts=TS, batched=False)


def mse(outputs, targets):
    return jnp.mean((outputs - targets) ** 2)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few iterations: a smoke test")
    args = p.parse_args(argv)
    x_train, y_train = oscillator(512, seed=0)
    x_test, y_test = oscillator(256, seed=1)
    data = odeness.Dataset(x_train, y_train, x_test, y_test, num_classes=0)
    steps = (2, 4) if args.quick else (2, 4, 8, 16, 32)
    iterations = 50 if args.quick else 3000
    solvers, factors = (
        (("rk4",), (1, 2)) if args.quick else (("euler", "midpoint", "rk4"), (1, 2, 4))
    )
    results = []
    print(
        "train steps | MSE (training solver) | max increase | ÷ targets' power | ODE? "
        "| asymptotic | converges"
    )
    for n in steps:
        config = odeness.TrainConfig(
            seeds=(0,),
            dataset=None,
            steps=n,
            iterations=iterations,
            batch_size=128,
            learning_rate=3e-3,
            log_every=100,
            checkpoint_every=100,
        )
        run = odeness.train(
            config, data=data, model=build, loss=mse, metric="mse", progress=False
        )
        swap = odeness.evaluate_solver_swap(
            run.model(0),
            run.integrator,
            x_test,
            y_test,
            metric="mse",
            solvers=solvers,
            factors=factors,
        )
        results.append(swap)
        own = odeness.self_convergence(run.model(0), run.integrator, x_test)
        targets = odeness.convergence_test(
            run.model(0), run.integrator, x_test, y_test, metric="mse"
        )
        print(
            f"{n:11d} | {swap.train_score:21.4f} | {swap.max_gap:12.4f} | "
            f"{swap.relative_gap:16.3f} | {_yes(swap.is_ode(0.1)):4} | "
            f"{_yes(own.asymptotic):10} | {_yes(targets.converges)}"
        )
    h_star = odeness.critical_step_size(results, threshold=0.1)
    print(
        f"critical step size h* = {h_star} (threshold 0.1: more accurate solvers may add "
        "at most a tenth of the targets' mean square to the squared error)"
    )


if __name__ == "__main__":
    main()
