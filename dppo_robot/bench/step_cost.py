"""Cost of one env step against MuJoCo's own floor: the same model, states and substeps, raw `mj_step`.

For a task, the bench builds one env, drives it with the task's scripted demonstrator (so the
states visited include the contacts of real manipulation), and for every env step:

1. saves the full integration state (`mj_getState(..., mjSTATE_INTEGRATION)`: qpos, qvel, act,
   ctrl, warm start, mocap, equality switches) before the step,
2. times `env.step(action)`.

It then replays every saved state into a scratch `MjData` of the same `MjModel` and times
`mujoco.mj_step(m, d, nstep=substeps)` from it, i.e. the physics the step had to do with nothing
around it (controls held at their saved values). The ratio env time / raw time is the overhead
factor of the task's step; 1.0 is the floor. Both halves run in the same process, interleaved in
blocks of BLOCK steps, so load from other processes weighs on both alike.

A task exposes its physics as dppo_robot.envs.physics.physics_handles finds it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from dppo_robot.envs.physics import physics_handles
from dppo_robot.envs.registry import default_task_config, make_env

WARMUP_STEPS = 5
BLOCK = 20  # env steps between raw replays (interleaving evens out load from other processes)


def measure_step_cost(task: str, n_steps: int = 200, seed: int = 0, episode_steps: int = 100) -> dict[str, Any]:
    """Env step time vs raw mj_step time over the same states (see the module docstring)."""
    import mujoco

    from dppo_robot.data.demonstrators import make_demonstrator

    cfg = default_task_config(task)
    env = make_env(cfg, seed=seed)
    demo = make_demonstrator(task)
    rng = np.random.default_rng(seed)
    m, d, substeps = physics_handles(env)
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    size = mujoco.mj_stateSize(m, spec)
    scratch = mujoco.MjData(m)
    block: list[np.ndarray] = []
    n_done, env_s, raw_s = 0, 0.0, 0.0

    def replay() -> float:  # raw mj_step from each saved state of the block
        total = 0.0
        for buf in block:
            mujoco.mj_setState(m, scratch, buf, spec)
            mujoco.mj_forward(m, scratch)
            t0 = time.perf_counter()
            mujoco.mj_step(m, scratch, nstep=substeps)
            total += time.perf_counter() - t0
        block.clear()
        return total

    try:
        obs, _ = env.reset(seed=seed)  # warm-up: JIT compilation and first-touch costs stay out
        demo.reset(env, rng)
        for _ in range(WARMUP_STEPS):
            obs, *_ = env.step(demo.act(obs["state"] if isinstance(obs, dict) else obs))
        episode, t = 0, 0
        obs, _ = env.reset(seed=seed)
        demo.reset(env, rng)
        while n_done < n_steps:
            a = demo.act(obs["state"] if isinstance(obs, dict) else obs)
            buf = np.empty(size)
            mujoco.mj_getState(m, d, buf, spec)
            block.append(buf)
            t0 = time.perf_counter()
            obs, _, terminated, truncated, _ = env.step(a)
            env_s += time.perf_counter() - t0
            n_done += 1
            t += 1
            if len(block) == BLOCK:
                raw_s += replay()
            if terminated or truncated or t >= episode_steps:
                episode += 1
                t = 0
                obs, _ = env.reset(seed=seed + episode)
                demo.reset(env, rng)
        raw_s += replay()
    finally:
        env.close()
    return {
        "kind": "env_step",
        "task": task,
        "env_steps": n_done,
        "substeps_per_step": substeps,
        "env_steps_per_s": round(n_done / env_s, 1),
        "raw_steps_per_s": round(n_done / raw_s, 1),
        "ratio": round(env_s / raw_s, 3),
    }
