"""The paper's step-size adaptation inside a training loop of one's own.

`odeness.StepSizeRule` is a pure object: `init` gives its state, `integrator(state)` the
training solver now, and every `interval` iterations `check` (a test and a trial solve on
the batch, through an `evaluate` function you write) and `update` move the step size.
Here it trains a `NeuralODE` classifier (an encoder, two augmented dimensions) on
concentric spheres, starting from one Euler step, in a plain equinox/optax loop; the
step size follows the rule, and the final model is checked with the solver swap.

    python examples/adaptation_loop.py [--quick]
"""

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import odeness


class Field(eqx.Module):
    mlp: eqx.nn.MLP

    def __call__(self, t, y, args):
        return jax.vmap(self.mlp)(y)


class Batched(eqx.Module):
    """A per-example module applied to a batch."""

    module: eqx.Module

    def __call__(self, x):
        return jax.vmap(self.module)(x)  # pyright: ignore[reportArgumentType]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few iterations: a smoke test")
    args = p.parse_args(argv)
    data = odeness.load_dataset("sphere2")
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    model = odeness.NeuralODE(
        Field(eqx.nn.MLP(4, 4, 32, 1, jax.nn.tanh, key=k1)),
        encoder=Batched(eqx.nn.MLP(2, 2, 16, 1, jax.nn.tanh, key=k2)),
        decoder=Batched(eqx.nn.Linear(4, 2, key=k3)),
        augment=2,
    )
    rule = odeness.StepSizeRule(
        odeness.solver("euler"), odeness.solver("midpoint"), interval=25
    )
    iterations = 50 if args.quick else 2000
    opt = optax.adam(1e-2)
    opt_state = opt.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, opt_state, rule_state, xb, yb, due):
        integ = rule.integrator(rule_state)  # a traced step size: no recompiles

        def loss(m):
            logits, stats = m(xb, integ)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
            return ce, (jnp.mean(jnp.argmax(logits, -1) == yb), jnp.max(stats.nfe))

        (_, (acc, nfe)), grads = eqx.filter_value_and_grad(loss, has_aux=True)(model)

        def evaluate(test_integ):  # the check's solves, on the same batch
            logits, stats = model(xb, test_integ)
            return (
                jnp.mean(jnp.argmax(logits, -1) == yb),
                jnp.max(stats.nfe),
                jnp.all(stats.success),
            )

        rule_state, _ = odeness.adapt_step(rule, rule_state, due, evaluate, acc, nfe)
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, rule_state, acc

    rule_state = rule.init(1.0)  # one Euler step
    for i in range(iterations):
        idx = jax.random.choice(jax.random.key(i), len(x), (128,), replace=False)
        due = jnp.asarray(i % rule.interval == 0)
        model, opt_state, rule_state, acc = step(
            model, opt_state, rule_state, x[idx], y[idx], due
        )
        if i % (iterations // 5) == 0 or i == iterations - 1:
            print(
                f"iteration {i:4d}: h = {float(rule.value(rule_state)):.4f}, "
                f"batch accuracy {float(acc):.3f}"
            )
    final = rule.final_integrator(rule_state)
    swap = odeness.evaluate_solver_swap(model, final, data.x_test, data.y_test)
    print(
        f"final: {final.steps} Euler steps, test accuracy {swap.train_score:.3f}, max "
        f"drop under more accurate solvers {swap.max_gap:.3f} "
        f"({'an ODE' if swap.is_ode(rule.threshold) else 'not an ODE'})"
    )


if __name__ == "__main__":
    main()
