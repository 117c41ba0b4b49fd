"""Gaussian MLP bundles: the exported mean reproduces the torch policy and runs wherever a bundle runs.

Real torch.onnx export, real onnxruntime, real checkpoints and bundle files on reach2d.
Shape legend: obs [B, To, Do], actions [B, Tp, Da] (environment units).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

import dppo_robot.envs  # noqa: F401  (registers the tasks)
from dppo_robot.bundle import export as export_cmd
from dppo_robot.bundle import info as info_cmd
from dppo_robot.bundle.export import ExportError, export_checkpoint, write_bundle
from dppo_robot.bundle.manifest import Provenance, SamplerSpec, read_manifest
from dppo_robot.checkpoint import PolicyCheckpoint, save_checkpoint
from dppo_robot.cli import main
from dppo_robot.deploy.chunks import PolicyCore
from dppo_robot.deploy.config import ObsSource, PolicyNodeConfig
from dppo_robot.deploy.obs_history import Sample
from dppo_robot.envs.registry import default_task_config, task_io_spec
from dppo_robot.model.gaussian_mlp import GaussianMLP
from dppo_robot.model.normalization import Normalization
from dppo_robot.model.policy_config import GaussianConfig, PolicyConfig
from dppo_robot.model.policy_factory import build_gaussian_policy
from dppo_robot.runtime.errors import BundleError, ObservationError
from dppo_robot.runtime.policy_runtime import PolicyRuntime, RuntimeConfig
from dppo_robot.sim2real.records import read_trials
from dppo_robot.train.evaluate import evaluate, evaluate_bundle
from dppo_robot.train.job_config import EvalSettings, EvaluateConfig
from dppo_robot.typed_config import ConfigError, to_dict
from tests.conftest import randomize, small_spec
from tests.train.conftest import demos, pretrain_cfg, quiet

GAUSSIANS = {
    "learned_std_tanh": GaussianConfig(mlp_dims=[32, 32, 32]),
    "logvar_head_residual_ln": GaussianConfig(
        mlp_dims=[32, 32], residual_style=True, use_layernorm=True, fixed_std=None, learn_fixed_std=False
    ),
    "fixed_std_no_tanh": GaussianConfig(mlp_dims=[32, 32], tanh_output=False, learn_fixed_std=False),
}


def reach2d_norm() -> Normalization:
    """Roughly the range of reach2d demonstrations: pos, goal - pos (m); actions +-1."""
    return Normalization(
        np.array([-1.2, -1.2, -1.2, -0.3], np.float32),
        np.array([1.2, 1.2, 1.2, 2.2], np.float32),
        -np.ones(2, np.float32),
        np.ones(2, np.float32),
        0.0,
        5.0,
    )


def gaussian_checkpoint(tmp: Path, variant: str = "learned_std_tanh") -> tuple[Path, GaussianMLP, Normalization]:
    """A randomly initialised reach2d Gaussian policy (To=2, Tp=4, Ta=2) saved as a project checkpoint.

    Returns the checkpoint path and the policy carrying its EMA weights (what export uses).
    """
    spec = task_io_spec(default_task_config("reach2d"))
    cfg = PolicyConfig(
        kind="gaussian",
        obs_dim=4,
        action_dim=2,
        cond_steps=2,
        horizon_steps=4,
        act_steps=2,
        gaussian=GAUSSIANS[variant],
    )
    raw = randomize(build_gaussian_policy(cfg), seed=1)
    ema = randomize(build_gaussian_policy(cfg), seed=2)
    norm = reach2d_norm()
    path = tmp / f"{variant}.pt"
    save_checkpoint(PolicyCheckpoint(cfg, spec, norm, raw.state_dict(), ema=ema.state_dict()), path)
    return path, ema, norm


@torch.no_grad()
def torch_mean(policy: GaussianMLP, norm: Normalization, obs: np.ndarray) -> np.ndarray:
    """What evaluating the torch policy acts with, in env units: the mean on normalised obs."""
    mean, _ = policy({"state": torch.from_numpy(norm.normalize_obs(obs))})
    return norm.denormalize_action(mean.numpy())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A briefly behaviour-cloned reach2d Gaussian policy (To=1, Tp=4, Ta=4) and its bundle."""
    tmp = tmp_path_factory.mktemp("gaussian_trained")
    cfg = pretrain_cfg(tmp, demos(tmp, 0, n=100), "gaussian")
    cfg.train_steps = cfg.save_every = 800
    from dppo_robot.train.pretrain import pretrain

    ckpt = Path(quiet(pretrain, cfg))
    export_checkpoint(ckpt, tmp / "bundle")
    return ckpt, tmp / "bundle"


