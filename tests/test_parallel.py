"""Training over several devices (layouts "seeds" and "data") and processes."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from odeness import _devices as parallel

REPO = Path(__file__).resolve().parents[1]

FOUR_DEVICES = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import PartitionSpec
    import odeness
    from odeness import _devices as parallel
    from odeness._training import init_state
    from odeness._train_step import adam as optimizer, train_chunk
    from experiments.lab.sweep_runs import SweepOptions, run_sweep

    out = {"devices": len(jax.devices())}
    data = odeness.load_dataset("sphere2", seed=0)
    config = odeness.TrainConfig(dataset="sphere2", solver="euler", steps=4,
                                 seeds=(0, 1, 2, 3), iterations=40, log_every=20,
                                 channels=8, learning_rate=3e-3)

    # The arrays really are split: the state over the seeds, the batches over the data.
    # (The chunks are the ones `train` runs below: its programs, compiled once.)
    integ = config.integrator().replace(throw=False)
    place = parallel.placement("seeds", 4, config.batch_size)
    state, static = init_state(config, data)
    state = place.put_state(state)
    x, y = place.put_data((data.x_train, data.y_train))
    state, _ = train_chunk(state, static, integ, optimizer(config.learning_rate), x, y,
                           batch_size=128, length=20, start=jnp.asarray(0))
    leaf = jax.tree.leaves(state.params)[0]
    out["seed_spec"] = list(leaf.sharding.spec)
    out["seed_shard_rows"] = [s.data.shape[0] for s in leaf.addressable_shards]
    place = parallel.placement("data", 4, config.batch_size)
    hlo = train_chunk.lower(place.put_state(init_state(config, data)[0]), static, integ,
                            optimizer(config.learning_rate),
                            *place.put_data((data.x_train, data.y_train)),
                            batch_size=128, length=20, start=jnp.asarray(0),
                            batch_sharding=place.batch).compile().compiled.as_text()
    out["data_all_reduce"] = "all-reduce" in hlo

    # The same numbers whatever the layout.
    runs = {p: odeness.train(config, data=data, progress=False, parallel=p)
            for p in ("none", "seeds", "data")}
    for p in ("seeds", "data"):
        out[p + "_params"] = max(
            float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
            for a, b in zip(jax.tree.leaves(runs["none"].models),
                            jax.tree.leaves(runs[p].models)) if hasattr(a, "shape"))
        out[p + "_loss"] = max(abs(a.loss - b.loss) for a, b in
                               zip(runs["none"].metrics, runs[p].metrics))
    # The sweep trains `config` again (steps=[4]): the training programs compiled above.
    sweeps = {p: run_sweep(SweepOptions(base=config, out=f"{DIR}/sweep-{p}", steps=(4,),
                                        test_solvers=("euler", "midpoint"),
                                        factors=(1.0, 2.0), reference="none",
                                        progress=False, parallel=p))
              for p in ("none", "seeds")}
    out["sweep_rows"] = len(sweeps["none"])
    out["sweep_accuracy"] = max(abs(a.test.score - b.test.score)
                                for a, b in zip(sweeps["none"], sweeps["seeds"]))
    print("RESULT", json.dumps(out))
    """
)


def _run(code: str, env_extra: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **env_extra}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env,
        timeout=timeout, cwd=REPO,
    )  # fmt: skip


@pytest.mark.slow
def test_four_devices_split_the_work_and_change_no_result(tmp_path):
    code = f"DIR = {str(tmp_path)!r}\n" + FOUR_DEVICES
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    proc = _run(code, {"XLA_FLAGS": flags})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    assert out["devices"] == 4
    assert out["seed_spec"] == ["seeds"]
    assert out["seed_shard_rows"] == [1, 1, 1, 1]
    assert out["data_all_reduce"], (
        "data parallelism must average gradients with a collective"
    )
    assert out["seeds_params"] < 1e-6 and out["seeds_loss"] < 1e-6, out
    assert out["data_params"] < 1e-5 and out["data_loss"] < 1e-5, out
    assert out["sweep_rows"] > 0 and out["sweep_accuracy"] == 0.0, out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_run_a_sweep_and_write_one_folder(tmp_path):
    out = tmp_path / "sweep"
    port = _free_port()
    args = [
        str(REPO / "experiments" / "sweep.py"), "--steps", "2", "--seeds", "0", "1",
        "--iterations", "20", "--channels", "4", "--reference", "none", "--factors", "1",
        "--test-solvers", "euler",
        "--no-progress", "--out", str(out), "--coordinator", f"localhost:{port}",
        "--num-processes", "2",
    ]  # fmt: skip
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen(
            [sys.executable, *args, "--process-id", str(i)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    run = out / "runs" / "euler-n0002"
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    # One writer: each (step, seed) row once, not once per process.
    assert sorted((r["step"], r["seed"]) for r in metrics) == [(20, 0), (20, 1)]
    assert (out / "results.jsonl").exists() and (run / "checkpoint.eqx").exists()
    assert not list(out.rglob("*.tmp"))


def test_bad_layouts_and_process_options(monkeypatch):
    with pytest.raises(ValueError, match="unknown layout 'both'"):
        parallel.placement("both", 2, 128)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="batch size divisible by 3, got 128"):
        parallel.placement("data", 2, 128, devices=["a", "b", "c"])
    # Seeds split over the largest device count that divides them.
    assert parallel.placement("seeds", 5, 128).num_devices == 1
    for var in parallel.ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    assert parallel.initialize_distributed() is False  # one process: nothing to do
    with pytest.raises(ValueError, match="missing: num_processes, process_id"):
        parallel.initialize_distributed("localhost:1234")
    with pytest.raises(ValueError, match="0 <= process id < process count, got 2 and 2"):
        parallel.initialize_distributed("localhost:1234", 2, 2)
    monkeypatch.setenv("ODENESS_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="must be integers, got 'two'"):
        parallel.initialize_distributed("localhost:1234", process_id=0)
