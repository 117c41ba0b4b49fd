"""The dppo-robot command, run as a real subprocess."""

import subprocess
import sys

from tests.conftest import build_small


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "dppo_robot", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_help_lists_commands():
    r = cli("--help")
    assert r.returncode == 0
    for cmd in ("demo", "export", "import-dppo", "bundle", "bench"):
        assert cmd in r.stdout


def test_export_and_info_round_trip(tmp_path):
    from dppo_robot.checkpoint import PolicyCheckpoint, save_checkpoint

    policy, cfg, spec, norm = build_small("mlp")
    save_checkpoint(PolicyCheckpoint(cfg, spec, norm, policy.state_dict()), tmp_path / "c.pt")
    r = cli("export", str(tmp_path / "c.pt"), "--out", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    assert "verified ONNX vs torch" in r.stdout
    r = cli("bundle", "info", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    assert "files       1 verified (sha256)" in r.stdout
    with open(tmp_path / "b" / "policy.onnx", "ab") as f:
        f.write(b"x")
    r = cli("bundle", "info", str(tmp_path / "b"))
    assert r.returncode == 2
    assert "does not match bundle.yaml" in r.stderr and "Traceback" not in r.stderr


def test_bad_input_is_one_line_error(tmp_path):
    r = cli("export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "b"))
    assert r.returncode == 2
    assert "missing.pt: checkpoint file not found" in r.stderr and "Traceback" not in r.stderr


def test_demo_runs_end_to_end(tmp_path):
    r = cli("demo", "--train-seconds", "2", "--out", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "demo" / "bundle" / "bundle.yaml").is_file()
    assert "ONNX vs torch max |diff|" in r.stdout