@pytest.mark.parametrize("variant", list(GAUSSIANS))
def test_gaussian_bundle_matches_torch_mean(tmp_path, variant):
    ckpt, policy, norm = gaussian_checkpoint(tmp_path, variant)
    m = export_checkpoint(ckpt, tmp_path / "bundle")
    assert m.policy_kind == "gaussian" and m.sampler is None and m.denoiser == "gaussian_mlp"
    assert [t.name for t in m.onnx.inputs] == ["obs"] and m.onnx.inputs[0].shape == ["B", 2, 4]
    assert m.onnx.outputs[0].shape == ["B", 4, 2]
    assert set(m.provenance.verification["max_abs_diff"]) == {"1", "8"}
    assert max(m.provenance.verification["max_abs_diff"].values()) <= 1e-4
    assert read_manifest(tmp_path / "bundle") == m
    sess = ort.InferenceSession(str(tmp_path / "bundle" / "policy.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["obs"]
    rt = PolicyRuntime(tmp_path / "bundle", RuntimeConfig(warmup_iters=1))
    rng = np.random.default_rng(0)
    for batch in (1, 8):
        obs = rng.uniform(norm.obs_min - 0.2, norm.obs_max + 0.2, (batch, 2, 4)).astype(np.float32)
        want = torch_mean(policy, norm, obs)
        for got in (rt.predict(obs), sess.run(["actions"], {"obs": obs})[0]):
            assert got.shape == (batch, 4, 2)
            diff = float(np.abs(got - want).max())
            assert diff <= 1e-4, f"{variant} batch {batch}: max abs diff {diff}"
    # deterministic: no noise, the rng plays no part; and the action does depend on obs
    obs = rng.uniform(norm.obs_min, norm.obs_max, (2, 4)).astype(np.float32)
    a = rt.predict(obs, rng=np.random.default_rng(1))
    assert a.shape == (4, 2) and np.array_equal(a, rt.predict(obs, rng=np.random.default_rng(2)))
    assert float(np.abs(rt.predict(obs + 0.5) - a).max()) > 1e-3
    with pytest.raises(ObservationError, match="is a gaussian policy with a deterministic action; it takes no noise"):
        rt.predict(obs, noise=np.zeros((1, 1, 4, 2), np.float32))


def test_export_uses_ema_and_cli_commands_describe_gaussian(tmp_path, capsys):
    ckpt, ema_policy, norm = gaussian_checkpoint(tmp_path)
    args = argparse.Namespace(
        checkpoint=str(ckpt), out=str(tmp_path / "b"), name="g", no_ema=False, tolerance=1e-4, force=False
    )
    assert export_cmd.run(args) == 0
    out = capsys.readouterr().out
    assert "wrote bundle 'g'" in out and "gaussian policy: the graph outputs its mean" in out
    export_checkpoint(ckpt, tmp_path / "raw", use_ema=False)
    obs = np.tile(((norm.obs_min + norm.obs_max) / 2)[None, None], (1, 2, 1))  # [1, To, Do]
    want = torch_mean(ema_policy, norm, obs)
    assert np.abs(PolicyRuntime(tmp_path / "b").predict(obs) - want).max() <= 1e-4
    assert np.abs(PolicyRuntime(tmp_path / "raw").predict(obs) - want).max() > 1e-3
    assert info_cmd.run(argparse.Namespace(bundle=str(tmp_path / "b"))) == 0
    text = capsys.readouterr().out
    assert "bundle      g (schema 1, policy gaussian, network gaussian_mlp)" in text
    assert "sampler     none: the graph outputs the gaussian mean (deterministic, no noise input)" in text
    assert "files       1 verified (sha256)" in text


def test_tampered_manifest_kind_and_sampler_rejected(tmp_path, mlp_bundle):
    ckpt, *_ = gaussian_checkpoint(tmp_path)
    export_checkpoint(ckpt, tmp_path / "g")
    path = tmp_path / "g" / "bundle.yaml"
    good = yaml.safe_load(path.read_text())
    ddpm = SamplerSpec("ddpm", 10, list(range(9, -1, -1)), ["actor"] * 10, noise_steps=11)
    path.write_text(yaml.safe_dump({**good, "sampler": to_dict(ddpm)}))
    with pytest.raises(BundleError, match="bundle.yaml: sampler: a gaussian bundle has no sampler .* 'ddpm' sampler"):
        PolicyRuntime(tmp_path / "g")
    with pytest.raises(ConfigError, match="sampler: a gaussian bundle has no sampler"):
        read_manifest(tmp_path / "g")
    path.write_text(yaml.safe_dump({**good, "policy_kind": "diffusion"}))
    with pytest.raises(BundleError, match="sampler: a diffusion bundle needs a sampler block \\(got null\\)"):
        PolicyRuntime(tmp_path / "g")
    path.write_text(yaml.safe_dump({**good, "policy_kind": "gauss"}))
    with pytest.raises(BundleError, match="field 'policy_kind': 'gauss' is not one of 'diffusion', 'gaussian'"):
        PolicyRuntime(tmp_path / "g")
    noise = {"name": "noise", "dtype": "float32", "shape": ["B", 1, 4, 2]}
    path.write_text(yaml.safe_dump({**good, "onnx": {**good["onnx"], "inputs": [*good["onnx"]["inputs"], noise]}}))
    with pytest.raises(BundleError, match="onnx.inputs: a gaussian bundle takes no 'noise' input"):
        PolicyRuntime(tmp_path / "g")
    # a diffusion bundle without its sampler
    diff = tmp_path / "d"
    shutil.copytree(mlp_bundle, diff)
    data = yaml.safe_load((diff / "bundle.yaml").read_text())
    (diff / "bundle.yaml").write_text(yaml.safe_dump({**data, "sampler": None}))
    with pytest.raises(BundleError, match="sampler: a diffusion bundle needs a sampler block"):
        PolicyRuntime(diff)


def test_committed_diffusion_bundle_still_loads():
    bundle = Path(__file__).resolve().parents[2] / "policies" / "lift_dppo"
    if not (bundle / "bundle.yaml").is_file():
        pytest.skip("policies/lift_dppo is not in this checkout")
    m = read_manifest(bundle)
    assert m.policy_kind == "diffusion" and m.sampler is not None and m.sampler.noise_steps >= 1


def test_gaussian_export_refuses_cameras(tmp_path):
    cfg = PolicyConfig(kind="gaussian", obs_dim=5, action_dim=3, cond_steps=2, gaussian=GaussianConfig(mlp_dims=[8]))
    from tests.conftest import small_norm

    policy = build_gaussian_policy(cfg)
    with pytest.raises(
        ExportError, match="Gaussian MLP policy reads no images, but its IO spec has cameras \\['wrist'\\]"
    ):
        write_bundle(
            policy, cfg, small_spec(camera=True), small_norm(), tmp_path / "x", "x", Provenance("f", "dppo_robot", None)
        )
    with pytest.raises(ExportError, match="policy config kind 'diffusion' but the policy is a GaussianMLP"):
        write_bundle(
            policy, PolicyConfig(obs_dim=5, action_dim=3, cond_steps=2), small_spec(), small_norm(), tmp_path / "x",
            "x", Provenance("f", "dppo_robot", None),
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_trained_bundle_evaluates_like_its_checkpoint(trained, tmp_path):
    ckpt, bundle = trained
    task = default_task_config("reach2d")
    settings = EvalSettings(n_episodes=12, n_envs=4, seed=3)
    a = evaluate(EvaluateConfig(task, str(ckpt), str(tmp_path / "ev_ckpt"), settings))
    b = evaluate(EvaluateConfig(task, str(bundle), str(tmp_path / "ev_bundle"), settings))
    assert a["kind"] == "checkpoint" and b["kind"] == "bundle" and b["episodes"] == 12
    assert a["successes"] > 0  # the test can tell a working policy from a broken one
    # both act with the Gaussian mean: the same episodes, step for step
    for x, y in zip(a["episodes_detail"], b["episodes_detail"]):
        assert (x["seed"], x["success"], x["length"]) == (y["seed"], y["success"], y["length"])
        assert x["return"] == pytest.approx(y["return"], abs=1e-6)
    res = evaluate_bundle(bundle, task, EvalSettings(n_episodes=4, n_envs=4, seed=3))
    assert res.seeds == [d["seed"] for d in b["episodes_detail"][:4]]


def test_trained_bundle_runs_trials_sim_and_policy_core(trained, tmp_path, capsys):
    _, bundle = trained
    out = tmp_path / "trials.jsonl"
    rc = main(["trials", "sim", str(bundle), "--task", "reach2d", "--n", "4", "--envs", "2", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    recs = read_trials(out)
    assert len(recs) == 4 and {r.bundle_name for r in recs} == {"bundle"}
    # the ROS-free core of the policy node: history from timestamped samples -> a chunk
    rt = PolicyRuntime(bundle, RuntimeConfig(warmup_iters=1))
    obs = [ObsSource("pos", "ee_pose", "position_xy"), ObsSource("goal_rel", "task_state")]
    cfg = PolicyNodeConfig(obs=obs, action_names=["vel"], control_hz=10.0)
    cfg.validate()
    for o in obs:
        o.validate()
    core = PolicyCore(rt, cfg)
    pos = Sample(0.0, {"position": np.array([0.1, -1.0, 0.0]), "quat_xyzw": np.array([0, 0, 0, 1.0])})
    core.builder.add("ee_pose", pos)
    core.builder.add("task_state", Sample(0.0, {"position": np.array([-0.1, 2.0])}, ("goal_rel/0", "goal_rel/1")))
    res = core.tick(0.0)
    assert res.ran_chain and not res.hold, res.reason
    want = rt.predict(np.array([[0.1, -1.0, -0.1, 2.0]], np.float32))
    np.testing.assert_allclose(res.chunk.actions, want, atol=1e-6)
