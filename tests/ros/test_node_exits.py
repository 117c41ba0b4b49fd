"""The nodes' console-script mains as processes: stopped by SIGINT / SIGTERM (as launch or a
service manager stops them, no interactive shell), or at the end of the simulated episodes, they
exit 0, every time (issue 15, finding 9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ros.conftest import ROS_PKG

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("EXIT_ROUNDS", "20"))

SIM_YAML = """\
policy: {control_hz: 10.0, obs: [{name: pos, source: ee_pose, field: position_xy}], action_names: [vel]}
action: {mode: delta_pose, position_slice: vel, position_scale_m: 0.1}
bridge: {latency_s: 0.01, frame_id: world}
sim: {task: reach2d, ee_position_slice: pos, max_episode_steps: %d, lockstep_timeout_s: 0.005}
"""


def _start(module: str, ns: str, domain: int, config: Path, extra: list[str]) -> subprocess.Popen:
    code = f"import sys; from dppo_robot_ros.{module} import main; main(sys.argv[1:])"
    args = ["--ros-args", "-r", f"__ns:={ns}", "-p", f"config_file:={config}", *extra]
    env = {
        **os.environ,
        "ROS_DOMAIN_ID": str(domain),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROS_PKG), os.environ.get("PYTHONPATH", "")]),
    }
    # start_new_session: no controlling terminal's process group, as under launch or systemd
    return subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-c", code, *args],  # a crash prints its Python stack
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for_nodes(domain: int, names: set[tuple[str, str]], timeout_s: float = 60.0) -> None:
    """Block until every (node name, namespace) is on the graph of `domain` (the processes spin)."""
    import rclpy
    from dppo_robot_ros.compose import new_context

    ctx = new_context(domain)
    try:
        probe = rclpy.create_node("exit_probe", context=ctx)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            up = set(probe.get_node_names_and_namespaces())
            if names <= up:
                return
            time.sleep(0.1)
        raise AssertionError(f"nodes {sorted(names - up)} did not come up")
    finally:
        ctx.try_shutdown()


@pytest.mark.slow
def test_nodes_exit_zero_on_sigint_sigterm_and_episode_end(tmp_path):
    pytest.importorskip("rclpy")
    long_sim, short_sim = tmp_path / "sim_long.yaml", tmp_path / "sim_short.yaml"
    long_sim.write_text(SIM_YAML % 100000)
    short_sim.write_text(SIM_YAML % 3)
    domain = 150 + os.getpid() % 50
    failures = []
    for r in range(ROUNDS):
        signals = [signal.SIGINT, signal.SIGTERM]
        procs = {
            # (node, signal to stop it or None: it ends by itself)
            ("policy_node", signals[r % 2]): _start("policy_node", f"/p{r}", domain, long_sim, []),
            ("franka_bridge", signals[(r + 1) % 2]): _start("bridge_node", f"/b{r}", domain, long_sim, []),
            ("sim_franka", signals[r % 2]): _start(
                "sim_franka_node", f"/s{r}", domain, long_sim, ["-p", "episodes:=1000"]
            ),
            ("sim_franka", None): _start("sim_franka_node", f"/e{r}", domain, short_sim, ["-p", "episodes:=2"]),
        }
        _wait_for_nodes(domain, {("dppo_policy", f"/p{r}"), ("franka_bridge", f"/b{r}"), ("sim_franka", f"/s{r}")})
        for (_, sig), p in procs.items():
            if sig is not None:
                p.send_signal(sig)
        for (name, sig), p in procs.items():
            try:
                out, _ = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            if p.returncode != 0:
                how = sig.name if sig is not None else "episode end"
                failures.append(f"round {r}: {name} ({how}) exit {p.returncode}:\n{out.decode()[-1500:]}")
        assert not failures, "\n\n".join(failures)
