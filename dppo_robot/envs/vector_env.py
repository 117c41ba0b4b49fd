"""N chunked task envs stepped together, in-process or in worker processes, with auto-reset.

    with VectorEnv(cfg, n_envs=50, n_workers=2, normalization=norm) as venv:
        obs = venv.reset()                                # [N, To, Do] (dict of arrays for pixels)
        obs, reward, terminated, truncated, infos = venv.step(chunks)   # chunks [N, Ta (or Tp), Da]

Each env is make_chunked_env(cfg, ...) (ObsHistory + ActionChunk, optional normalisation).
When an env's episode ends inside step(), its returned obs is the first obs of its next
episode; infos[i] then holds "final_obs", "episode_return" (summed env-step rewards),
"episode_length" (env steps), "episode_success" (any step succeeded) and "reset_seed" (the new
episode's seed). Every info has "success" (any step of this chunk succeeded), "steps" (env
steps executed) and "seed" (the seed of the episode the chunk belonged to).

Seeds: reset(seeds) starts env i's episode with seeds[i]; reset() without seeds uses
cfg.seed + i the first time and fresh draws afterwards. Later episodes of env i take seeds
drawn from a generator seeded by its last explicit seed, so a run is reproducible from its
seeds whatever the number of workers.

Workers (n_workers >= 1) each hold a contiguous block of envs (an EnvBlock, which the Ray
collector dppo_robot.envs.ray_collector runs in its actors too); n_workers = 0 runs every env in
this process (tests, debugging). Worker processes use the "forkserver" start method by default:
fork after torch/OpenMP threads or an OpenGL context exist in the parent is fragile, and
forkserver children start from a clean, single-threaded server. A script that builds a
VectorEnv with workers must guard its entry point with `if __name__ == "__main__":`.

Failures never hang silently: an exception in an env comes back as EnvWorkerError naming the
env index, its episode seed and the remote traceback; a worker that does not answer within
step_timeout_s, or exits, raises EnvWorkerError naming the worker, its env indices and seeds.
After an error the VectorEnv is closed (workers terminated); build a new one to go on.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from dppo_robot.envs.registry import _TASKS, get_task, register_task
from dppo_robot.envs.task_config import TaskConfig
from dppo_robot.envs.wrappers import make_chunked_env
from dppo_robot.model.normalization import Normalization


class EnvWorkerError(RuntimeError):
    """An env raised, or a worker hung or died. Attributes name where."""

    def __init__(
        self,
        message: str,
        *,
        worker: int | None = None,
        env_indices: Sequence[int] = (),
        seeds: Sequence[int | None] = (),
        remote_traceback: str | None = None,
    ) -> None:
        self.worker = worker
        self.env_indices = list(env_indices)
        self.seeds = list(seeds)
        self.remote_traceback = remote_traceback
        full = message if remote_traceback is None else f"{message}\n--- remote traceback ---\n{remote_traceback}"
        super().__init__(full)


class _EnvFactory:
    """Picklable: builds env `index` of a vector env (also re-registers the task in a worker)."""

    def __init__(self, cfg: TaskConfig, normalization: Normalization | None, entry: Any | None) -> None:
        self.cfg = cfg
        self.normalization = normalization
        self.entry = entry  # TaskEntry shipped to workers, whose registry may lack test tasks

    def ensure_registered(self) -> None:
        e = self.entry
        if e is not None and e.name not in _TASKS:
            register_task(e.name, e.builder, e.io_spec_fn, defaults=e.defaults, description=e.description)

    def __call__(self, index: int):
        return make_chunked_env(self.cfg, self.cfg.seed + index, self.normalization)


class _SlotError(Exception):
    def __init__(self, index: int, seed: int | None, phase: str, tb: str) -> None:
        super().__init__(index, seed, phase, tb)
        self.index, self.seed, self.phase, self.tb = index, seed, phase, tb


class _Slot:
    """One chunked env: episode seed bookkeeping, episode statistics, auto-reset."""

    def __init__(self, index: int, base_seed: int, factory: Callable[[int], Any]) -> None:
        self.index = index
        self.seed: int | None = None
        self._pending_seed: int | None = base_seed + index
        self._seed_rng = np.random.default_rng(base_seed + index)
        self.env = None
        self.env = self._guard("make", lambda: factory(index))

    def _guard(self, phase: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as e:
            raise _SlotError(self.index, self.seed, phase, traceback.format_exc()) from e

    def _start(self, seed: int) -> Any:
        self.seed = seed
        self.ep_return, self.ep_length, self.ep_success = 0.0, 0, False
        obs, _ = self._guard("reset", lambda: self.env.reset(seed=seed))
        return obs

    def reset(self, seed: int | None) -> Any:
        if seed is None:
            seed = self._pending_seed if self._pending_seed is not None else int(self._seed_rng.integers(2**31 - 1))
        self._pending_seed = None
        self._seed_rng = np.random.default_rng(seed)
        return self._start(int(seed))

    def step(self, chunk: np.ndarray) -> tuple:
        obs, reward, terminated, truncated, info = self._guard("step", lambda: self.env.step(chunk))
        info = dict(info)
        info["seed"] = self.seed
        self.ep_return += float(reward)
        self.ep_length += int(info.get("steps", 1))
        self.ep_success = self.ep_success or bool(info.get("success", False))
        if terminated or truncated:
            info["final_obs"] = obs
            info["episode_return"] = self.ep_return
            info["episode_length"] = self.ep_length
            info["episode_success"] = self.ep_success
            new_seed = int(self._seed_rng.integers(2**31 - 1))
            info["reset_seed"] = new_seed
            obs = self._start(new_seed)
        return obs, float(reward), bool(terminated), bool(truncated), info

    def close(self) -> None:
        if self.env is not None:
            try:
                self.env.close()
            finally:
                self.env = None


class EnvBlock:
    """A contiguous block of envs as one worker holds it (a worker process here, or a Ray actor).

    call(cmd, data) runs "start" (build the envs -> (observation_space, action_space)), "reset"
    (per-env seeds or None -> [(obs, seed)]) or "step" (per-env chunks -> [(obs, reward,
    terminated, truncated, info)]) and answers with a message: ("ok", result), ("slot_error",
    (env index, episode seed, phase, traceback)) or ("worker_error", traceback).
    """

    def __init__(self, indices: list[int], base_seed: int, factory: _EnvFactory) -> None:
        self.indices = list(indices)
        self.base_seed = base_seed
        self.factory = factory
        self.slots: list[_Slot] = []

    def _start(self) -> tuple[Any, Any]:
        self.factory.ensure_registered()
        for i in self.indices:
            self.slots.append(_Slot(i, self.base_seed, self.factory))
        env = self.slots[0].env
        return env.observation_space, env.action_space

    def call(self, cmd: str, data: Any) -> tuple[str, Any]:
        try:
            if cmd == "start":
                return "ok", self._start()
            if cmd == "reset":
                return "ok", [(s.reset(seed), s.seed) for s, seed in zip(self.slots, data)]
            if cmd == "step":
                return "ok", [s.step(a) for s, a in zip(self.slots, data)]
            raise ValueError(f"unknown command {cmd!r}")
        except _SlotError as e:
            return "slot_error", (e.index, e.seed, e.phase, e.tb)
        except Exception:
            return "worker_error", traceback.format_exc()

    def close(self) -> None:
        for s in self.slots:
            with contextlib.suppress(Exception):
                s.close()
        self.slots = []


def _worker_main(conn, indices: list[int], base_seed: int, factory: _EnvFactory) -> None:
    block = EnvBlock(indices, base_seed, factory)
    try:
        msg = block.call("start", None)
        conn.send(msg)
        while msg[0] == "ok":
            cmd, data = conn.recv()
            if cmd == "close":
                break
            msg = block.call(cmd, data)
            conn.send(msg)
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass
    finally:
        block.close()
        with contextlib.suppress(Exception):
            conn.close()


# -- shared by the collectors over worker blocks (VectorEnv here, RayCollector) ----------------
def split_envs(n_envs: int, n_workers: int) -> list[list[int]]:
    """Contiguous env index blocks, one per worker (sizes differ by at most one)."""
    return [b.tolist() for b in np.array_split(np.arange(n_envs), n_workers)]


def check_reset_seeds(seeds: Sequence[int] | None, n_envs: int) -> list[int | None]:
    """reset()'s seeds argument as one entry per env (None: the env picks its next seed)."""
    if seeds is None:
        return [None] * n_envs
    out = [int(s) for s in seeds]
    if len(out) != n_envs:
        raise ValueError(f"reset: got {len(out)} seeds for {n_envs} envs")
    return out


