import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from configs import SMALL

import odeness
from odeness._batching import batch_indices, chunk_batch_indices


def params_of(result):
    return jax.tree.leaves(eqx.filter(result.models, eqx.is_array))


def without_time(metrics):
    rows = (r if isinstance(r, dict) else r.to_json() for r in metrics)
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(solver="rk5"), "unknown solver 'rk5'"),
        (dict(dataset="spheres"), "unknown dataset 'spheres'"),
        (dict(field="cnn"), "unknown field 'cnn'"),
        (dict(steps=0), "steps must be an integer >= 1, got 0"),
        (dict(steps=None), "give exactly one of steps and tol"),
        (dict(tol=1e-3), "give exactly one of steps and tol"),
        (dict(steps=None, tol=1e-3), "solver 'euler' has no error estimate"),
        (dict(solver="dopri5", steps=None, tol=-1.0), "tol must be a finite number > 0"),
        (dict(seeds=()), "seeds must be one or more integers in"),
        (dict(seeds=(1, 1)), "seeds must be distinct, got \\(1, 1\\)"),
        (dict(iterations=0), "iterations must be an integer >= 1, got 0"),
        (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
        (dict(learning_rate=float("inf")), "learning_rate must be a finite number > 0"),
        (dict(log_every=20, checkpoint_every=30), "must be a multiple of log_every"),
    ],
)
def test_bad_config(changes, match):
    with pytest.raises(ValueError, match=match):
        odeness.TrainConfig(**{**SMALL, **changes})


def test_batch_size_larger_than_data(tiny_sphere):
    with pytest.raises(ValueError, match="batch_size 5000 exceeds the 2000 training"):
        odeness.train(
            odeness.TrainConfig(**{**SMALL, "batch_size": 5000}),
            data=tiny_sphere,
            progress=False,
        )


def test_config_round_trips_through_json():
    config = odeness.TrainConfig(**SMALL)
    again = odeness.TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


@pytest.mark.parametrize("start, length", [(0, 40), (13, 7), (29, 31), (45, 1)])
def test_chunk_batch_indices_equal_per_step_indices(start, length):
    key = jax.random.key(3)
    chunk = chunk_batch_indices(key, jnp.asarray(start), length, 100, 7)
    steps = [
        batch_indices(key, jnp.asarray(s), 100, 7) for s in range(start, start + length)
    ]
    np.testing.assert_array_equal(chunk, jnp.stack(steps))


def test_an_epoch_visits_distinct_examples():
    # 100 examples, batches of 7: an epoch is 14 batches of 98 distinct examples.
    idx = np.asarray(chunk_batch_indices(jax.random.key(0), jnp.asarray(0), 28, 100, 7))
    for epoch in (idx[:14], idx[14:]):
        assert len(set(epoch.ravel().tolist())) == 98
    assert not np.array_equal(idx[:14], idx[14:])


def test_training_is_deterministic_and_seeds_differ(tiny_sphere):
    config = odeness.TrainConfig(**SMALL)
    a = odeness.train(config, data=tiny_sphere, progress=False)
    b = odeness.train(config, data=tiny_sphere, progress=False)
    assert without_time(a.metrics) == without_time(b.metrics)
    for x, y in zip(params_of(a), params_of(b), strict=True):
        np.testing.assert_array_equal(x, y)
    seed0, seed1 = jax.tree.leaves(a.model(0).field), jax.tree.leaves(a.model(1).field)
    assert not any(np.array_equal(u, v) for u, v in zip(seed0, seed1, strict=True))
    assert [r.step for r in a.metrics] == [20, 20, 40, 40, 60, 60]
    assert {r.nfe for r in a.metrics} == {2} and {r.num_steps for r in a.metrics} == {2}


def test_a_seed_trains_the_same_alone_or_with_others(tiny_sphere):
    both = odeness.train(odeness.TrainConfig(**SMALL), data=tiny_sphere, progress=False)
    alone = odeness.train(
        odeness.TrainConfig(**{**SMALL, "seeds": (1,)}), data=tiny_sphere, progress=False
    )
    for u, v in zip(
        jax.tree.leaves(both.model(1)), jax.tree.leaves(alone.model(0)), strict=True
    ):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


def test_resume_from_checkpoint_equals_an_uninterrupted_run(tiny_sphere, tmp_path):
    config = odeness.TrainConfig(**SMALL)
    whole = odeness.train(config, data=tiny_sphere, progress=False)
    run = tmp_path / "run"
    first = odeness.train(
        config.replace(iterations=40), run_dir=run, data=tiny_sphere, progress=False
    )
    assert first.metrics[-1].step == 40
    # A crash after the checkpoint leaves extra metric rows; resuming drops them.
    odeness.files.append_jsonl(run / "metrics.jsonl", [{"step": 50, "seed": 0}])
    resumed = odeness.train(config, run_dir=run, data=tiny_sphere, progress=False)
    for x, y in zip(params_of(whole), params_of(resumed), strict=True):
        np.testing.assert_array_equal(x, y)
    on_disk = odeness.files.read_jsonl(run / "metrics.jsonl")
    assert without_time(on_disk) == without_time(whole.metrics)
    loaded = odeness.load_run(run, data=tiny_sphere)
    assert loaded.config == config
    for x, y in zip(params_of(whole), params_of(loaded), strict=True):
        np.testing.assert_array_equal(x, y)
    assert json.loads((run / "config.json").read_text())["steps"] == 2


