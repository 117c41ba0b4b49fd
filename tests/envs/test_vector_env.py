"""VectorEnv: shapes, auto-reset and episode info, layout-independent results, failures that never hang."""

from __future__ import annotations

import time

import numpy as np
import pytest

import dppo_robot.envs  # noqa: F401  (registers tasks)
from dppo_robot.envs import EnvWorkerError, VectorEnv, default_task_config, make_chunked_env
from tests.envs.faulty_tasks import TRIGGER_SEED


def _chunks(rng: np.random.Generator, n: int, cfg) -> np.ndarray:
    return rng.uniform(-1, 1, (n, cfg.act_steps, 2)).astype(np.float32)


def _roll(venv: VectorEnv, cfg, n_chunks: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    obs0 = venv.reset(seeds=[10 + i for i in range(venv.num_envs)])
    out = [obs0]
    infos_all = []
    for _ in range(n_chunks):
        obs, rew, term, trunc, infos = venv.step(_chunks(rng, venv.num_envs, cfg))
        out.append((obs, rew, term, trunc))
        infos_all.append(infos)
    return out, infos_all


def test_in_process_shapes_and_auto_reset():
    cfg = default_task_config("reach2d", cond_steps=2, act_steps=4)
    with VectorEnv(cfg, n_envs=3, n_workers=0) as venv:
        obs = venv.reset(seeds=[1, 2, 3])
        assert obs.shape == (3, 2, 4) and obs.dtype == np.float32
        assert np.array_equal(obs[:, 0], obs[:, 1])  # history padded with the first obs
        assert venv.seeds == [1, 2, 3]
        rng = np.random.default_rng(0)
        ended = 0
        for _ in range(30):
            obs, rew, term, trunc, infos = venv.step(_chunks(rng, 3, cfg))
            assert obs.shape == (3, 2, 4) and rew.shape == (3,) and term.dtype == bool and trunc.dtype == bool
            for i, info in enumerate(infos):
                assert {"success", "steps", "seed"} <= set(info)
                if term[i] or trunc[i]:
                    ended += 1
                    assert info["final_obs"].shape == (2, 4)
                    assert 1 <= info["episode_length"] <= cfg.max_episode_steps
                    assert isinstance(info["episode_success"], bool)
                    # returned obs = first obs of the new episode, seeded with reset_seed
                    fresh = make_chunked_env(cfg)
                    first, _ = fresh.reset(seed=info["reset_seed"])
                    np.testing.assert_array_equal(obs[i], first)
                    assert venv.seeds[i] == info["reset_seed"]
        assert ended > 0


def test_episode_return_and_length_add_up():
    cfg = default_task_config("reach2d", act_steps=4, reward="dense")
    with VectorEnv(cfg, n_envs=1) as venv:
        venv.reset(seeds=[5])
        rng = np.random.default_rng(1)
        total, steps = 0.0, 0
        for _ in range(20):
            _, rew, term, trunc, infos = venv.step(_chunks(rng, 1, cfg))
            total += float(rew[0])
            steps += infos[0]["steps"]
            if term[0] or trunc[0]:
                assert infos[0]["episode_length"] == steps
                assert infos[0]["episode_return"] == pytest.approx(total, rel=1e-5)
                break
        else:
            pytest.fail("episode did not end")


def test_workers_match_in_process():
    cfg = default_task_config("reach2d", cond_steps=2, act_steps=3)
    with VectorEnv(cfg, n_envs=4, n_workers=0) as a:
        ref, ref_infos = _roll(a, cfg, 25)
    with VectorEnv(cfg, n_envs=4, n_workers=2) as b:
        assert b.single_observation_space.shape == (2, 4)
        got, got_infos = _roll(b, cfg, 25)
    np.testing.assert_array_equal(ref[0], got[0])
    for r, g in zip(ref[1:], got[1:]):
        for x, y in zip(r, g):
            np.testing.assert_array_equal(x, y)
    for ri, gi in zip(ref_infos, got_infos):
        assert [i["seed"] for i in ri] == [i["seed"] for i in gi]
        assert [i.get("episode_return") for i in ri] == [i.get("episode_return") for i in gi]


def test_reset_without_seeds_uses_base_seed():
    cfg = default_task_config("reach2d", seed=100)
    with VectorEnv(cfg, n_envs=2, n_workers=1) as venv:
        venv.reset()
        assert venv.seeds == [100, 101]
        venv.reset()
        assert None not in venv.seeds and venv.seeds != [100, 101]


def _step_until_error(venv: VectorEnv, cfg, seeds: list[int]) -> EnvWorkerError:
    venv.reset(seeds=seeds)
    zeros = np.zeros((venv.num_envs, cfg.act_steps, 2), np.float32)
    with pytest.raises(EnvWorkerError) as ei:
        for _ in range(10):
            venv.step(zeros)
    return ei.value


@pytest.mark.parametrize("n_workers", [0, 2])
def test_crashing_env_names_index_and_seed(n_workers):
    cfg = default_task_config("test_crash")
    venv = VectorEnv(cfg, n_envs=3, n_workers=n_workers)
    err = _step_until_error(venv, cfg, [7, TRIGGER_SEED, 8])
    assert err.env_indices == [1] and err.seeds == [TRIGGER_SEED]
    msg = str(err)
    assert f"env 1 (episode seed {TRIGGER_SEED})" in msg and "boom: deliberate test failure" in msg
    assert "Traceback" in (err.remote_traceback or "")
    with pytest.raises(RuntimeError, match="closed"):
        venv.step(np.zeros((3, cfg.act_steps, 2), np.float32))
    venv.close()


def test_hanging_worker_times_out():
    cfg = default_task_config("test_hang")
    venv = VectorEnv(cfg, n_envs=2, n_workers=2, step_timeout_s=1.0)
    t0 = time.monotonic()
    err = _step_until_error(venv, cfg, [TRIGGER_SEED, 3])
    assert time.monotonic() - t0 < 20
    assert err.worker == 0 and err.env_indices == [0] and err.seeds == [TRIGGER_SEED]
    assert "did not answer step within 1 s" in str(err)
    assert all(not p.is_alive() for p in venv._procs)  # close() terminated the straggler


def test_dying_worker_is_reported():
    cfg = default_task_config("test_die")
    venv = VectorEnv(cfg, n_envs=2, n_workers=1)
    err = _step_until_error(venv, cfg, [4, TRIGGER_SEED])
    assert err.worker == 0 and err.env_indices == [0, 1] and err.seeds == [4, TRIGGER_SEED]
    assert "exit code 7" in str(err)


def test_step_checks_shape():
    cfg = default_task_config("reach2d")
    with VectorEnv(cfg, n_envs=2) as venv:
        with pytest.raises(RuntimeError, match="before reset"):
            venv.step(np.zeros((2, cfg.act_steps, 2), np.float32))
        venv.reset()
        with pytest.raises(ValueError, match="N=2"):
            venv.step(np.zeros((3, cfg.act_steps, 2), np.float32))
        with pytest.raises(ValueError, match="1 seeds for 2 envs"):
            venv.reset(seeds=[1])
