"""Training step: one iteration on spheres 2-D (Euler, 16 steps, batch 128, C = 32)
through odeness (`Integrator` + `diffrax.diffeqsolve` inside the scanned, seed-vmapped
loop) against a bare `lax.scan` of the same arithmetic: the same field, head, loss,
batches and Adam update, with Euler written by hand as `z + h f(z)`. The two alternate,
repeatedly; the ratio of the medians is reported (target <= 1.3), for 1 and 5 seeds.
"""

import equinox as eqx
import jax
import optax

import odeness
from benchmarks._timing import alternate, chunk_runner
from odeness._batching import chunk_batch_indices
from odeness._train_step import TrainState


def bare_chunk(static, steps: int, opt, x_all, y_all, batch_size: int, length: int):
    """The reference: a hand-written Euler loop in `lax.scan`, nothing else."""
    h = 1.0 / steps

    def step(state, idx):
        x, y = x_all[idx], y_all[idx]

        def loss(params):
            model = eqx.combine(params, static)
            z = jax.lax.scan(
                lambda z, _: (z + h * model.field(None, z), None), x, None, length=steps
            )[0]
            return optax.softmax_cross_entropy_with_integer_labels(model.head(z), y).mean()

        value, grads = jax.value_and_grad(loss)(state.params)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.key, state.step + 1), value

    def run(state):
        idx = chunk_batch_indices(state.key, state.step, length, x_all.shape[0], batch_size)
        return jax.lax.scan(step, state, idx)

    return jax.jit(jax.vmap(run))


def one(seeds: int, steps: int, length: int, rounds: int) -> dict:
    config = odeness.TrainConfig(
        dataset="sphere2", solver="euler", steps=steps, seeds=tuple(range(seeds))
    )
    data = config.load_dataset()
    ours = chunk_runner(config, data, length=length)
    x, y = jax.numpy.asarray(data.x_train), jax.numpy.asarray(data.y_train)
    bare = bare_chunk(ours.static, steps, ours.optimizer, x, y, config.batch_size, length)
    t = alternate({"odeness": ours.timed, "bare": (bare, ours.state)}, rounds)
    ours_ms, bare_ms = (t[k] / length * 1e3 for k in ("odeness", "bare"))
    return {
        "setting": f"spheres 2-D, Euler {steps} steps, batch 128, C=32, {seeds} seed(s)",
        "odeness_ms_per_iteration": round(ours_ms, 3),
        "bare_scan_ms_per_iteration": round(bare_ms, 3),
        "ratio": round(ours_ms / bare_ms, 3),
    }


def run(*, quick: bool, rounds: int) -> dict:
    length = 20 if quick else 100
    return {"rows": [one(seeds, 16, length, rounds) for seeds in (1, 5)]}


def report(result: dict) -> list[str]:
    return [
        f"{r['setting']}: odeness {r['odeness_ms_per_iteration']:.2f} ms/it, bare "
        f"lax.scan {r['bare_scan_ms_per_iteration']:.2f} ms/it, ratio {r['ratio']:.2f} "
        "(target <= 1.3)"
        for r in result["rows"]
    ]
