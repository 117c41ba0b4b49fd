"""The Ray collector on a real two-node Ray cluster kept on loopback (ray.cluster_utils.Cluster).

RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 binds every node to 127.0.0.1 (see
shared/reference/environment.md); the cluster starts once for the module. Env actors must land
on both nodes, give the episodes the process pool gives, and turn an env error, a hang and a
killed actor into EnvWorkerError naming envs and seeds; a fine-tuning job whose actor is killed
resumes from its checkpoint into the run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

# Ray reads this when it is imported: every node of a Cluster then binds 127.0.0.1 (loopback only)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import ray
from ray._private import ray_constants
from ray.cluster_utils import Cluster

from dppo_robot.bench.train_throughput import collector_backend_rows
from dppo_robot.envs.ray_collector import NAMESPACE, RayCollector, _check_reachable
from dppo_robot.envs.registry import default_task_config
from dppo_robot.envs.vector_env import EnvWorkerError, VectorEnv
from dppo_robot.train.finetune import finetune
from dppo_robot.train.pretrain import pretrain
from dppo_robot.typed_config import ConfigError, to_dict
from tests.envs.faulty_tasks import TRIGGER_SEED  # also registers test_crash, test_hang
from tests.train.conftest import demos, finetune_cfg, pretrain_cfg, quiet

COMPARED = ("itr", "env_steps", "episodes", "train_success_rate", "train_return", "approx_kl", "explained_variance")


@pytest.fixture(scope="module")
def cluster():
    """A head and one worker node, 2 CPUs each, all on 127.0.0.1; this process is a driver."""
    assert not ray_constants.ENABLE_RAY_CLUSTER, "ray was imported before RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set"
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        c.add_node(num_cpus=2)
        c.wait_for_nodes()
        assert c.address.startswith("127.0.0.1:"), c.address
        ray.init(address=c.address, log_to_driver=False)
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def node_ids() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def rollout(col, cfg, seeds: list[int], n_chunks: int) -> list:
    rng = np.random.default_rng(0)
    out = [col.reset(seeds)]
    for _ in range(n_chunks):
        chunks = rng.uniform(-1, 1, (len(seeds), cfg.act_steps, 2)).astype(np.float32)
        obs, rew, term, trunc, infos = col.step(chunks)
        out += [obs, rew, term, trunc, [(i["seed"], i.get("reset_seed"), i.get("episode_return")) for i in infos]]
    return out


def test_actors_spread_over_both_nodes_and_replay_the_process_pool(cluster):
    cfg = default_task_config("reach2d")
    seeds = [11, 12, 13, 14, 15]
    n_chunks = 3 * cfg.max_episode_steps // cfg.act_steps  # three episodes per env: auto-resets included
    with RayCollector(cfg, 5, 2, address=cluster.address, verbose=False) as col:
        assert {w["node_id"] for w in col.worker_nodes} == node_ids() and len(node_ids()) == 2
        assert [w["envs"] for w in col.worker_nodes] == [[0, 1, 2], [3, 4]]
        got = rollout(col, cfg, seeds, n_chunks)
    with VectorEnv(cfg, 5, 2) as venv:
        want = rollout(venv, cfg, seeds, n_chunks)
    assert any(r is not None for step in got[5::5] for _, r, _ in step)  # episodes did end and restart
    for g, w in zip(got, want):
        assert np.array_equal(np.asarray(g, dtype=object), np.asarray(w, dtype=object))


def test_env_error_names_env_seed_and_remote_traceback(cluster):
    cfg = default_task_config("test_crash")
    col = RayCollector(cfg, 3, 2, address=cluster.address, verbose=False)
    col.reset([7, TRIGGER_SEED, 8])
    with pytest.raises(EnvWorkerError) as ei:
        for _ in range(10):
            col.step(np.zeros((3, cfg.act_steps, 2), np.float32))
    err = ei.value
    assert err.env_indices == [1] and err.seeds == [TRIGGER_SEED] and err.worker == 0
    assert f"env 1 (episode seed {TRIGGER_SEED}) raised during step in ray worker 0" in str(err)
    assert "boom: deliberate test failure" in (err.remote_traceback or "")
    with pytest.raises(RuntimeError, match="closed"):
        col.step(np.zeros((3, cfg.act_steps, 2), np.float32))


def live_actor_names(collector_id: str) -> list[str]:
    return [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == NAMESPACE and a["name"].startswith(f"env-{collector_id}-")
    ]


def test_hanging_actor_times_out_and_is_killed(cluster):
    cfg = default_task_config("test_hang")
    col = RayCollector(cfg, 2, 2, step_timeout_s=2.0, address=cluster.address, verbose=False)
    assert len(live_actor_names(col.id)) == 2
    col.reset([TRIGGER_SEED, 3])
    with pytest.raises(EnvWorkerError) as ei:
        for _ in range(10):
            col.step(np.zeros((2, cfg.act_steps, 2), np.float32))
    err = ei.value
    assert err.worker == 0 and err.env_indices == [0] and err.seeds == [TRIGGER_SEED]
    assert "did not answer step within 2 s" in str(err)
    assert live_actor_names(col.id) == []  # close() killed the hung actor (and its neighbour)


def test_killed_actor_names_its_envs_and_seeds(cluster):
    cfg = default_task_config("reach2d")
    col = RayCollector(cfg, 4, 2, address=cluster.address, verbose=False)
    col.reset([21, 22, 23, 24])
    col.step(np.zeros((4, cfg.act_steps, 2), np.float32))
    ray.kill(ray.get_actor(f"env-{col.id}-1", namespace=NAMESPACE), no_restart=True)
    with pytest.raises(EnvWorkerError) as ei:
        col.step(np.zeros((4, cfg.act_steps, 2), np.float32))
    err = ei.value
    assert err.worker == 1 and err.env_indices == [2, 3] and err.seeds == [23, 24]
    assert "envs [2, 3], episode seeds [23, 24]) died during step" in str(err)


def test_unreachable_head_is_a_one_line_config_error():
    with socket.socket() as s:  # bound, never listening: connecting is refused
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(ConfigError, match=rf"^collector.address {address}: cannot reach a Ray head there"):
            _check_reachable(address)
    with pytest.raises(ConfigError, match="is not 'local', 'auto'"):
        _check_reachable("headnode")


def test_more_cpus_than_the_cluster_has_is_a_config_error(cluster):
    cfg = default_task_config("reach2d")
    with pytest.raises(ConfigError, match=r"cannot place 2 env workers of 3 CPU each within 2 s"):
        RayCollector(cfg, 4, 2, start_timeout_s=2.0, address=cluster.address, cpus_per_worker=3.0, verbose=False)
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU") != 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU") == 4  # the placement group was removed


def test_backend_bench_rows(cluster):
    rows = collector_backend_rows("reach2d", 4, 2, workers=(1, 2), address=cluster.address)
    assert [(r["backend"], r["workers"]) for r in rows] == [("process", 1), ("process", 2), ("ray", 1), ("ray", 2)]
    assert all(r["env_steps"] == 2 * 4 * 4 and r["env_steps_per_s"] > 0 for r in rows)  # 2 chunks x 4 envs x Ta 4
    assert ray.is_initialized()  # the rows used this process's connection and left it open


# -- fine-tuning through the Ray collector ------------------------------------------------------
@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A small BC checkpoint and a reach2d DPPO config over it (10 envs, a checkpoint every iteration)."""
    tmp = tmp_path_factory.mktemp("ray_finetune")
    pc = pretrain_cfg(tmp, demos(tmp, 0), "diffusion", 0)
    pc.train_steps = 100  # the policy's quality does not matter here, only that both backends agree
    ckpt = quiet(pretrain, pc)
    cfg = finetune_cfg(tmp, ckpt, "dppo", 0)
    cfg.n_itr, cfg.n_envs, cfg.n_workers, cfg.save_every = 6, 10, 2, 1
    cfg.eval.every = 0
    cfg.ppo.batch_size = 200
    return tmp, cfg


