"""A rollout collector whose envs run in Ray actors spread over the nodes of a Ray cluster.

    col = RayCollector(cfg, n_envs=50, n_workers=8, normalization=norm, address="auto")
    obs = col.reset(seeds)                                            # [N, To, Do]
    obs, reward, terminated, truncated, infos = col.step(chunks)      # chunks [N, Ta (or Tp), Da]

The same protocol (dppo_robot.train.rollout.Collector) and the same episodes as the process pool
(dppo_robot.envs.vector_env.VectorEnv): each of the n_workers actors holds one contiguous block
of envs in an EnvBlock, the class a VectorEnv worker process runs, so env i is built, seeded and
auto-reset by the same code and a run is reproducible from its seeds whatever the backend.

Placement: one placement group of n_workers bundles {"CPU": cpus_per_worker} with the SPREAD
strategy, so actors go to different nodes as far as the cluster allows (best effort: more
workers than nodes share nodes). Ray gives an actor with one CPU OMP_NUM_THREADS=1.
worker_nodes lists each actor's node id and address.

Connection: address "local" starts a Ray instance inside this process; "auto" joins the
cluster of this machine (`ray start`), "HOST:6379" a cluster's head, "ray://HOST:10001" a
cluster through Ray Client. A process already connected to Ray (ray.init called before) is
used as it is. Every node must have the same dppo_robot (and its extras) installed.

Per chunk step, a remote call carries the block's action chunks in ([n, Ta, Da] float32) and
its results out: per env obs [To, Do] float32 (or the image dict), reward, two flags and the
info dict (a few hundred bytes pickled; with "final_obs" when an episode ended).

Bad input (an address nobody answers on, more CPUs than the cluster has) raises ConfigError.
Failures: an env that raises comes back as EnvWorkerError naming the env index, its episode
seed and the remote traceback; an actor that dies (node lost, process killed, ray.kill) or does
not answer within step_timeout_s raises EnvWorkerError naming the worker, its env indices and
their episode seeds. After an error the collector is closed (actors killed); build a new one.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from dppo_robot.envs.registry import get_task
from dppo_robot.envs.task_config import TaskConfig
from dppo_robot.envs.vector_env import (
    EnvBlock,
    EnvWorkerError,
    _EnvFactory,
    answer_error,
    check_chunks,
    check_reset_seeds,
    collate_step,
    split_envs,
    stack_obs,
)
from dppo_robot.typed_config import ConfigError

NAMESPACE = "dppo_robot"  # Ray namespace of the env actors (named "env-<collector id>-<worker>")


class _EnvActor:
    """One env block in a Ray actor (made remote with per-collector options in RayCollector)."""

    def __init__(self, indices: list[int], base_seed: int, factory: _EnvFactory) -> None:
        self.block = EnvBlock(indices, base_seed, factory)

    def start(self) -> tuple[tuple[str, Any], dict[str, Any]]:
        ctx = ray.get_runtime_context()
        where = {"node_id": ctx.get_node_id(), "address": ray.util.get_node_ip_address(), "pid": os.getpid()}
        return self.block.call("start", None), where

    def call(self, cmd: str, data: Any) -> tuple[str, Any]:
        return self.block.call(cmd, data)

    def close(self) -> None:
        self.block.close()


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast on a HOST:PORT nobody listens on (ray.init would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"collector.address {address!r} is not 'local', 'auto', 'HOST:PORT' or 'ray://HOST:PORT'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ConfigError(
            f"collector.address {address}: cannot reach a Ray head there ({e}); is `ray start --head` running?"
        ) from None


def connect(address: str) -> bool:
    """Connect this process to Ray; returns True when this call did (so close() disconnects)."""
    if ray.is_initialized():
        return False
    if address == "local":
        ray.init(address="local", include_dashboard=False, log_to_driver=True)
    else:
        if address != "auto" and not address.startswith("ray://"):
            _check_reachable(address)
        try:
            ray.init(address=address)
        except ConnectionError as e:
            raise ConfigError(f"collector.address {address}: {e}") from None
    return True


class RayCollector:
    """See the module docstring."""

    def __init__(
        self,
        cfg: TaskConfig,
        n_envs: int,
        n_workers: int,
        normalization: Any | None = None,
        step_timeout_s: float = 120.0,
        start_timeout_s: float = 300.0,
        address: str = "local",
        cpus_per_worker: float = 1.0,
        verbose: bool = True,
    ) -> None:
        cfg.validate()
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        if n_workers < 1:
            raise ValueError(f"the ray collector needs n_workers >= 1 (one env actor each), got {n_workers}")
        if cpus_per_worker <= 0:
            raise ValueError(f"cpus_per_worker must be > 0, got {cpus_per_worker}")
        self.cfg = cfg
        self.num_envs = n_envs
        self.n_workers = min(n_workers, n_envs)
        self.step_timeout_s = float(step_timeout_s)
        self.id = uuid.uuid4().hex[:8]
        self._closed = False
        self._was_reset = False
        self._seeds: list[int | None] = [None] * n_envs
        self._blocks = split_envs(n_envs, self.n_workers)
        self._actors: list[Any] = []
        self._pg = None
        self.worker_nodes: list[dict[str, Any]] = []
        self._owns_ray = connect(address)
        try:
            self._start(cfg, normalization, cpus_per_worker, start_timeout_s)
        except BaseException:
            self.close()
            raise
        if verbose:
            print(self.describe(), flush=True)

    def _start(self, cfg: TaskConfig, normalization: Any, cpus: float, timeout_s: float) -> None:
        self._pg = placement_group([{"CPU": cpus}] * self.n_workers, strategy="SPREAD")
        ready, _ = ray.wait([self._pg.ready()], timeout=timeout_s)
        if not ready:
            raise ConfigError(
                f"{cfg.name}: the Ray cluster cannot place {self.n_workers} env workers of {cpus:g} CPU each "
                f"within {timeout_s:g} s (cluster resources {ray.cluster_resources()}); "
                "lower n_workers or collector.cpus_per_worker, or add nodes"
            )
        factory = _EnvFactory(cfg, normalization, get_task(cfg.name))
        remote = ray.remote(_EnvActor)
        for w, block in enumerate(self._blocks):
            opts = remote.options(
                num_cpus=cpus,
                scheduling_strategy=PlacementGroupSchedulingStrategy(self._pg, placement_group_bundle_index=w),
                max_restarts=0,
                max_task_retries=0,
                name=f"env-{self.id}-{w}",
                namespace=NAMESPACE,
            )
            self._actors.append(opts.remote(block, cfg.seed, factory))
        answers = self._gather("start", [a.start.remote() for a in self._actors], timeout_s)
        spaces = []
        for w, (msg, where) in enumerate(answers):
            self.worker_nodes.append({"worker": w, "envs": self._blocks[w], **where})
            kind, data = msg
            if kind != "ok":
                raise self._fail(self._answer_error(w, "start", kind, data))
            spaces.append(data)
        self.single_observation_space, self.single_action_space = spaces[0]

    def describe(self) -> str:
        """One line: where the env actors run."""
        nodes = {w["node_id"] for w in self.worker_nodes}
        parts = [
            f"worker {w['worker']} envs {w['envs'][0]}-{w['envs'][-1]} on {w['address']} (node {w['node_id'][:8]})"
            for w in self.worker_nodes
        ]
        return f"ray collector {self.id}: {self.n_workers} env actors on {len(nodes)} node(s): " + "; ".join(parts)

    # -- plumbing ------------------------------------------------------------------------
    def _block_seeds(self, w: int) -> list[int | None]:
        return [self._seeds[i] for i in self._blocks[w]]

    def _answer_error(self, w: int, what: str, kind: str, data: Any) -> EnvWorkerError:
        where = f"in ray worker {w}"
        if w < len(self.worker_nodes):
            where += f" on {self.worker_nodes[w]['address']}"
        return answer_error(self.cfg.name, w, what, kind, data, self._blocks[w], self._block_seeds(w), where)

    def _fail(self, err: EnvWorkerError) -> EnvWorkerError:
        self.close(grace_s=0.0)
        return err

    def _gather(self, what: str, refs: list[Any], timeout_s: float) -> list[Any]:
        """Every worker's answer (in worker order), or EnvWorkerError for the first that died or hung."""
        deadline = time.monotonic() + timeout_s
        index = {r: w for w, r in enumerate(refs)}
        out: list[Any] = [None] * len(refs)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                w = min(index[r] for r in pending)
                block, seeds = self._blocks[w], self._block_seeds(w)
                raise self._fail(
                    EnvWorkerError(
                        f"{self.cfg.name}: ray worker {w} (actor env-{self.id}-{w}, envs {block}, episode seeds "
                        f"{seeds}) did not answer {what} within {timeout_s:g} s; it is hung or too slow "
                        "(raise step_timeout_s if it is only slow)",
                        worker=w,
                        env_indices=block,
                        seeds=seeds,
                    )
                )
            for r in ready:
                w = index[r]
                try:
                    out[w] = ray.get(r)
                except ray.exceptions.RayError as e:
                    block, seeds = self._blocks[w], self._block_seeds(w)
                    node = self.worker_nodes[w]["address"] if w < len(self.worker_nodes) else "?"
                    cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    raise self._fail(
                        EnvWorkerError(
                            f"{self.cfg.name}: ray worker {w} (actor env-{self.id}-{w} on {node}, envs {block}, "
                            f"episode seeds {seeds}) died during {what}: {type(e).__name__}: {cause}",
                            worker=w,
                            env_indices=block,
                            seeds=seeds,
                        )
                    ) from None
        return out

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("RayCollector is closed (after close() or a worker error); build a new one")

    def _call_all(self, cmd: str, per_block: list[Any]) -> list[Any]:
        refs = [a.call.remote(cmd, data) for a, data in zip(self._actors, per_block)]
        results: list[Any] = []
        for w, (kind, data) in enumerate(self._gather(cmd, refs, self.step_timeout_s)):
            if kind != "ok":
                raise self._fail(self._answer_error(w, cmd, kind, data))
            results.extend(data)
        return results

    # -- API -----------------------------------------------------------------------------
    def reset(self, seeds: Sequence[int] | None = None) -> Any:
        """Start a new episode in every env; returns obs [N, To, Do] (dict of [N, To, ...] for pixels)."""
        self._check_open()
        per_env = check_reset_seeds(seeds, self.num_envs)
        self._seeds = list(per_env)
        answers = self._call_all("reset", [[per_env[i] for i in b] for b in self._blocks])
        obs, chosen = zip(*answers)
        self._seeds = list(chosen)
        self._was_reset = True
        return stack_obs(list(obs))

    def step(self, action_chunks: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """action_chunks [N, Ta or Tp, Da] -> (obs, reward [N], terminated [N], truncated [N], infos)."""
        self._check_open()
        if not self._was_reset:
            raise RuntimeError("RayCollector.step() before reset()")
        chunks = check_chunks(action_chunks, self.num_envs)
        results = self._call_all("step", [chunks[b[0] : b[-1] + 1] for b in self._blocks])
        return collate_step(results, self._seeds)

    @property
    def seeds(self) -> list[int | None]:
        """Episode seed of each env's current episode (None until known)."""
        return list(self._seeds)

    def close(self, grace_s: float = 2.0) -> None:
        """Close the envs (asking first, up to grace_s), kill the actors, free the placement group; idempotent."""
        if self._closed:
            return
        self._closed = True
        if not ray.is_initialized():
            return
        if self._actors and grace_s > 0:
            with contextlib.suppress(Exception):
                ray.wait([a.close.remote() for a in self._actors], num_returns=len(self._actors), timeout=grace_s)
        for a in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(a, no_restart=True)
        if self._pg is not None:
            with contextlib.suppress(Exception):
                remove_placement_group(self._pg)
        if self._owns_ray:
            ray.shutdown()

    def __enter__(self) -> RayCollector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
