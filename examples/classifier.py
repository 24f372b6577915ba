"""A classifier of one's own: an encoder, an augmented state, a plain optax loop.

An MLP encoder lifts each 2-D point of the concentric-spheres data set to 4 dimensions,
2 more are appended as zeros (an augmented Neural ODE), an MLP vector field moves the
state, and a linear decoder reads the class. The loop is a user's own (equinox and
optax, no odeness training code); odeness then answers whether each trained model is
an ODE: the solver swap, the critical step size, and the diagnostics of a report.

    python examples/classifier.py [--quick]
"""

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import odeness


class Batched(eqx.Module):
    """A per-example module applied to a batch."""

    module: eqx.Module

    def __call__(self, x):
        return jax.vmap(self.module)(x)  # pyright: ignore[reportArgumentType]


class Field(eqx.Module):
    mlp: eqx.nn.MLP

    def __call__(self, t, y, args):
        return jax.vmap(self.mlp)(y)


def build(key) -> odeness.NeuralODE:
    k1, k2, k3 = jax.random.split(key, 3)
    return odeness.NeuralODE(
        Field(eqx.nn.MLP(6, 6, 32, 1, jax.nn.tanh, key=k2)),
        encoder=Batched(eqx.nn.MLP(2, 4, 16, 1, jax.nn.tanh, key=k1)),
        decoder=Batched(eqx.nn.Linear(6, 2, key=k3)),
        augment=2,
    )


def fit(model, integ, x, y, *, iterations: int, key):
    """Adam on the cross-entropy, batches of 128: the user's own loop."""
    opt = optax.adam(1e-2)
    state = opt.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, state, xb, yb):
        def loss(m):
            logits, _ = m(xb, integ)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        value, grads = eqx.filter_value_and_grad(loss)(model)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state, value

    for i in range(iterations):
        idx = jax.random.choice(jax.random.fold_in(key, i), len(x), (128,), replace=False)
        model, state, value = step(model, state, x[idx], y[idx])
    return model, float(value)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few iterations: a smoke test")
    args = p.parse_args(argv)
    data = odeness.load_dataset("sphere2")
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    steps = (1, 2) if args.quick else (1, 2, 4, 8, 16)
    iterations = 30 if args.quick else 1500
    swaps, models = [], {}
    print("train steps | accuracy | max drop | ODE?")
    for n in steps:
        integ = odeness.Integrator(odeness.solver("euler"), steps=n)
        model, _ = fit(
            build(jax.random.key(0)),
            integ,
            x,
            y,
            iterations=iterations,
            key=jax.random.key(1),
        )
        swap = odeness.evaluate_solver_swap(model, integ, data.x_test, data.y_test)
        swaps.append(swap)
        models[n] = (model, integ)
        print(
            f"{n:11d} | {swap.train_score:8.3f} | {swap.max_gap:8.3f} | "
            f"{'yes' if swap.is_ode(0.1) else 'no'}"
        )
    print(f"critical step size h* = {odeness.critical_step_size(swaps, threshold=0.1)}")
    # The report's diagnostics, on the coarsest model: inside the ODE (after the encoder).
    model, integ = models[steps[0]]
    x_test = data.x_test[: 50 if args.quick else 300]
    _, paths = odeness.diagnostics.trajectories(model, integ, x_test)
    crossings = odeness.diagnostics.count_crossings(
        paths[..., :2]
    )  # a projection of the 6-D state
    folding = odeness.diagnostics.nonpositive_det_fraction(model, integ, x_test)
    error = odeness.diagnostics.global_error(model, integ, x_test)
    back = odeness.diagnostics.round_trip_error(model, integ, x_test)
    print(
        f"report, Euler {steps[0]} step(s): {crossings.num_pairs} crossing pairs in the "
        f"(y0, y1) projection, {100 * folding['steps']:.1f}% folding steps, global "
        f"error {error.mean():.3g}, round trip {back.mean():.3g}"
    )


if __name__ == "__main__":
    main()
