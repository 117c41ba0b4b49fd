"""Trial runners: N seeded trials of a bundle, one TrialRecord per trial, appended as each ends.

`run_sim_trials` plays the bundle's ONNX chain through PolicyRuntime against a VectorEnv
(in-process or worker processes), exactly as `dppo-robot evaluate` does for a bundle, and
writes each finished episode to the store at once. The sim-in-the-loop runner (through the
ROS 2 stack) lives in dppo_robot.sim2real.ros_runner so this module never imports ROS.

Phases: a task that reports info["phase"] (and info["phase_name"]) at episode end gives the
highest phase reached; other tasks get phase 1 "success" or 0 "start" from the outcome.
Durations in simulation are simulated seconds (env steps / control_hz).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dppo_robot.envs.task_config import TaskConfig
from dppo_robot.sim2real.records import Setting, TrialRecord, TrialStore, new_trial_id, utc_now

DEFAULT_PHASE_NAMES = ("start", "success")


@dataclass(frozen=True)
class BundleId:
    """What a record says about the policy: manifest name and the ONNX graph's sha256."""

    name: str
    sha256: str
    path: str


def bundle_id(bundle_dir: str | Path) -> BundleId:
    """Name and policy.onnx sha256 from the bundle manifest (errors name the manifest)."""
    from dppo_robot.bundle.manifest import read_manifest

    m = read_manifest(bundle_dir)
    return BundleId(m.name, m.files[m.onnx.file], str(bundle_dir))


class TrialRunner(Protocol):
    """Runs n trials of one bundle and hands each finished TrialRecord to on_trial."""

    setting: str

    def run(self, n: int, on_trial: Callable[[TrialRecord], None]) -> list[TrialRecord]: ...


@dataclass
class EpisodeEnd:
    """What a runner knows when an episode ends."""

    seed: int
    success: bool
    episode_return: float
    steps: int
    phase: int | None
    phase_name: str | None
    start_utc: str
    end_utc: str
    aborted: str = ""  # the simulation ended the episode early (e.g. "policy_held")


def _randomness_level(task: TaskConfig) -> str:
    """The task's randomness level, or "" for a task that has no levels (only its registry defaults name one)."""
    from dppo_robot.envs.registry import UnknownTaskError, get_task

    try:
        has_levels = "randomness" in get_task(task.name).defaults
    except UnknownTaskError:  # keep what the config says
        has_levels = True
    return task.randomness if has_levels else ""


def make_record(
    bid: BundleId, task: TaskConfig, setting: Setting, ep: EpisodeEnd, index: int, session: str
) -> TrialRecord:
    """A TrialRecord of a simulated episode (phase names: registered for the task, else as reported)."""
    from dppo_robot.sim2real.phases import task_phase_names

    if ep.phase is None:
        names = list(DEFAULT_PHASE_NAMES)
        phase, source = int(ep.success), "none"
    else:
        phase, source = ep.phase, "env"
        names = list(task_phase_names(task.name) or [])
        if phase >= len(names):
            names += [f"phase_{k}" for k in range(len(names), phase + 1)]
        if ep.phase_name and names[phase] != ep.phase_name:
            if task_phase_names(task.name) is not None:
                raise ValueError(
                    f"task '{task.name}' reported phase {phase} as '{ep.phase_name}' but its registered names "
                    f"are {names}"
                )
            names[phase] = ep.phase_name
    name = names[phase]
    return TrialRecord(
        bundle_name=bid.name,
        bundle_sha256=bid.sha256,
        setting=setting,
        task=task.name,
        success=ep.success,
        phase_reached=phase,
        phase_name=name,
        phase_names=names,
        duration_s=ep.steps / task.control_hz,
        start_utc=ep.start_utc,
        end_utc=ep.end_utc,
        randomness=_randomness_level(task),
        initial_condition=f"seed:{ep.seed}",
        seed=ep.seed,
        failure_mode="" if ep.success else (ep.aborted or f"stopped_after_{name}"),
        trial_id=new_trial_id(),
        session=session,
        trial_index=index,
        bundle_path=bid.path,
        episode_return=ep.episode_return,
        steps=ep.steps,
        phase_source=source,
    )


