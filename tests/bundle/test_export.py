"""Exported bundles reproduce the torch sampler (real torch.onnx export, real onnxruntime)."""

import numpy as np
import onnx
import pytest
import torch

from dppo_robot.bundle.export import ExportError, export_checkpoint, write_bundle
from dppo_robot.bundle.manifest import Provenance, read_manifest
from dppo_robot.bundle.onnx_chain import example_inputs
from dppo_robot.checkpoint import PolicyCheckpoint, save_checkpoint
from dppo_robot.model.env_units import sample_env_units
from dppo_robot.runtime.policy_runtime import PolicyRuntime
from tests.conftest import build_small, export_small, small_norm


@pytest.mark.parametrize(
    ("kind", "ddim"),
    [("mlp", True), ("residual_ln", True), ("unet1d", True), ("vit", True), ("mlp", False)],
    ids=["mlp-ddim", "residual_ln-ddim", "unet1d-ddim", "vit-ddim", "mlp-ddpm"],
)
def test_bundle_matches_torch_sampler(tmp_path, kind, ddim):
    out, manifest, policy, cfg, spec, norm = export_small(tmp_path, kind, ddim, ft=2)
    rt = PolicyRuntime(out)
    s = policy.n_steps
    assert manifest.sampler.noise_steps == (1 if ddim else 1 + s)
    model = onnx.load(str(out / "policy.onnx"))
    assert not [n for n in model.graph.node if n.op_type in ("Loop", "Scan", "If")]
    for batch in (1, 8):
        obs, noise, images = example_inputs(policy, norm, spec, cfg.cond_steps, batch, seed=batch)
        want = sample_env_units(policy, norm, obs, noise, images)
        got = rt.predict(obs, images, noise=noise)
        assert got.shape == (batch, cfg.horizon_steps, cfg.action_dim)
        diff = float(np.abs(got - want).max())
        assert diff <= 1e-4, f"{kind} batch {batch}: max abs diff {diff}"
        # the actions are not trivially equal for different x_T (the test could fail)
        other = rt.predict(obs, images, noise=noise + 1.0)
        assert float(np.abs(other - got).max()) > 1e-3


def test_manifest_records_spec_and_provenance(tmp_path):
    out, manifest, policy, cfg, spec, norm = export_small(tmp_path, "mlp", True, ft=5)
    m = read_manifest(out)
    assert m.cond_steps == 2 and m.horizon_steps == 4 and m.act_steps == 2
    assert [s.name for s in m.obs_spec] == ["ee_pos", "gripper"] and m.obs_spec[1].start == 3
    assert m.obs_spec[0].units == "m" and m.obs_spec[0].frame == "base"
    assert m.sampler.timesteps == [8, 6, 4, 2, 0] and m.sampler.networks == ["actor_ft"] * 5
    assert m.normalization.to_normalization().obs_clip == 5.0
    assert set(m.files) == {"policy.onnx"} and len(m.files["policy.onnx"]) == 64
    assert m.provenance.code_version["package"] == "dppo-robot"
    assert m.provenance.verification["max_abs_diff"]["8"] <= 1e-4
    assert [t.name for t in m.onnx.inputs] == ["obs", "noise"]


def test_ddpm_bundle_picks_actor_and_actor_ft_per_step(tmp_path):
    out, manifest, policy, *_ = export_small(tmp_path, "mlp", ddim=False, ft=3)
    assert manifest.sampler.networks == ["actor"] * 7 + ["actor_ft"] * 3


def test_export_checkpoint_uses_ema_and_records_source(tmp_path):
    policy, cfg, spec, norm = build_small("mlp")
    ema = {k: v + 0.05 for k, v in policy.state_dict().items()}
    ckpt = tmp_path / "pre.pt"
    save_checkpoint(PolicyCheckpoint(cfg, spec, norm, policy.state_dict(), ema=ema, train_config={"lr": 1e-4}), ckpt)
    m = export_checkpoint(ckpt, tmp_path / "b_ema")
    export_checkpoint(ckpt, tmp_path / "b_raw", use_ema=False)
    assert m.provenance.source_format == "dppo_robot" and m.provenance.training_config == {"lr": 1e-4}
    obs, noise, _ = example_inputs(policy, norm, spec, cfg.cond_steps, 2)
    ema_policy, *_ = build_small("mlp")
    ema_policy.load_state_dict(ema)
    want = sample_env_units(ema_policy.eval(), norm, obs, noise)
    assert np.abs(PolicyRuntime(tmp_path / "b_ema").predict(obs, noise=noise) - want).max() <= 1e-4
    assert np.abs(PolicyRuntime(tmp_path / "b_raw").predict(obs, noise=noise) - want).max() > 1e-3


def test_export_refuses_mismatched_dims_and_existing_dir(tmp_path):
    policy, cfg, spec, _ = build_small("mlp")
    with pytest.raises(ExportError, match="normalization obs has 4 dims but policy obs_dim is 5"):
        write_bundle(policy, cfg, spec, small_norm(obs_dim=4), tmp_path / "x", "x", Provenance("f", "dppo_robot", None))
    out, *_ = export_small(tmp_path, "mlp")
    with pytest.raises(ExportError, match="already exists"):
        export_small(tmp_path, "mlp")
    assert out.is_dir()


def test_failed_verification_leaves_no_bundle(tmp_path, monkeypatch):
    import dppo_robot.bundle.export as export_mod

    def broken(*args, **kwargs):
        raise RuntimeError("ONNX chain disagrees with the torch sampler at batch 1")

    monkeypatch.setattr(export_mod, "verify_against_torch", broken)
    with pytest.raises(RuntimeError, match="disagrees"):
        export_small(tmp_path, "mlp")
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_errors_name_file_and_field(tmp_path):
    from dppo_robot.checkpoint import CheckpointError, load_checkpoint

    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "ref.pt"
    torch.save({"itr": 3, "model": {}}, bad)
    with pytest.raises(CheckpointError, match="import-dppo"):
        load_checkpoint(bad)
    policy, cfg, spec, norm = build_small("mlp")
    good = tmp_path / "good.pt"
    save_checkpoint(PolicyCheckpoint(cfg, spec, norm, policy.state_dict()), good)
    raw = torch.load(good, weights_only=True)
    raw["policy_config"]["denoiser"]["mlp_dim"] = [3]
    torch.save(raw, bad)
    with pytest.raises(
        CheckpointError, match="unknown field 'policy_config.denoiser.mlp_dim'; did you mean 'mlp_dims'"
    ):
        load_checkpoint(bad)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable torch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
