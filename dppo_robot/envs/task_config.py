"""Typed configuration of one simulation task (which env, how long, what the policy sees).

Loaded strictly from YAML with `dppo_robot.typed_config.load_yaml(TaskConfig, path)`. Use
`dppo_robot.envs.registry.default_task_config(name)` for a task's own defaults (episode length,
control rate, history/chunk lengths of the reference configs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class TaskConfig:
    """One task instance: the registered env plus the policy-facing history/chunk lengths."""

    # Registered task name: lift, can, square (robosuite Panda), one_leg (FurnitureBench twin), halfcheetah,
    # reach2d (see list_tasks()).
    name: str = "lift"
    # Episode length in env steps (not chunks) before truncation: lift/can 300, square 400 (reference),
    # halfcheetah 1000, reach2d 40.
    max_episode_steps: int = 300
    # To: observations stacked as policy input (the reference uses 1 for robomimic).
    cond_steps: int = 1
    # Ta: env steps executed per action chunk (4 for robomimic in the reference).
    act_steps: int = 4
    # Env steps per second. robosuite tasks take any rate (robomimic: 20); halfcheetah (20) and
    # reach2d (10) have a fixed native rate and reject any other value.
    control_hz: float = 20.0
    # Base seed: env i of a vector env starts its first episode with seed + i unless seeds are given.
    seed: int = 0
    # Camera names for pixel variants (robosuite: "agentview", "robot0_eye_in_hand"); [] = state only.
    cameras: list[str] = field(default_factory=list)
    # Side of the square RGB images in pixels (reference: 96).
    image_size: int = 96
    # "sparse": 1.0 on every env step at which the success condition holds, else 0 (robosuite
    # sparse reward, as the reference); "dense": the task's shaped reward (robosuite
    # reward_shaping=True; halfcheetah's own reward, which is dense only).
    reward: Literal["sparse", "dense"] = "sparse"
    # Std of zero-mean Gaussian noise added to the state observation, in env units (0 = off).
    obs_noise_std: float = 0.0
    # End the episode (terminated=True) on the first success step. The reference does not for
    # robosuite tasks (robomimic's is_done() is always False; episodes run to max_episode_steps);
    # reach2d always terminates on success and on collision regardless of this flag.
    terminate_on_success: bool = False
    # Start-state randomness level of the FurnitureBench-style tasks (one_leg): "low" or "med"
    # (dppo_robot.envs.one_leg.geometry.RANDOMNESS). Other tasks ignore it.
    randomness: Literal["low", "med"] = "low"

    def validate(self) -> None:
        if not self.name:
            raise ValueError("task name must not be empty")
        if self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {self.max_episode_steps}")
        if self.cond_steps < 1:
            raise ValueError(f"cond_steps (To) must be >= 1, got {self.cond_steps}")
        if self.act_steps < 1:
            raise ValueError(f"act_steps (Ta) must be >= 1, got {self.act_steps}")
        if not self.control_hz > 0:
            raise ValueError(f"control_hz must be > 0, got {self.control_hz}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras repeat: {self.cameras}")
        for cam in self.cameras:
            if not cam.isidentifier():
                raise ValueError(f"camera name {cam!r} must be an identifier (it names an observation key)")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8 pixels, got {self.image_size}")
        if self.reward not in ("sparse", "dense"):
            raise ValueError(f"reward must be 'sparse' or 'dense', got {self.reward!r}")
        if self.obs_noise_std < 0:
            raise ValueError(f"obs_noise_std must be >= 0, got {self.obs_noise_std}")
        if self.randomness not in ("low", "med"):
            raise ValueError(f"randomness must be 'low' or 'med', got {self.randomness!r}")
