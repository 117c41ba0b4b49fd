"""Task registry: name -> (env builder, IOSpec builder, defaults).

A builder takes (TaskConfig, seed) and returns a raw single gymnasium env in env units:
obs float32 [Do] (or a dict {"state": float32 [Dp], "image_<cam>": uint8 [3, H, W]} when
cameras are set), action float32 [Da], info["success"] bool on reset and every step.
`make_env` adds the episode time limit (truncated at cfg.max_episode_steps).

Builders used with worker processes must be module-level functions (they are pickled by
reference and the worker re-registers the entry it is sent).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from dppo_robot.envs.task_config import TaskConfig
from dppo_robot.io_spec import IOSpec

EnvBuilder = Callable[[TaskConfig, "int | None"], gym.Env]
SpecBuilder = Callable[[TaskConfig], IOSpec]


class UnknownTaskError(KeyError):
    """A task name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class TaskEntry:
    name: str
    builder: EnvBuilder
    io_spec_fn: SpecBuilder
    # TaskConfig field overrides that make the task's reference configuration.
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_TASKS: dict[str, TaskEntry] = {}


def register_task(
    name: str,
    builder: EnvBuilder,
    io_spec_fn: SpecBuilder,
    *,
    defaults: dict[str, Any] | None = None,
    description: str = "",
    overwrite: bool = False,
) -> TaskEntry:
    """Register a task; re-registering a name needs overwrite=True (same entry is a no-op)."""
    entry = TaskEntry(name, builder, io_spec_fn, dict(defaults or {}), description)
    known = {f.name for f in dataclasses.fields(TaskConfig)}
    bad = sorted(set(entry.defaults) - known)
    if bad:
        raise ValueError(f"task '{name}': defaults name unknown TaskConfig fields {bad}")
    old = _TASKS.get(name)
    if old is not None and not overwrite and (old.builder, old.io_spec_fn) != (builder, io_spec_fn):
        raise ValueError(f"task '{name}' is already registered (pass overwrite=True to replace it)")
    _TASKS[name] = entry
    return entry


def unregister_task(name: str) -> None:
    _TASKS.pop(name, None)


def list_tasks() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str) -> TaskEntry:
    try:
        return _TASKS[name]
    except KeyError:
        known = ", ".join(list_tasks()) or "(none)"
        raise UnknownTaskError(f"unknown task '{name}'; known tasks: {known}") from None


def default_task_config(name: str, **overrides: Any) -> TaskConfig:
    """The task's reference TaskConfig (registered defaults), with overrides applied and validated."""
    entry = get_task(name)
    cfg = TaskConfig(name=name, **{**entry.defaults, **overrides})
    cfg.validate()
    return cfg


def make_env(cfg: TaskConfig, seed: int | None = None) -> gym.Env:
    """Raw single env of the task (env units) with the time limit of cfg.max_episode_steps.

    seed: seeds the env's own generator (initial states and obs noise); the first reset()
    without a seed draws from it. None uses cfg.seed.
    """
    cfg.validate()
    entry = get_task(cfg.name)
    env = entry.builder(cfg, cfg.seed if seed is None else seed)
    return gym.wrappers.TimeLimit(env, max_episode_steps=cfg.max_episode_steps)


def task_io_spec(cfg: TaskConfig) -> IOSpec:
    """Named observation/action slices (units, frames), cameras and rate of the task as configured."""
    spec = get_task(cfg.name).io_spec_fn(cfg)
    spec.validate()
    return spec
