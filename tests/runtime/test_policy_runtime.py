"""Runtime: loading, verification and every bad-input error names the problem."""

import shutil

import numpy as np
import pytest
import yaml

from dppo_robot.bundle.manifest import seal_manifest
from dppo_robot.runtime.errors import BundleError, BundleMismatchError, ObservationError, ProviderError
from dppo_robot.runtime.policy_runtime import PolicyRuntime, RuntimeConfig
from dppo_robot.runtime.providers import resolve_providers
from tests.conftest import export_small


@pytest.fixture
def bundle_copy(mlp_bundle, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(mlp_bundle, dst)
    return dst


def test_predict_unbatched_and_batched(mlp_bundle):
    rt = PolicyRuntime(mlp_bundle, RuntimeConfig(intra_op_threads=2, warmup_iters=1))
    m = rt.manifest
    obs = np.zeros((m.cond_steps, m.obs_dim), np.float32)
    assert rt.predict(obs).shape == (m.horizon_steps, m.action_dim)
    assert rt.predict(np.stack([obs] * 4)).shape == (4, m.horizon_steps, m.action_dim)
    # deterministic DDIM: the same x_T gives the same chunk; float64 input is accepted
    noise = np.random.default_rng(0).standard_normal((1, 1, m.horizon_steps, m.action_dim)).astype(np.float32)
    assert np.array_equal(rt.predict(obs.astype(np.float64), noise=noise), rt.predict(obs, noise=noise))
    assert rt.last_latency_s > 0


def test_missing_bundle_and_manifest(tmp_path, bundle_copy):
    with pytest.raises(BundleError, match="policy bundle directory not found"):
        PolicyRuntime(tmp_path / "nowhere")
    (bundle_copy / "bundle.yaml").unlink()
    with pytest.raises(BundleError, match="bundle.yaml: bundle manifest not found"):
        PolicyRuntime(bundle_copy)


def test_missing_onnx_file(bundle_copy):
    (bundle_copy / "policy.onnx").unlink()
    with pytest.raises(BundleError, match="policy.onnx: file listed in .*bundle.yaml is missing"):
        PolicyRuntime(bundle_copy)


def test_tampered_onnx_file(bundle_copy):
    with open(bundle_copy / "policy.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="policy.onnx: sha256 .* does not match bundle.yaml"):
        PolicyRuntime(bundle_copy)


def test_manifest_unknown_field_and_bad_value(bundle_copy):
    path = bundle_copy / "bundle.yaml"
    data = yaml.safe_load(path.read_text())
    data["sampler"]["ddim_step"] = 5
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match="unknown field 'sampler.ddim_step'; did you mean 'ddim_steps'"):
        PolicyRuntime(bundle_copy)
    data["sampler"].pop("ddim_step")
    data["horizon_steps"] = "four"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match="field 'horizon_steps': expected an integer"):
        PolicyRuntime(bundle_copy)


def test_manifest_graph_disagreement(bundle_copy):
    path = bundle_copy / "bundle.yaml"
    data = yaml.safe_load(path.read_text())
    data["onnx"]["inputs"][0]["shape"] = ["B", 3, 5]
    data["cond_steps"] = 3  # consistent with itself (and sealed), not with the graph
    path.write_text(yaml.safe_dump(data))
    seal_manifest(bundle_copy)
    with pytest.raises(BundleError, match="graph input 'obs' has shape .* manifest says \\['B', 3, 5\\]"):
        PolicyRuntime(bundle_copy)


def test_obs_shape_and_dtype_errors(mlp_bundle):
    rt = PolicyRuntime(mlp_bundle, RuntimeConfig(warmup_iters=0))
    with pytest.raises(
        ObservationError, match="input 'obs' has shape \\(2, 4\\); bundle 'test_policy' expects \\[2, 5\\]"
    ):
        rt.predict(np.zeros((2, 4), np.float32))
    with pytest.raises(ObservationError, match="input 'obs' has dtype int64; .* expects float32"):
        rt.predict(np.zeros((2, 5), np.int64))
    with pytest.raises(ObservationError, match="noise has batch 2, obs has 1"):
        rt.predict(np.zeros((2, 5), np.float32), noise=np.zeros((2, 1, 4, 3), np.float32))
    with pytest.raises(ObservationError, match="needs images from cameras \\[\\]; got \\['wrist'\\]"):
        rt.predict(np.zeros((2, 5), np.float32), images={"wrist": np.zeros((2, 3, 32, 32), np.uint8)})


def test_non_finite_observation_names_slice(mlp_bundle):
    rt = PolicyRuntime(mlp_bundle, RuntimeConfig(warmup_iters=0))
    obs = np.zeros((2, 5), np.float32)
    obs[1, 4] = np.nan
    with pytest.raises(
        ObservationError, match="non-finite values \\(first at history step 1, dim 4, slice 'gripper'\\)"
    ):
        rt.predict(obs)
    obs[1, 4] = np.inf
    with pytest.raises(ObservationError, match="non-finite"):
        rt.predict(obs)


def test_image_errors(tmp_path):
    out, *_ = export_small(tmp_path, "vit")
    rt = PolicyRuntime(out, RuntimeConfig(warmup_iters=1))
    obs = np.zeros((2, 5), np.float32)
    with pytest.raises(ObservationError, match="needs images from cameras \\['wrist'\\]; got \\[\\]"):
        rt.predict(obs)
    with pytest.raises(ObservationError, match="input 'image_wrist' has dtype float32; .* expects uint8"):
        rt.predict(obs, {"wrist": np.zeros((2, 3, 32, 32), np.float32)})
    with pytest.raises(ObservationError, match="input 'image_wrist' has shape \\(2, 3, 64, 64\\)"):
        rt.predict(obs, {"wrist": np.zeros((2, 3, 64, 64), np.uint8)})
    assert rt.predict(obs, {"wrist": np.zeros((2, 3, 32, 32), np.uint8)}).shape == (4, 3)


def test_spec_mismatch_names_both_sides(mlp_bundle):
    rt = PolicyRuntime(mlp_bundle, RuntimeConfig(warmup_iters=0))
    rt.check_compatible(["ee_pos", "gripper"], ["ee_delta_pos", "gripper"], [], 10.0)
    with pytest.raises(
        BundleMismatchError,
        match="observation slices .* are \\['ee_pos', 'gripper'\\]; robot provides "
        "\\['ee_pos', 'joint_pos'\\]; missing \\['gripper'\\]; not in bundle \\['joint_pos'\\]",
    ):
        rt.check_compatible(obs_names=["ee_pos", "joint_pos"], source="robot")
    with pytest.raises(BundleMismatchError, match="runs at control_hz=10.0; robot runs at 20.0"):
        rt.check_compatible(control_hz=20.0, source="robot")
    with pytest.raises(BundleMismatchError, match="history of To=2 steps; robot provides 1"):
        rt.check_compatible(cond_steps=1, source="robot")
    with pytest.raises(BundleMismatchError, match="cameras"):
        rt.check_compatible(cameras=["front"])


def test_providers():
    assert resolve_providers(["auto"], ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    both = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(None, both) == both
    assert resolve_providers(["cuda"], both) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(ProviderError, match="execution provider 'cuda' is not available .* onnxruntime-gpu"):
        resolve_providers(["cuda"], ["CPUExecutionProvider"])
