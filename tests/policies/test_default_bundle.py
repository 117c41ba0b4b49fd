"""The committed default bundle that `make demo` runs: intact, loadable, and wired to its task.

Real files, real onnxruntime, a real simulated task: if someone retrains the default and forgets
to commit a file, changes the task's observation layout, or edits the demo's ROS 2 config so a
slice is no longer mapped, this fails before `make demo` does.
"""

from __future__ import annotations

import numpy as np
import pytest

from dppo_robot import demo
from dppo_robot.bundle.manifest import read_manifest
from dppo_robot.deploy.config import DeployConfig
from dppo_robot.envs.registry import default_task_config, make_env, task_io_spec
from dppo_robot.runtime.policy_runtime import PolicyRuntime, RuntimeConfig, verify_files
from dppo_robot.typed_config import load_yaml


@pytest.fixture(scope="module")
def deploy_cfg() -> DeployConfig:
    return load_yaml(DeployConfig, demo.DEFAULT_ROS_CONFIG)


def test_default_bundle_files_match_their_sha256():
    manifest = read_manifest(demo.DEFAULT_BUNDLE)
    verify_files(demo.DEFAULT_BUNDLE, manifest)
    prov = manifest.provenance
    assert prov.source_format == "dppo_robot" and prov.training_config, "the default must carry its training config"


def test_demo_ros_config_maps_every_slice_of_the_default_bundle(deploy_cfg):
    manifest = read_manifest(demo.DEFAULT_BUNDLE)
    assert [o.name for o in deploy_cfg.policy.obs] == [s.name for s in manifest.obs_spec]
    assert deploy_cfg.policy.action_names == [s.name for s in manifest.action_spec]
    assert deploy_cfg.policy.control_hz == manifest.control_hz
    # the demo is meant to perturb: observation latency and noise, command latency, held trials end
    assert deploy_cfg.sim.obs_latency_s > 0 and deploy_cfg.sim.obs_noise_std > 0 and deploy_cfg.bridge.latency_s > 0
    assert deploy_cfg.sim.abort_after_hold_s > 0


def test_default_bundle_acts_on_its_task(deploy_cfg):
    task = default_task_config(deploy_cfg.sim.task)
    rt = PolicyRuntime(demo.DEFAULT_BUNDLE, RuntimeConfig(intra_op_threads=1, warmup_iters=1))
    rt.check_spec(task_io_spec(task), f"task '{task.name}'", cond_steps=task.cond_steps)
    env = make_env(task, seed=0)
    try:
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    m = rt.manifest
    chunk = rt.predict(np.asarray(obs, np.float32).reshape(1, m.cond_steps, m.obs_dim), rng=np.random.default_rng(0))
    assert chunk.shape == (1, m.horizon_steps, m.action_dim)
    assert np.isfinite(chunk).all() and np.abs(chunk).max() <= 1.0 + 1e-6
