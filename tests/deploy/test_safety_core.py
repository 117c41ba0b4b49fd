"""ROS-free safety pieces: the bridge core's refusal and rate-limited holds, limit widening,
time-sized sample buffers, per-slice scale/offset."""

from __future__ import annotations

import numpy as np
import pytest

from dppo_robot.deploy.action_map import ActionMapper
from dppo_robot.deploy.bridge import BridgeCore
from dppo_robot.deploy.config import ActionMapping, BridgeConfig, ObsSource, SafetyConfig
from dppo_robot.deploy.obs_history import ObsHistoryBuilder, Sample, SampleBuffer, extract

Q = np.array([1.0, 0, 0, 0])


def core(max_step_m: float = 0.005) -> BridgeCore:
    safety = SafetyConfig([0.3, -0.5, 0.0], [0.8, 0.5, 0.4], max_step_m=max_step_m, max_step_rad=0.05)
    mapper = ActionMapper(ActionMapping(position_slice="vel", position_scale_m=0.1), [("vel", 3)])
    return BridgeCore(BridgeConfig(stream_hz=100.0, safety=safety), mapper, control_hz=10.0)


def test_startup_outside_the_box_publishes_nothing_then_starts_at_the_measured_pose():
    b = core()
    b.on_pose(0.0, np.array([0.307, 0.0, 0.487]), Q)  # Franka's ready pose, above the box
    out = b.tick(0.005)
    assert not out.publish and out.refused and "outside the workspace box" in out.reasons[0]
    assert b.counters["refused"] == 1
    b.on_pose(0.01, np.array([0.4, 0.0, 0.35]), Q)
    out = b.tick(0.015)
    assert out.publish and out.hold and np.allclose(out.position, [0.4, 0.0, 0.35])


def test_narrowed_box_walks_the_held_target_in_at_the_step_limit():
    b = core()
    b.on_pose(0.0, np.array([0.4, 0.0, 0.35]), Q)
    prev = b.tick(0.0).position
    b.set_safety(SafetyConfig([0.3, -0.5, 0.0], [0.8, 0.5, 0.3], 0.005, 0.05))
    zs = []
    for k in range(1, 15):
        t = k * 0.01
        b.on_pose(t, np.array([0.4, 0.0, 0.35]), Q)
        out = b.tick(t)
        assert np.linalg.norm(out.position - prev) <= 0.005 + 1e-12
        prev = out.position
        zs.append(out.position[2])
    assert zs[0] == pytest.approx(0.345) and zs[-1] == pytest.approx(0.3)


def test_widened_from_names_every_wider_limit():
    old = SafetyConfig([0.3, -0.5, 0.0], [0.8, 0.5, 0.4], 0.005, 0.05)
    assert SafetyConfig([0.35, -0.5, 0.0], [0.8, 0.5, 0.3], 0.004, 0.05).widened_from(old) == []
    wider = SafetyConfig([0.2, -0.5, 0.0], [0.8, 0.6, 0.4], 0.006, 0.06).widened_from(old)
    assert wider == [
        "workspace_min_m x 0.3 -> 0.2",
        "workspace_max_m y 0.5 -> 0.6",
        "max_step_m 0.005 -> 0.006",
        "max_step_rad 0.05 -> 0.06",
    ]


def test_sample_buffer_keeps_a_time_window_not_a_count():
    buf = SampleBuffer(window_s=0.2)
    for k in range(1000):  # 1 s of a 1 kHz input
        buf.add(Sample(k * 0.001, {"v": np.array([k])}))
    assert 200 <= len(buf) <= 202
    before, _ = buf.around(0.999 - 0.2)  # the window's start has its sample
    assert before is not None and before.stamp_s <= 0.799 + 1e-9
    buf.add(Sample(0.5, {"v": np.array([-1])}))  # older than the window: dropped
    assert len(buf) <= 202
    h = ObsHistoryBuilder([ObsSource("p", "ee_pose", "position")], [3], cond_steps=4, control_hz=10.0)
    assert h.buffers["ee_pose"].window_s == pytest.approx(3 * 0.1 + 0.25 + 0.1)


def test_scale_and_offset_map_the_message_convention():
    src = ObsSource("g", "gripper", "position", scale=[1.0, -1.0], offset=[0.0, 0.001])
    s = Sample(0.0, {"position": np.array([0.02, 0.02])}, ("f1", "f2"))
    np.testing.assert_allclose(extract(src, s), [0.02, -0.019])
    one = ObsSource("g", "gripper", "position", scale=[2.0])
    np.testing.assert_allclose(extract(one, s), [0.04, 0.04])
    with pytest.raises(ValueError, match="scale has 3 values for 2 elements"):
        extract(ObsSource("g", "gripper", "position", scale=[1.0, 1.0, 1.0]), s)