def test_run_folder_of_another_config_is_refused(tiny_sphere, tmp_path):
    config = odeness.TrainConfig(**{**SMALL, "iterations": 20})
    odeness.train(config, run_dir=tmp_path, data=tiny_sphere, progress=False)
    before = (tmp_path / "checkpoint.eqx").read_bytes()
    with pytest.raises(
        ValueError, match=r"another configuration \(steps is 2 there, 4 here\)"
    ):
        odeness.train(
            config.replace(steps=4), run_dir=tmp_path, data=tiny_sphere, progress=False
        )
    assert (tmp_path / "checkpoint.eqx").read_bytes() == before


def test_load_run_of_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json does not exist"):
        odeness.load_run(tmp_path)


@pytest.mark.slow
def test_coarse_euler_model_is_not_an_ode(tiny_sphere):
    """Claim 1 of Ott et al.: Euler with 2 steps fits the data with its own solver and
    falls towards chance with more accurate solvers."""
    config = odeness.TrainConfig(
        dataset="sphere2",
        solver="euler",
        steps=2,
        seeds=(0,),
        iterations=2000,
        log_every=500,
        checkpoint_every=1000,
    )
    result = odeness.train(config, data=tiny_sphere, progress=False)
    swap = odeness.evaluate_solver_swap(
        result.model(0), result.integrator, tiny_sphere.x_test, tiny_sphere.y_test
    )
    assert swap.train_score > 0.9
    assert swap.max_gap > 0.3


def test_written_files_get_the_usual_permissions(tmp_path):
    odeness.files.write_json(tmp_path / "a.json", {"x": 1})
    odeness.files.save_checkpoint(tmp_path / "c.eqx", jnp.zeros(3))
    expected = 0o666 & ~odeness.files._umask()  # what a plain open() would give
    for name in ("a.json", "c.eqx"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected


QUICK = odeness.TrainConfig(
    seeds=(0,), channels=4, iterations=40, log_every=10, checkpoint_every=20
)


def test_a_stop_request_saves_the_chunk_in_flight_and_raises(tiny_sphere, tmp_path):
    """From Python: no signal handler is installed behind the caller's back, but a stop
    request (what `stop_on_signals` makes of SIGINT and SIGTERM) or a Ctrl-C stops the
    run at the end of its chunk, saved, with an exception the caller can catch."""
    odeness.request_stop(signal.SIGTERM)
    try:
        with pytest.raises(odeness.Interrupted) as info:
            odeness.train(QUICK, run_dir=tmp_path, data=tiny_sphere, progress=False)
    finally:
        odeness.cancel_stop()
    stopped = info.value
    assert (stopped.signal, stopped.iteration, stopped.exit_status) == (15, 10, 143)
    assert str(stopped) == (
        f"interrupted by SIGTERM at iteration 10 of 40: {tmp_path} holds a checkpoint "
        "of iteration 10; the same command resumes"
    )  # checkpoint_every is 20: this checkpoint is the stop's own
    assert [r["step"] for r in odeness.files.read_jsonl(tmp_path / "metrics.jsonl")] == [10]
    assert not (tmp_path / ".lock").exists()
    # Resumed, it ends where an uninterrupted run ends.
    resumed = odeness.train(QUICK, run_dir=tmp_path, data=tiny_sphere, progress=False)
    whole = odeness.train(QUICK, data=tiny_sphere, progress=False)
    for a, b in zip(
        jax.tree.leaves(resumed.models), jax.tree.leaves(whole.models), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_ctrl_c_inside_train_saves_the_last_finished_chunk(
    tiny_sphere, tmp_path, monkeypatch
):
    from odeness import _training

    calls = []
    chunk = _training.train_chunk

    def interrupted_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return chunk(*args, **kwargs)

    monkeypatch.setattr(_training, "train_chunk", interrupted_third)
    with pytest.raises(odeness.Interrupted, match="SIGINT at iteration 20 of 40") as info:
        odeness.train(QUICK, run_dir=tmp_path, data=tiny_sphere, progress=False)
    assert info.value.exit_status == 130
    rows = odeness.files.read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [10, 20]


def test_a_folder_in_use_is_refused_and_left_alone(tiny_sphere, tmp_path):
    with odeness.files.folder_lock(tmp_path, "run folder"):
        holder = (tmp_path / ".lock").read_text()
        assert holder.startswith(f"process {os.getpid()} on ")
        # Another thread of this process (as another process) is refused at once.
        with ThreadPoolExecutor(1) as pool:
            refused = pool.submit(
                odeness.train, QUICK, run_dir=tmp_path, data=tiny_sphere, progress=False
            )
            with pytest.raises(odeness.FolderInUse, match="in use by another thread"):
                refused.result()
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]
        # The thread that holds the lock may write the folder (a study around a run).
        odeness.train(QUICK.replace(iterations=10), run_dir=tmp_path, data=tiny_sphere,
                      progress=False)  # fmt: skip
    assert not (tmp_path / ".lock").exists() and (tmp_path / "checkpoint.eqx").exists()
    # A folder the lock created is removed again if nothing was written into it.
    with odeness.files.folder_lock(tmp_path / "new"):
        pass
    assert not (tmp_path / "new").exists()