def check_chunks(action_chunks: np.ndarray, n_envs: int) -> np.ndarray:
    """step()'s action chunks as float32 [N, T, Da], or a ValueError naming the shape."""
    chunks = np.asarray(action_chunks, np.float32)
    if chunks.ndim != 3 or chunks.shape[0] != n_envs:
        raise ValueError(f"step: action chunks must be [N={n_envs}, T, Da], got {chunks.shape}")
    return chunks


def stack_obs(obs_list: list[Any]) -> Any:
    """Per-env observations -> [N, ...] (a dict of stacked arrays for dict observations)."""
    if isinstance(obs_list[0], dict):
        return {k: np.stack([o[k] for o in obs_list]) for k in obs_list[0]}
    return np.stack(obs_list)


def collate_step(results: list[tuple], seeds: list[int | None]) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, list]:
    """Per-env step results -> batched (obs, reward, terminated, truncated, infos); updates seeds."""
    obs, rew, term, trunc, infos = zip(*results)
    for i, info in enumerate(infos):
        seeds[i] = info.get("reset_seed", info.get("seed"))
    return (
        stack_obs(list(obs)),
        np.asarray(rew, np.float32),
        np.asarray(term, bool),
        np.asarray(trunc, bool),
        list(infos),
    )


def slot_error(task: str, where: str, worker: int | None, index: int, seed: int | None, phase: str, tb: str):
    """EnvWorkerError for an env that raised (where: "in-process", "in worker 1", ...)."""
    return EnvWorkerError(
        f"{task}: env {index} (episode seed {seed}) raised during {phase} {where}",
        worker=worker,
        env_indices=[index],
        seeds=[seed],
        remote_traceback=tb,
    )


