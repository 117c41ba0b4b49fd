"""Simulation tasks, wrappers and the vector env.

Importing this package registers every task (lift, can, square, one_leg, halfcheetah, reach2d) but
imports neither robosuite nor MuJoCo: they load when a task env is first built.
"""

from dppo_robot.envs import halfcheetah, one_leg, robomimic_tasks, toy_multimodal  # noqa: F401  (registration)
from dppo_robot.envs.registry import (
    TaskEntry,
    UnknownTaskError,
    default_task_config,
    get_task,
    list_tasks,
    make_env,
    register_task,
    task_io_spec,
)
from dppo_robot.envs.task_config import TaskConfig
from dppo_robot.envs.vector_env import EnvWorkerError, VectorEnv
from dppo_robot.envs.wrappers import ActionChunk, NormalizeObsAction, ObsHistory, make_chunked_env

__all__ = [
    "ActionChunk",
    "EnvWorkerError",
    "NormalizeObsAction",
    "ObsHistory",
    "TaskConfig",
    "TaskEntry",
    "UnknownTaskError",
    "VectorEnv",
    "default_task_config",
    "get_task",
    "list_tasks",
    "make_chunked_env",
    "make_env",
    "register_task",
    "task_io_spec",
]
