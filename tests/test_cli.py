"""The dppo-robot command, run as a real subprocess."""

import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.ros
def test_demo_runs_end_to_end(tmp_path):
    """The demo path (bundle check, sim trials, trials through ROS 2, report) on a small reach2d
    bundle; `make demo` runs the same code on the bundled lift policy."""
    from dppo_robot.deploy.fresh_bundle import fresh_task_bundle

    bundle = fresh_task_bundle(tmp_path / "bundle", "reach2d", cond_steps=1, horizon_steps=4, act_steps=4)
    root = Path(__file__).resolve().parents[1]
    ros_cfg = root / "ros2_ws" / "src" / "dppo_robot" / "config" / "sim_reach2d.yaml"
    out = tmp_path / "demo"
    r = cli("demo", "--bundle", str(bundle), "--ros-config", str(ros_cfg), "--trials", "3", "--workers", "0",
            "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name in ("report.md", "report.html", "report.json", "trials/sim.jsonl", "trials/sim_in_the_loop.jsonl"):
        assert (out / name).is_file(), name
    assert "3/3 sim-to-real report" in r.stdout


def test_collect_demos_for_a_task_without_demonstrator_is_one_line(tmp_path):
    r = cli("collect-demos", "halfcheetah", "--out", str(tmp_path / "d"), "--episodes", "1")
    assert r.returncode == 2
    assert "no scripted demonstrator" in r.stderr and "square" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "d").exists()
