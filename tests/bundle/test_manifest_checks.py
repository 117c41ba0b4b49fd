"""bundle.yaml: digest over content and files, fields checked with units and ranges, paths confined,
YAML aliases refused (issue 18, finding 2). Real exported bundles, real files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dppo_robot.bundle import manifest as M  # module access: the file collects on older code too
from dppo_robot.runtime.errors import BundleError
from dppo_robot.runtime.policy_runtime import PolicyRuntime, RuntimeConfig
from dppo_robot.typed_config import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bundle(mlp_bundle, tmp_path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(mlp_bundle, dst)
    return dst


def _edit(bundle: Path, change, seal: bool = False) -> None:
    path = bundle / "bundle.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    if seal:
        M.seal_manifest(bundle)


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def test_edited_normalisation_range_is_refused_by_the_digest(bundle):
    m = M.read_manifest(bundle)
    assert m.digest.startswith("sha256:")

    def widen(d):
        d["normalization"]["obs_max"][0] += 0.5  # still a valid range: only the digest can tell

    _edit(bundle, widen)
    with pytest.raises(ConfigError, match="field 'digest' .* does not match the manifest's content") as e:
        M.read_manifest(bundle)
    _one_line(e)
    with pytest.raises(BundleError, match="bundle.yaml was edited after export"):
        PolicyRuntime(bundle, RuntimeConfig(warmup_iters=0, verify_sha256=False))


def test_unsealed_manifest_is_refused_until_sealed(bundle):
    _edit(bundle, lambda d: d.pop("digest"))
    with pytest.raises(ConfigError, match="not sealed .* `dppo-robot bundle seal "):
        M.read_manifest(bundle)
    before = M.seal_manifest(bundle).digest
    text = (bundle / "bundle.yaml").read_text()
    assert M.read_manifest(bundle).digest == before
    M.seal_manifest(bundle)  # reproducible: sealing an unchanged manifest writes the same file
    assert (bundle / "bundle.yaml").read_text() == text


def test_seal_refuses_a_tampered_file(bundle):
    _edit(bundle, lambda d: d.pop("digest"))
    with open(bundle / "policy.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="sha256 .* does not match"):
        M.seal_manifest(bundle)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("control_hz", float("nan"), "field 'control_hz': must be a finite number, got nan"),
        ("control_hz", 0.0, "control_hz must be finite, > 0"),
        ("control_hz", -10.0, "control_hz must be finite, > 0"),
        ("control_hz", float("inf"), "field 'control_hz': must be a finite number, got inf"),
        ("control_hz", 1e6, "control_hz must be finite, > 0 and <= 10000"),
        ("act_steps", 0, "act_steps must be in \\[1, horizon_steps"),
        ("act_steps", -2, "act_steps must be in \\[1, horizon_steps"),
        ("act_steps", 99, "act_steps must be in \\[1, horizon_steps"),
        ("cond_steps", 0, "cond_steps must be >= 1"),
        ("obs_min0", float("nan"), "field 'normalization.obs_min\\[0\\]': must be a finite number"),
        ("obs_min0", 1e9, "obs_min must be < obs_max: empty or inverted range at dims \\[0\\]"),
        ("action_max0", -1e9, "action_min must be < action_max"),
        ("obs_clip", -1.0, "obs_clip must be null or finite and > 0"),
        ("onnx_file", "../other/policy.onnx", "file '../other/policy.onnx' must be a relative path inside"),
        ("onnx_file", "/etc/policy.onnx", "must be a relative path inside the bundle directory"),
        ("files_key", "../x.onnx", "files: '../x.onnx' must be a relative path inside"),
        ("timesteps", [99], "timesteps must be a non-empty list of steps in \\[0, 10\\)"),
        ("noise_steps", 0, "noise_steps must be >= 1"),
    ],
)
def test_manifest_fields_are_checked_with_units_and_ranges(bundle, field, value, message):
    def change(d):
        if field == "obs_min0":
            d["normalization"]["obs_min"][0] = value
        elif field == "action_max0":
            d["normalization"]["action_max"][0] = value
        elif field == "obs_clip":
            d["normalization"]["obs_clip"] = value
        elif field == "onnx_file":
            d["onnx"]["file"] = value
        elif field == "files_key":
            d["files"][value] = next(iter(d["files"].values()))
        elif field in ("timesteps", "noise_steps"):
            d["sampler"][field] = value
        else:
            d[field] = value

    _edit(bundle, change)
    with pytest.raises(ConfigError, match=message) as e:
        M.read_manifest(bundle)
    assert "bundle.yaml" in _one_line(e)


def test_symlinked_file_outside_the_bundle_is_refused(bundle, tmp_path):
    outside = tmp_path / "other"
    outside.mkdir()
    (bundle / "policy.onnx").rename(outside / "policy.onnx")
    (bundle / "policy.onnx").symlink_to(outside / "policy.onnx")
    with pytest.raises(ConfigError, match="resolves outside the bundle directory"):
        M.read_manifest(bundle)


def test_yaml_alias_bomb_under_provenance_is_refused_fast(bundle):
    path = bundle / "bundle.yaml"
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    text = path.read_text().replace(
        "provenance:\n", "provenance:\n  notes_bomb:\n" + "".join(f"    {x}\n" for x in lines)
    )
    path.write_text(text)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="invalid YAML \\(line \\d+\\): aliases \\(\\*a0\\) are not accepted") as e:
        M.read_manifest(bundle)
    assert time.perf_counter() - t0 < 30  # bound only against a hang, not a speed figure
    _one_line(e)


def test_bundle_info_with_zero_rate_is_a_one_line_error(bundle):
    _edit(bundle, lambda d: d.update(control_hz=0))
    r = subprocess.run(
        [sys.executable, "-m", "dppo_robot", "bundle", "info", str(bundle)], capture_output=True, text=True, cwd=REPO
    )
    assert r.returncode == 2, r.stderr
    assert "control_hz must be finite" in r.stderr and "Traceback" not in r.stderr


def test_committed_bundles_are_sealed():
    for b in sorted((REPO / "policies").glob("*/bundle.yaml")):
        m = M.read_manifest(b.parent)
        assert m.digest.startswith("sha256:"), b
