"""gymnasium wrappers that turn a raw task env into what a chunked diffusion policy talks to.

    make_env(cfg)                         raw, env units, obs [Do], action [Da]
    -> NormalizeObsAction(normalization)  optional: obs normalised, actions denormalised
    -> ObsHistory(To)                     obs [To, Do] (dict obs: every key gets a leading To)
    -> ActionChunk(Ta)                    step takes [Ta or more, Da]

These follow the reference's MultiStep wrapper (irom-princeton/dppo
env/gym_utils/wrapper/multi_step.py): the history is padded at reset by repeating the first
observation and holds per-env-step observations (also those inside a chunk); chunk rewards
are summed; a chunk stops at the first env step that ends the episode.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from dppo_robot.envs.registry import make_env
from dppo_robot.envs.task_config import TaskConfig
from dppo_robot.model.normalization import Normalization


def _stack_space(space: gym.Space, n: int) -> gym.Space:
    if isinstance(space, gym.spaces.Box):
        return gym.spaces.Box(
            np.repeat(space.low[None], n, 0), np.repeat(space.high[None], n, 0), (n, *space.shape), space.dtype
        )
    if isinstance(space, gym.spaces.Dict):
        return gym.spaces.Dict({k: _stack_space(v, n) for k, v in space.spaces.items()})
    raise TypeError(f"unsupported observation space {space}")


class NormalizeObsAction(gym.Wrapper):
    """Observations (the "state" entry of dict obs) -> [-1, 1]; actions [-1, 1] -> env units.

    Formulas: dppo_robot.model.normalization.Normalization (normalize_obs, denormalize_action).
    """

    def __init__(self, env: gym.Env, normalization: Normalization) -> None:
        super().__init__(env)
        self.normalization = normalization
        space = env.observation_space
        state_space = space["state"] if isinstance(space, gym.spaces.Dict) else space
        if state_space.shape != (normalization.obs_dim,):
            raise ValueError(
                f"normalization obs_dim {normalization.obs_dim} does not match the env's state {state_space.shape}"
            )
        if env.action_space.shape != (normalization.action_dim,):
            raise ValueError(
                f"normalization action_dim {normalization.action_dim} does not match the env's "
                f"action {env.action_space.shape}"
            )
        lim = np.inf if normalization.obs_clip is None else normalization.obs_clip
        box = gym.spaces.Box(-lim, lim, state_space.shape, np.float32)
        if isinstance(space, gym.spaces.Dict):
            self.observation_space = gym.spaces.Dict({**space.spaces, "state": box})
        else:
            self.observation_space = box
        self.action_space = gym.spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32)

    def _obs(self, obs: Any) -> Any:
        if isinstance(obs, dict):
            return {**obs, "state": self.normalization.normalize_obs(obs["state"])}
        return self.normalization.normalize_obs(obs)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._obs(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(self.normalization.denormalize_action(action))
        return self._obs(obs), reward, terminated, truncated, info


class ObsHistory(gym.Wrapper):
    """Observation [To, ...]: the last To per-step observations, oldest first.

    At reset the history is filled with copies of the first observation (the reference's
    stack_last_n_obs padding).
    """

    def __init__(self, env: gym.Env, cond_steps: int) -> None:
        super().__init__(env)
        if cond_steps < 1:
            raise ValueError(f"cond_steps must be >= 1, got {cond_steps}")
        self.cond_steps = cond_steps
        self.observation_space = _stack_space(env.observation_space, cond_steps)
        self._hist: deque = deque(maxlen=cond_steps)

    def _stacked(self) -> Any:
        first = self._hist[0]
        if isinstance(first, dict):
            return {k: np.stack([o[k] for o in self._hist]) for k in first}
        return np.stack(self._hist)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._hist.clear()
        self._hist.extend([obs] * self.cond_steps)
        return self._stacked(), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._hist.append(obs)
        return self._stacked(), reward, terminated, truncated, info


class ActionChunk(gym.Wrapper):
    """step(chunk [T, Da] with T >= Ta) executes chunk[:Ta], one env step each.

    Returns the observation after the last executed step, the summed reward, whether the episode
    ended (terminated / truncated of the last executed step), and info = the last step's info
    with info["success"] = any executed step succeeded and info["steps"] = steps executed
    (< Ta when the episode ended inside the chunk).
    """

    def __init__(self, env: gym.Env, act_steps: int) -> None:
        super().__init__(env)
        if act_steps < 1:
            raise ValueError(f"act_steps must be >= 1, got {act_steps}")
        self.act_steps = act_steps
        single = env.action_space
        self.action_space = gym.spaces.Box(
            np.repeat(single.low[None], act_steps, 0),
            np.repeat(single.high[None], act_steps, 0),
            (act_steps, *single.shape),
            single.dtype,
        )
        self._da = single.shape[0]

    def step(self, action):
        chunk = np.asarray(action, np.float32)
        if chunk.ndim == 1 and self.act_steps == 1:
            chunk = chunk[None]
        if chunk.ndim != 2 or chunk.shape[1] != self._da or chunk.shape[0] < self.act_steps:
            raise ValueError(
                f"action chunk must have shape [T >= {self.act_steps}, {self._da}], got {tuple(np.shape(action))}"
            )
        total, success, steps = 0.0, False, 0
        obs, terminated, truncated, info = None, False, False, {}
        for t in range(self.act_steps):
            obs, reward, terminated, truncated, info = self.env.step(chunk[t])
            total += float(reward)
            success = success or bool(info.get("success", False))
            steps = t + 1
            if terminated or truncated:
                break
        info = {**info, "success": success, "steps": steps}
        return obs, total, bool(terminated), bool(truncated), info


def make_chunked_env(cfg: TaskConfig, seed: int | None = None, normalization: Normalization | None = None) -> gym.Env:
    """make_env(cfg, seed) -> [NormalizeObsAction] -> ObsHistory(To) -> ActionChunk(Ta)."""
    env = make_env(cfg, seed)
    if normalization is not None:
        env = NormalizeObsAction(env, normalization)
    env = ObsHistory(env, cfg.cond_steps)
    return ActionChunk(env, cfg.act_steps)
