"""The rollout collector interface and evaluation episodes over it.

Training and evaluation talk to environments only through `Collector` (reset / step / close
over N chunked envs). Backends: "process", `dppo_robot.envs.vector_env.VectorEnv` (worker
processes on this machine), and "ray", `dppo_robot.envs.ray_collector.RayCollector` (Ray actors
across a cluster's nodes); both run the same env blocks, so the same seeds give the same episodes.

Shapes: obs [N, To, Do] (or a dict with "state" and "image_<camera>" [N, To, 3, H, W]);
action chunks [N, Ta or Tp, Da]; rewards, terminated, truncated [N].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from dppo_robot.confidence import Proportion, proportion
from dppo_robot.envs.task_config import TaskConfig


class Collector(Protocol):
    num_envs: int

    def reset(self, seeds: Sequence[int] | None = None) -> Any: ...

    def step(self, action_chunks: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, list[dict]]: ...

    def close(self) -> None: ...


BACKENDS = ("process", "ray")


@dataclass
class CollectorSettings:
    """Where the training envs run (the `collector:` section of a finetune config)."""

    # process: n_workers worker processes on this machine (VectorEnv);
    # ray: n_workers Ray actors spread over a Ray cluster's nodes (RayCollector, extra [ray])
    backend: Literal["process", "ray"] = "process"
    # ray only: "local" starts Ray inside the job; "auto", "HOST:6379" or "ray://HOST:10001" joins a cluster
    address: str = "local"
    cpus_per_worker: float = 1.0  # ray only: CPUs each env actor reserves on its node

    def validate(self) -> None:
        if not self.address.strip():
            raise ValueError("address must not be empty ('local', 'auto', 'HOST:PORT' or 'ray://HOST:PORT')")
        if self.cpus_per_worker <= 0:
            raise ValueError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker}")
        if self.backend == "process" and (self.address != "local" or self.cpus_per_worker != 1.0):
            raise ValueError("address and cpus_per_worker apply to backend 'ray' only (set backend: ray)")


def make_collector(
    task: TaskConfig,
    n_envs: int,
    n_workers: int = 0,
    normalization: Any | None = None,
    step_timeout_s: float = 120.0,
    backend: str = "process",
    address: str = "local",
    cpus_per_worker: float = 1.0,
) -> Collector:
    """A collector of n_envs chunked envs of `task` (observations/actions normalised when given).

    backend "process" (alias "local"): VectorEnv with n_workers worker processes here;
    "ray": RayCollector with n_workers actors on the Ray cluster at `address` (see CollectorSettings).
    """
    if backend in ("process", "local"):
        from dppo_robot.envs.vector_env import VectorEnv

        return VectorEnv(task, n_envs, n_workers, normalization=normalization, step_timeout_s=step_timeout_s)
    if backend == "ray":
        try:
            from dppo_robot.envs.ray_collector import RayCollector
        except ImportError as e:
            raise ImportError(f"collector backend 'ray' needs Ray: pip install 'dppo-robot[ray]' ({e})") from e
        return RayCollector(
            task,
            n_envs,
            n_workers,
            normalization=normalization,
            step_timeout_s=step_timeout_s,
            address=address,
            cpus_per_worker=cpus_per_worker,
        )
    raise ValueError(f"unknown collector backend {backend!r}; available: {', '.join(map(repr, BACKENDS))}")


def policy_obs(obs: Any) -> dict:
    """Collector observation -> the policy's cond dict {"state", "images": {camera: ...}}."""
    if isinstance(obs, dict):
        cams = {k[len("image_") :]: v for k, v in obs.items() if k.startswith("image_")}
        out: dict = {"state": obs["state"]}
        if cams:
            out["images"] = cams
        return out
    return {"state": obs}


@dataclass
class EvalResult:
    """Outcome of evaluation episodes: success with its Wilson interval, returns and lengths."""

    success: Proportion
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    outcomes: list[bool] = field(default_factory=list)
    phases: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        s = self.success
        out = {
            "episodes": s.trials,
            "successes": s.successes,
            "success_rate": s.rate,
            "success_ci95": [s.low, s.high],
            "mean_return": float(np.mean(self.returns)) if self.returns else float("nan"),
            "mean_length": float(np.mean(self.lengths)) if self.lengths else float("nan"),
        }
        if self.phases:
            out["phase_reached"] = self.phases
        return out


def run_episodes(
    collector: Collector,
    act: Callable[[Any], np.ndarray],
    n_episodes: int,
    seed: int,
    on_episode: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Run exactly n_episodes and report them.

    Env i starts with seed + i; its later episodes take the seeds the collector draws from that
    one, so a run is reproducible. Each env plays a fixed quota of episodes (n_episodes split as
    evenly as possible), so the set of episodes does not depend on which finish first (no bias
    towards short episodes). act(obs) -> action chunks [N, >=Ta, Da]; on_episode(done, total)
    reports progress.
    """
    n = collector.num_envs
    quota = [len(range(i, n_episodes, n)) for i in range(n)]
    done = [0] * n
    obs = collector.reset([seed + i for i in range(n)])
    res = EvalResult(proportion(0, 1))
    successes = 0
    while sum(done) < n_episodes:
        obs, _, term, trunc, infos = collector.step(act(obs))
        for i, inf in enumerate(infos):
            if not (term[i] or trunc[i]) or done[i] >= quota[i]:
                continue
            done[i] += 1
            ok = bool(inf["episode_success"])
            successes += ok
            res.outcomes.append(ok)
            res.returns.append(float(inf["episode_return"]))
            res.lengths.append(int(inf["episode_length"]))
            res.seeds.append(int(inf["seed"]))
            if "phase" in inf:
                res.phases.append(int(inf["phase"]))
            if on_episode is not None:
                on_episode(sum(done), n_episodes)
    res.success = proportion(successes, n_episodes)
    return res