@pytest.fixture(scope="module")
def reference_rows(job):
    """The job on the process pool, uninterrupted."""
    tmp, cfg = job
    ref = finetune_cfg(tmp, cfg.checkpoint)
    for k in to_dict(cfg):
        setattr(ref, k, getattr(cfg, k))
    ref.run_dir = str(tmp / "process_pool")
    quiet(finetune, ref)
    return rows(ref.run_dir)


def rows(run_dir) -> list[dict]:
    with open(f"{run_dir}/train.jsonl") as f:
        return [json.loads(line) for line in f]


def same_metrics(got: list[dict], want: list[dict]) -> None:
    assert [r["itr"] for r in got] == [r["itr"] for r in want]
    for g, w in zip(got, want):
        assert {k: g[k] for k in COMPARED} == {k: w[k] for k in COMPARED}


def test_two_dppo_iterations_on_ray_match_the_process_pool(cluster, job, reference_rows, capsys):
    tmp, base = job
    cfg = finetune_cfg(tmp, base.checkpoint)
    for k in to_dict(base):
        setattr(cfg, k, getattr(base, k))
    cfg.run_dir = str(tmp / "ray_two_itr")
    cfg.n_itr = 2
    cfg.collector.backend, cfg.collector.address = "ray", cluster.address
    finetune(cfg)
    out = capsys.readouterr().out
    placed = set(re.findall(r"\(node ([0-9a-f]{8})\)", out))
    assert placed == {n[:8] for n in node_ids()} and len(placed) == 2, out
    same_metrics(rows(cfg.run_dir), reference_rows[:2])


def test_killed_actor_fails_the_job_which_then_resumes(cluster, job, reference_rows, tmp_path):
    tmp, cfg = job
    run_dir = tmp_path / "ray_killed"
    data = to_dict(cfg)
    data["run_dir"] = str(run_dir)
    cfg_path = tmp_path / "ft.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    cmd = [sys.executable, "-m", "dppo_robot", "finetune", str(cfg_path), "--collector", "ray"]
    cmd += ["--ray-address", cluster.address]
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        jsonl, victim = run_dir / "train.jsonl", None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"ray collector (\w+):", log_path.read_text())
            # a row is logged before its checkpoint: 2 rows mean iteration 1 was saved
            if m and jsonl.is_file() and len(jsonl.read_text().splitlines()) >= 2:
                victim = ray.get_actor(f"env-{m.group(1)}-1", namespace=NAMESPACE)
                ray.kill(victim, no_restart=True)
                break
            time.sleep(0.05)
        assert victim is not None, "the job finished (or never started) before an actor could be killed"
        assert proc.wait(timeout=120) != 0
    first = log_path.read_text()
    seeds = r"\[\d+, \d+, \d+, \d+, \d+\]"
    pattern = r"EnvWorkerError: reach2d: ray worker 1 \(actor env-\w+-1 on 127\.0\.0\.1, envs \[5, 6, 7, 8, 9\], "
    assert re.search(pattern + rf"episode seeds {seeds}\) died during (step|reset)", first), first[-3000:]

    import torch

    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert 1 <= saved < cfg.n_itr
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"starting at itr {saved}/{cfg.n_itr}" in out.stdout
    same_metrics(rows(run_dir), reference_rows)  # nothing lost, nothing repeated, the same run
