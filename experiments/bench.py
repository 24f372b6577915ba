"""Benchmarks, printed as times and ratios measured in one run (`make bench`).

Training step: one iteration on spheres 2-D (Euler, 16 steps, batch 128, C = 32) through
odeness (`Integrator` + `diffrax.diffeqsolve` inside the scanned, seed-vmapped loop)
against a bare `lax.scan` of the same arithmetic: the same field, head, loss, batches and
Adam update, with Euler written by hand as `z + h f(z)`. The two alternate, repeatedly;
the median of the repeats is reported.

Adaptation overhead: training at a fixed step size (Euler, 16 steps) with and without the
step-size rule (`--adapt`): chunks of `interval` (50) iterations, the rule's chunk holding
exactly one check (on its last iteration, so the step size is fixed throughout). Both
loops alternate; the ratio of the medians is reported (target <= 1.1). A third loop
trains with the rule's integrator alone (a traced step size under `max_steps` = 500, no
check), to show which part of the overhead is the check's.

Devices: a sweep's throughput (run-iterations per second: seeds × iterations / s) with
the seed axis split over 1 and over 4 devices (`odeness.parallel`, layout "seeds"), each
in its own process; on CPU the devices are forced with
`--xla_force_host_platform_device_count` and share this machine's cores. Compilation is
excluded (a first, identical training run warms up).

Adjoint: training by backpropagation through the solver against the continuous adjoint
(`--adjoint backsolve`, diffrax's `BacksolveAdjoint`) at Euler 16 and 128 steps: time
per iteration (alternating, medians), function evaluations forward and backward
(`odeness.solvers.backward_nfe`, checked against a counting field by the tests) and XLA's
temp bytes of one gradient (`--adjoint-only`).

Fields: one training iteration of the Conv1d field against the fully connected one on
the spheres of 2, 3, 10 and 900 dimensions (`--fields-only`).

User model: the solver swap of the built-in `ODEClassifier` against the same
parameters assembled as a `NeuralODE` (field, head as decoder); both alternate after a
warm-up, medians of the swap's wall time (`--swap-only`).

Image training step: one iteration of the CIFAR-10 ODE-Net (Conv2d field, C = 128,
batch 256, Euler 8 steps) on CIFAR-shaped inputs; the time does not depend on pixel
values, so no archive is needed. Results also go to `results/bench.json`.
"""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import odeness
from experiments._cli import Parser
from odeness import io
from odeness.batching import chunk_batch_indices
from odeness.integrate import Integrator
from odeness.resnet_ode import compiled_memory
from odeness.solvers import backward_nfe, nfe
from odeness.step import TrainState, loss_fn, optimizer, train_chunk
from odeness.training import init_state


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