class _EpisodeTap:
    """A Collector that passes through and reports each counted episode end (run_episodes' quota rule)."""

    def __init__(self, inner: Any, n_episodes: int, on_end: Callable[[EpisodeEnd], None]) -> None:
        self.inner = inner
        self.num_envs = inner.num_envs
        self.quota = [len(range(i, n_episodes, self.num_envs)) for i in range(self.num_envs)]
        self.done = [0] * self.num_envs
        self.started = [utc_now()] * self.num_envs
        self.on_end = on_end

    def reset(self, seeds: Sequence[int] | None = None) -> Any:
        obs = self.inner.reset(seeds)
        self.started = [utc_now()] * self.num_envs
        return obs

    def step(self, action_chunks: np.ndarray) -> tuple:
        obs, rew, term, trunc, infos = self.inner.step(action_chunks)
        now = utc_now()
        for i, inf in enumerate(infos):
            if not (term[i] or trunc[i]):
                continue
            if self.done[i] < self.quota[i]:
                self.done[i] += 1
                phase = inf.get("phase")
                self.on_end(
                    EpisodeEnd(
                        seed=int(inf["seed"]),
                        success=bool(inf["episode_success"]),
                        episode_return=float(inf["episode_return"]),
                        steps=int(inf["episode_length"]),
                        phase=None if phase is None else int(phase),
                        phase_name=inf.get("phase_name"),
                        start_utc=self.started[i],
                        end_utc=now,
                    )
                )
            self.started[i] = now
        return obs, rew, term, trunc, infos

    def close(self) -> None:
        self.inner.close()


def run_sim_trials(
    bundle_dir: str | Path,
    task: TaskConfig,
    n: int,
    store: TrialStore,
    *,
    seed: int = 0,
    n_envs: int = 8,
    workers: int = 0,
    setting: Setting = "sim",
    session: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> list[TrialRecord]:
    """n seeded trials of a bundle in direct simulation; each record is appended to the store as it ends.

    The task runs with the bundle's cond_steps (To) and act_steps (Ta).
    """
    from dppo_robot.envs.registry import task_io_spec
    from dppo_robot.runtime.policy_runtime import PolicyRuntime, RuntimeConfig
    from dppo_robot.train.rollout import make_collector, policy_obs, run_episodes

    if n < 1:
        raise ValueError(f"number of trials must be >= 1, got {n}")
    bid = bundle_id(bundle_dir)
    rt = PolicyRuntime(bundle_dir, RuntimeConfig(intra_op_threads=1, warmup_iters=1))
    # the policy's history and executed-chunk lengths are the bundle's (as on the robot)
    task = dataclasses.replace(task, cond_steps=rt.manifest.cond_steps, act_steps=rt.manifest.act_steps)
    spec = task_io_spec(task)
    rt.check_spec(spec, f"task '{task.name}'")
    rng = np.random.default_rng(seed)
    session = session or f"sim-{time.strftime('%Y%m%dT%H%M%S')}-{new_trial_id()[:4]}"
    records: list[TrialRecord] = []

    def on_end(ep: EpisodeEnd) -> None:
        rec = make_record(bid, task, setting, ep, len(records), session)
        store.append(rec)
        records.append(rec)

    def act(obs: Any) -> np.ndarray:
        c = policy_obs(obs)
        return rt.predict(np.asarray(c["state"], np.float32), c.get("images"), rng=rng)

    col = make_collector(task, min(n_envs, n), workers, normalization=None)
    tap = _EpisodeTap(col, n, on_end)
    try:
        run_episodes(tap, act, n, seed, progress)
    finally:
        tap.close()
    return records