def answer_error(task: str, worker: int, what: str, kind: str, data: Any, block: list[int], seeds: list, where: str):
    """EnvWorkerError for a worker's non-"ok" answer (see EnvBlock.call)."""
    if kind == "slot_error":
        index, seed, phase, tb = data
        return slot_error(task, where, worker, index, seed, phase, tb)
    return EnvWorkerError(
        f"{task}: worker {worker} (envs {block}, episode seeds {seeds}) failed during {what}",
        worker=worker,
        env_indices=block,
        seeds=seeds,
        remote_traceback=str(data),
    )


class VectorEnv:
    """See the module docstring."""

    def __init__(
        self,
        cfg: TaskConfig,
        n_envs: int,
        n_workers: int = 0,
        normalization: Any | None = None,
        step_timeout_s: float = 60.0,
        start_timeout_s: float = 300.0,
        start_method: str = "forkserver",
    ) -> None:
        cfg.validate()
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        if n_workers < 0:
            raise ValueError(f"n_workers must be >= 0, got {n_workers}")
        self.cfg = cfg
        self.num_envs = n_envs
        self.n_workers = min(n_workers, n_envs)
        self.step_timeout_s = float(step_timeout_s)
        self._closed = False
        self._was_reset = False
        self._seeds: list[int | None] = [None] * n_envs
        norm = normalization
        entry = get_task(cfg.name)
        self._factory = _EnvFactory(cfg, norm, entry)
        self._slots: list[_Slot] = []
        self._procs: list[Any] = []
        self._conns: list[Any] = []
        self._blocks: list[list[int]] = []
        if self.n_workers == 0:
            try:
                self._slots = [_Slot(i, cfg.seed, self._factory) for i in range(n_envs)]
            except _SlotError as e:
                self.close()
                raise self._slot_error(None, e.index, e.seed, e.phase, e.tb) from None
            self.single_observation_space = self._slots[0].env.observation_space
            self.single_action_space = self._slots[0].env.action_space
            return
        ctx = mp.get_context(start_method)
        self._blocks = split_envs(n_envs, self.n_workers)
        try:
            for block in self._blocks:
                parent, child = ctx.Pipe()
                p = ctx.Process(target=_worker_main, args=(child, block, cfg.seed, self._factory), daemon=True)
                p.start()
                child.close()
                self._procs.append(p)
                self._conns.append(parent)
            spaces = self._gather("start", start_timeout_s)
        except BaseException:
            self.close()
            raise
        self.single_observation_space, self.single_action_space = spaces[0]

    # -- plumbing ------------------------------------------------------------------------
    def _slot_error(self, worker: int | None, index: int, seed: int | None, phase: str, tb: str) -> EnvWorkerError:
        where = "in-process" if worker is None else f"in worker {worker}"
        return slot_error(self.cfg.name, where, worker, index, seed, phase, tb)

    def _fail(self, err: EnvWorkerError) -> EnvWorkerError:
        self.close(grace_s=0.2)
        return err

    def _gather(self, what: str, timeout_s: float) -> list[Any]:
        """Receive one answer from every worker (in order) before the deadline."""
        deadline = time.monotonic() + timeout_s
        out = []
        for w, (conn, proc) in enumerate(zip(self._conns, self._procs)):
            block = self._blocks[w]
            seeds = [self._seeds[i] for i in block]
            msg = None
            while msg is None:
                left = deadline - time.monotonic()
                ready = wait([conn, proc.sentinel], timeout=max(0.0, left))
                if conn in ready:
                    try:
                        msg = conn.recv()
                    except (EOFError, OSError):
                        proc.join(1.0)
                        raise self._fail(self._died(w, what, proc.exitcode, block, seeds)) from None
                elif proc.sentinel in ready:
                    proc.join(1.0)
                    raise self._fail(self._died(w, what, proc.exitcode, block, seeds))
                elif left <= 0:
                    raise self._fail(
                        EnvWorkerError(
                            f"{self.cfg.name}: worker {w} (pid {proc.pid}, envs {block}, episode seeds {seeds}) "
                            f"did not answer {what} within {timeout_s:g} s; it is hung or too slow "
                            "(raise step_timeout_s if it is only slow)",
                            worker=w,
                            env_indices=block,
                            seeds=seeds,
                        )
                    )
            kind, data = msg
            if kind != "ok":
                raise self._fail(answer_error(self.cfg.name, w, what, kind, data, block, seeds, f"in worker {w}"))
            out.append(data)
        return out

    def _died(self, w: int, what: str, exitcode: int | None, block: list[int], seeds: list) -> EnvWorkerError:
        return EnvWorkerError(
            f"{self.cfg.name}: worker {w} (envs {block}, episode seeds {seeds}) died during {what} "
            f"with exit code {exitcode}",
            worker=w,
            env_indices=block,
            seeds=seeds,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("VectorEnv is closed (after close() or a worker error); build a new one")

    def _send_all(self, cmd: str, per_env: list[Any]) -> list[Any]:
        for w, conn in enumerate(self._conns):
            try:
                conn.send((cmd, [per_env[i] for i in self._blocks[w]]))
            except (BrokenPipeError, OSError):
                proc = self._procs[w]
                proc.join(1.0)
                block = self._blocks[w]
                raise self._fail(self._died(w, cmd, proc.exitcode, block, [self._seeds[i] for i in block])) from None
        results: list[Any] = []
        for part in self._gather(cmd, self.step_timeout_s):
            results.extend(part)
        return results

    # -- API -----------------------------------------------------------------------------
    def reset(self, seeds: Sequence[int] | None = None) -> Any:
        """Start a new episode in every env; returns obs [N, To, Do] (dict of [N, To, ...] for pixels)."""
        self._check_open()
        per_env = check_reset_seeds(seeds, self.num_envs)
        if self._slots:
            obs = []
            for s, seed in zip(self._slots, per_env):
                try:
                    obs.append(s.reset(seed))
                except _SlotError as e:
                    raise self._fail(self._slot_error(None, e.index, e.seed, e.phase, e.tb)) from None
                self._seeds[s.index] = s.seed
        else:
            for i, seed in enumerate(per_env):
                self._seeds[i] = seed
            obs, chosen = zip(*self._send_all("reset", per_env))
            self._seeds = list(chosen)
        self._was_reset = True
        return stack_obs(list(obs))

    def step(self, action_chunks: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """action_chunks [N, Ta or Tp, Da] -> (obs, reward [N], terminated [N], truncated [N], infos)."""
        self._check_open()
        if not self._was_reset:
            raise RuntimeError("VectorEnv.step() before reset()")
        chunks = check_chunks(action_chunks, self.num_envs)
        if self._slots:
            results = []
            for s in self._slots:
                try:
                    results.append(s.step(chunks[s.index]))
                except _SlotError as e:
                    raise self._fail(self._slot_error(None, e.index, e.seed, e.phase, e.tb)) from None
        else:
            results = self._send_all("step", list(chunks))
        return collate_step(results, self._seeds)

    @property
    def seeds(self) -> list[int | None]:
        """Episode seed of each env's current episode (None until known)."""
        return list(self._seeds)

    def close(self, grace_s: float = 2.0) -> None:
        """Stop workers (asking first, then terminate / kill stragglers after grace_s); idempotent."""
        if self._closed:
            return
        self._closed = True
        for s in self._slots:
            with contextlib.suppress(Exception):
                s.close()
        for conn in self._conns:
            with contextlib.suppress(Exception):
                conn.send(("close", None))
        deadline = time.monotonic() + grace_s
        for p in self._procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self._procs:
            if p.is_alive():
                p.terminate()
                p.join(1.0)
            if p.is_alive():
                p.kill()
                p.join(1.0)
        for conn in self._conns:
            with contextlib.suppress(Exception):
                conn.close()

    def __enter__(self) -> VectorEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
