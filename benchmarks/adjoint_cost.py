"""Adjoint: training by backpropagation through the solver against the continuous
adjoint (`adjoint="backsolve"`, diffrax's `BacksolveAdjoint`) at Euler 16 and 128 steps:
time per iteration (alternating, medians), function evaluations forward and backward
(checked against a counting field by the tests) and XLA's temp bytes of one gradient.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

import odeness
from benchmarks._timing import alternate, chunk_runner
from odeness._solvers import backward_nfe, nfe
from odeness._train_step import loss_fn
from odeness.resnet_ode import compiled_memory


def one(steps: int, length: int, rounds: int) -> dict:
    data = odeness.load_dataset("sphere2")
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    runs, rows = {}, {}
    for name in ("backprop", "backsolve"):
        config = odeness.TrainConfig(
            seeds=(0,), dataset="sphere2", solver="euler", steps=steps, adjoint=name
        )
        chunk = chunk_runner(config, data, length=length)
        runs[name] = chunk.timed
        integ = config.integrator()
        model = eqx.combine(jax.tree.map(lambda a: a[0], chunk.state.params), chunk.static)
        params, model_static = eqx.partition(model, eqx.is_array)

        def loss(params, xb, yb, model_static=model_static, integ=integ):
            return loss_fn(eqx.combine(params, model_static), integ, xb, yb)[0]

        memory = compiled_memory(jax.grad(loss), params, x[:128], y[:128])
        primal, vjps = backward_nfe(integ.solver, steps, adjoint=integ.adjoint)
        rows[name] = {
            "forward_nfe": nfe(integ.solver, steps),
            "backward_evaluations": primal,
            "backward_vjps": vjps,
            "gradient_temp_mib": round(memory["temp_bytes"] / 2**20, 3),
        }
    for name, t in alternate(runs, rounds).items():
        rows[name]["ms_per_iteration"] = round(t / length * 1e3, 3)
    return {
        "setting": f"spheres 2-D, Euler {steps} steps, batch 128, C=32, 1 seed",
        **rows,
        "time_ratio": round(
            rows["backsolve"]["ms_per_iteration"] / rows["backprop"]["ms_per_iteration"], 3
        ),
    }


def run(*, quick: bool, rounds: int) -> dict:
    length, rounds = (20, 2) if quick else (50, rounds)
    return {"rows": [one(steps, length, rounds) for steps in (16, 128)]}


def report(result: dict) -> list[str]:
    lines = []
    for r in result["rows"]:
        parts = [
            f"{name}: {r[name]['ms_per_iteration']:.2f} ms/it, NFE forward "
            f"{r[name]['forward_nfe']} + backward {r[name]['backward_evaluations']} "
            f"evaluations and {r[name]['backward_vjps']} VJPs, gradient temp "
            f"{r[name]['gradient_temp_mib']:.2f} MiB"
            for name in ("backprop", "backsolve")
        ]
        lines.append(
            f"{r['setting']}: " + "; ".join(parts) + f"; time ratio {r['time_ratio']:.2f}"
        )
    return lines