def time_call(fn, *args, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return times


def alternate(runs: dict, rounds: int) -> dict[str, float]:
    """Median seconds per call of each `name: (fn, state)`, compiled first, the calls
    alternating over `rounds` rounds of two calls each."""
    for fn, state in runs.values():
        jax.block_until_ready(fn(state))  # compile
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (fn, state) in runs.items():
            times[name] += time_call(fn, state, repeats=2)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_train_step(seeds: int, steps: int, length: int, rounds: int) -> dict:
    config = odeness.TrainConfig(
        dataset="sphere2", solver="euler", steps=steps, seeds=tuple(range(seeds))
    )
    data = odeness.load_dataset("sphere2")
    state, static = init_state(config, data)
    integ = config.integrator()
    opt = optimizer(config.learning_rate)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    ours = lambda s: train_chunk(  # noqa: E731
        s, static, integ, opt, x, y, batch_size=config.batch_size, length=length
    )
    bare = bare_chunk(static, steps, opt, x, y, config.batch_size, length)
    jax.block_until_ready((ours(state), bare(state)))  # compile both
    t_ours, t_bare = [], []
    for _ in range(rounds):
        t_ours += time_call(ours, state, repeats=2)
        t_bare += time_call(bare, state, repeats=2)
    per_iter_ours = statistics.median(t_ours) / length
    per_iter_bare = statistics.median(t_bare) / length
    return {
        "setting": f"spheres 2-D, Euler {steps} steps, batch 128, C=32, {seeds} seed(s)",
        "odeness_ms_per_iteration": round(per_iter_ours * 1e3, 3),
        "bare_scan_ms_per_iteration": round(per_iter_bare * 1e3, 3),
        "ratio": round(per_iter_ours / per_iter_bare, 3),
    }


def bench_adaptation(seeds: int, steps: int, rounds: int) -> dict:
    base = odeness.TrainConfig(
        dataset="sphere2", solver="euler", steps=steps, seeds=tuple(range(seeds))
    )
    adapted = base.replace(adapt=True)
    rule = adapted.rule()
    assert rule is not None
    data = odeness.load_dataset("sphere2")
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    opt = optimizer(base.learning_rate)
    length = rule.interval
    # Start one iteration after a check: the next one falls on the chunk's last iteration.
    # "traced": the rule's training integrator alone (a traced step size, bounded by
    # max_steps), without the rule: splits the overhead into its two causes.
    traced = Integrator(rule.solver, dt=1.0 / steps, max_steps=rule.max_steps)
    runs = {}
    for name, config, integ in (
        ("plain", base, base.integrator()),
        ("traced", base, traced),
        ("adapted", adapted, rule),
    ):
        state, static = init_state(config, data)
        state = state._replace(step=state.step + 1)
        runs[name] = (
            lambda s, static=static, integ=integ: train_chunk(
                s,
                static,
                integ,
                opt,
                x,
                y,
                batch_size=128,
                length=length,
                start=jnp.asarray(1),
            ),
            state,
        )
    per_iter = {name: t / length for name, t in alternate(runs, rounds).items()}
    checks = runs["adapted"][0](runs["adapted"][1])[1].check
    assert int(np.sum(~np.isnan(np.asarray(checks.test_accuracy)))) == seeds  # one each
    return {
        "setting": f"spheres 2-D, Euler {steps} steps, batch 128, C=32, {seeds} seed(s), "
        f"one check per {length} iterations",
        "plain_ms_per_iteration": round(per_iter["plain"] * 1e3, 3),
        "traced_step_size_ms_per_iteration": round(per_iter["traced"] * 1e3, 3),
        "adapted_ms_per_iteration": round(per_iter["adapted"] * 1e3, 3),
        "ratio": round(per_iter["adapted"] / per_iter["plain"], 3),
        "traced_step_size_ratio": round(per_iter["traced"] / per_iter["plain"], 3),
    }


def bench_adjoint(steps: int, length: int, rounds: int) -> dict:
    """Backpropagation through the solver against the continuous adjoint
    (`diffrax.BacksolveAdjoint`): time per training iteration (one seed), function
    evaluations per iteration, and XLA's temp bytes of one gradient."""
    data = odeness.load_dataset("sphere2")
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    runs, rows = {}, {}
    for name in ("backprop", "backsolve"):
        config = odeness.TrainConfig(
            dataset="sphere2", solver="euler", steps=steps, adjoint=name
        )
        state, static = init_state(config, data)
        integ = config.integrator()
        opt = optimizer(config.learning_rate)
        runs[name] = (
            lambda s, static=static, integ=integ, opt=opt: train_chunk(
                s, static, integ, opt, x, y, batch_size=128, length=length
            ),
            state,
        )
        model = eqx.combine(jax.tree.map(lambda a: a[0], state.params), static)
        params, model_static = eqx.partition(model, eqx.is_array)

        def loss(params, xb, yb, model_static=model_static, integ=integ):
            return loss_fn(eqx.combine(params, model_static), integ, xb, yb)[0]

        memory = compiled_memory(jax.grad(loss), params, x[:128], y[:128])
        forward = nfe(integ.solver, steps)
        primal, vjps = backward_nfe(integ.solver, steps, adjoint=integ.adjoint)
        rows[name] = {
            "forward_nfe": forward,
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


def bench_fields(dims: tuple[int, ...], length: int, rounds: int) -> dict:
    """Time per training iteration (one seed, Euler 16 steps, batch 128, C = 32) of the
    Conv1d field and the fully connected one on the spheres of each dimension."""
    rows = []
    for d in dims:
        data = odeness.load_dataset(f"sphere{d}")
        x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
        runs = {}
        for field in ("conv", "mlp"):
            config = odeness.TrainConfig(dataset=f"sphere{d}", steps=16, field=field)
            state, static = init_state(config, data)
            integ, opt = config.integrator(), optimizer(config.learning_rate)
            runs[field] = (
                lambda s, static=static, integ=integ, opt=opt, x=x, y=y: train_chunk(
                    s, static, integ, opt, x, y, batch_size=128, length=length
                ),
                state,
            )
        ms = {name: t / length * 1e3 for name, t in alternate(runs, rounds).items()}
        rows.append(
            {
                "dim": d,
                "conv_ms_per_iteration": round(ms["conv"], 3),
                "mlp_ms_per_iteration": round(ms["mlp"], 3),
            }
        )
    for row in rows:
        row["conv_relative_to_first"] = round(
            row["conv_ms_per_iteration"] / rows[0]["conv_ms_per_iteration"], 1
        )
    return {"setting": "spheres, Euler 16 steps, batch 128, C=32, 1 seed", "rows": rows}


def _adjoint_line(r: dict) -> str:
    parts = [
        f"{name}: {r[name]['ms_per_iteration']:.2f} ms/it, NFE forward "
        f"{r[name]['forward_nfe']} + backward {r[name]['backward_evaluations']} "
        f"evaluations and {r[name]['backward_vjps']} VJPs, gradient temp "
        f"{r[name]['gradient_temp_mib']:.2f} MiB"
        for name in ("backprop", "backsolve")
    ]
    return f"{r['setting']}: " + "; ".join(parts) + f"; time ratio {r['time_ratio']:.2f}"


def bench_image_step(channels: int, batch: int, steps: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    shape = (batch, 32, 32, 3)
    x = rng.integers(0, 256, shape).astype(np.float32) / 255
    y = rng.integers(0, 10, batch).astype(np.int32)
    data = odeness.Dataset(x, y, x, y, num_classes=10)
    config = odeness.TrainConfig(
        dataset="cifar10", solver="euler", steps=steps, channels=channels, batch_size=batch
    )
    state, static = init_state(config, data)
    integ, opt = config.integrator(), optimizer(config.learning_rate)
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    run = lambda s: train_chunk(  # noqa: E731
        s, static, integ, opt, xj, yj, batch_size=batch, length=1
    )
    start = time.perf_counter()
    jax.block_until_ready(run(state))
    first = time.perf_counter() - start
    per_iter = statistics.median(time_call(run, state, repeats=repeats))
    return {
        "setting": f"CIFAR-10 ODE-Net, Conv2d C={channels}, batch {batch}, Euler {steps} "
        "steps",
        "seconds_per_iteration": round(per_iter, 3),
        "images_per_second": round(batch / per_iter, 1),
        "first_call_seconds_with_compile": round(first, 1),
    }


DEVICE_RUN = """
import json, time, jax, odeness
config = odeness.TrainConfig(dataset="sphere2", solver="euler", steps=16, channels=32,
                             seeds=tuple(range({seeds})), iterations={iterations},
                             log_every={iterations})
data = odeness.load_dataset("sphere2", seed=0)
odeness.train(config, data=data, progress=False)  # compiles
start = time.perf_counter()
odeness.train(config, data=data, progress=False)
seconds = time.perf_counter() - start
print("RESULT", json.dumps({{"devices": len(jax.devices()), "seconds": seconds}}))
"""


def bench_user_swap(rounds: int) -> dict:
    """The solver swap of a built-in `ODEClassifier` against the same parameters in a
    `NeuralODE` (field and head as decoder): both alternate, `rounds` times each after a
    warm-up that compiles; medians of the whole swap's wall time."""
    data = odeness.load_dataset("sphere2")
    builtin = odeness.make_classifier("conv", (2,), 2, channels=32, key=jax.random.key(0))
    user = odeness.NeuralODE(builtin.field, decoder=builtin.head)
    integ = Integrator(odeness.solver("euler"), steps=8)
    reference = Integrator(odeness.solver("rk4"), steps=256)

    def swap(model):
        return odeness.evaluate_solver_swap(
            model, integ, data.x_test, data.y_test, reference=reference
        )

    a, b = swap(builtin), swap(user)  # compile both
    assert [r.score for r in a.rows] == [r.score for r in b.rows], "different swaps"
    times = {"builtin": [], "user": []}
    for _ in range(rounds):
        for name, model in (("builtin", builtin), ("user", user)):
            start = time.perf_counter()
            swap(model)
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "setting": "solver swap, spheres 2-D (1000 test points, 16 test configurations)",
        "builtin_seconds": med["builtin"],
        "user_seconds": med["user"],
        "ratio": med["user"] / med["builtin"],
    }


def bench_devices(counts: tuple[int, ...], seeds: int, iterations: int) -> dict:
    """Sweep throughput with the seeds split over each device count (own processes).
    CPU devices are forced; on accelerators only the counts that exist are measured."""
    rows = []
    if jax.default_backend() != "cpu":
        counts = tuple(c for c in counts if c <= len(jax.devices())) or (1,)
    for count in counts:
        env = dict(os.environ)
        if jax.default_backend() == "cpu":
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={count}"
        code = DEVICE_RUN.format(seeds=seeds, iterations=iterations)
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env
        )
        if proc.returncode:
            raise RuntimeError(f"device benchmark failed:\n{proc.stderr[-2000:]}")
        line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
        r = json.loads(line[len("RESULT ") :])
        rows.append(
            {
                "devices": r["devices"],
                "run_iterations_per_second": seeds * iterations / r["seconds"],
            }
        )
    base = rows[0]["run_iterations_per_second"]
    for r in rows:
        r["relative_to_first"] = r["run_iterations_per_second"] / base
    return {
        "setting": f"sphere2 euler n=16, {seeds} seeds x {iterations} iterations",
        "platform": jax.default_backend(),
        "rows": rows,
    }


def main(argv=None) -> int:
    p = Parser(__doc__)
    p.add_argument("--rounds", type=int, default=5, help="alternations of the two loops")
    p.add_argument("--quick", action="store_true", help="fewer iterations and rounds")
    p.add_argument("--out", default="results/bench.json")
    p.add_argument(
        "--adapt-only", action="store_true", help="only the adaptation overhead (no file)"
    )
    p.add_argument(
        "--devices-only",
        action="store_true",
        help="only the 1- vs 4-device sweep (no file)",
    )
    p.add_argument(
        "--adjoint-only",
        action="store_true",
        help="only backpropagation against the continuous adjoint (no file)",
    )
    p.add_argument(
        "--fields-only",
        action="store_true",
        help="only the Conv1d against the fully connected field on spheres (no file)",
    )
    p.add_argument(
        "--swap-only",
        action="store_true",
        help="only the swap of a NeuralODE against the built-in model (no file)",
    )
    args = p.parse_args(argv)
    if args.fields_only:
        r = bench_fields((2, 3, 10, 900), 10 if args.quick else 20, 2 if args.quick else 3)
        for row in r["rows"]:
            print(_fields_line(r, row), flush=True)
        return 0
    if args.adjoint_only:
        for steps in (16, 128):
            print(
                _adjoint_line(
                    bench_adjoint(
                        steps, 20 if args.quick else 50, 2 if args.quick else args.rounds
                    )
                ),
                flush=True,
            )
        return 0
    if args.swap_only:
        r = bench_user_swap(2 if args.quick else args.rounds)
        print(_swap_line(r))
        return 0
    if args.devices_only:
        r = bench_devices((1, 4), 8, 100 if args.quick else 500)
        print(json.dumps(r, indent=2))
        return 0
    length, rounds = (20, 2) if args.quick else (100, args.rounds)
    results = {"device": str(jax.devices()[0]), "train_step": []}
    for seeds in (1, 5):
        r = bench_train_step(seeds, 16, length, rounds)
        results["train_step"].append(r)
        print(
            f"{r['setting']}: odeness {r['odeness_ms_per_iteration']:.2f} ms/it, "
            f"bare lax.scan {r['bare_scan_ms_per_iteration']:.2f} ms/it, "
            f"ratio {r['ratio']:.2f} (target <= 1.3)",
            flush=True,
        )
    results["adaptation"] = []
    for seeds in (1, 5):
        r = bench_adaptation(seeds, 16, 2 if args.quick else args.rounds)
        results["adaptation"].append(r)
        print(
            f"{r['setting']}: plain {r['plain_ms_per_iteration']:.2f} ms/it, adapted "
            f"{r['adapted_ms_per_iteration']:.2f} ms/it, ratio {r['ratio']:.2f} "
            f"(target <= 1.1; a traced step size alone: "
            f"{r['traced_step_size_ratio']:.2f})",
            flush=True,
        )
    if args.adapt_only:
        print(json.dumps(results, indent=2))
        return 0
    results["adjoint"] = []
    for steps in (16, 128):
        r = bench_adjoint(steps, 20 if args.quick else 50, 2 if args.quick else args.rounds)
        results["adjoint"].append(r)
        print(_adjoint_line(r), flush=True)
    r = bench_fields((2, 3, 10, 900), 10 if args.quick else 20, 2 if args.quick else 3)
    results["fields"] = r
    for row in r["rows"]:
        print(_fields_line(r, row), flush=True)
    r = bench_user_swap(2 if args.quick else args.rounds)
    results["user_swap"] = r
    print(_swap_line(r), flush=True)
    r = bench_devices((1, 4), 8, 100 if args.quick else 500)
    results["devices"] = r
    for row in r["rows"]:
        print(
            f"{r['setting']}, {row['devices']} device(s): "
            f"{row['run_iterations_per_second']:.0f} run-iterations/s "
            f"({row['relative_to_first']:.2f} x 1 device; target >= 0.9 on CPU)",
            flush=True,
        )
    r = bench_image_step(128, 256, 8, repeats=1 if args.quick else 3)
    results["image_train_step"] = r
    print(
        f"{r['setting']}: {r['seconds_per_iteration']:.2f} s/it, "
        f"{r['images_per_second']:.0f} images/s",
        flush=True,
    )
    io.write_json(Path(args.out), results)
    print(json.dumps(results, indent=2))
    return 0


def _fields_line(r: dict, row: dict) -> str:
    return (
        f"{r['setting']}, d = {row['dim']}: "
        f"Conv1d {row['conv_ms_per_iteration']:.2f} ms/it "
        f"({row['conv_relative_to_first']:.1f} x d = {r['rows'][0]['dim']}), fully "
        f"connected {row['mlp_ms_per_iteration']:.2f} ms/it"
    )


def _swap_line(r: dict) -> str:
    return (
        f"{r['setting']}: ODEClassifier {r['builtin_seconds']:.2f} s, the same as a "
        f"NeuralODE {r['user_seconds']:.2f} s, ratio {r['ratio']:.2f} "
        "(target: 1 within noise)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
