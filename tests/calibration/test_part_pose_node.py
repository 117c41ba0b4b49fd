"""The part-pose node over Fast DDS: rendered camera images in, PoseArray out (stamped with the
image time), consumed by the policy node as the one_leg bundle's part slices."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest
import yaml

from dppo_robot.calibration import se3
from tests.calibration.synth import ONE_LEG_LAYOUT, REPO, all_parts_poses, build_tag_scene

pytestmark = pytest.mark.ros
ROS_PKG = REPO / "ros2_ws" / "src" / "dppo_robot"  # the ament package's Python module, without colcon


@pytest.fixture
def ros_context():
    """A fresh rclpy context on a DDS domain of its own (parallel workers do not meet)."""
    pytest.importorskip("rclpy")
    if str(ROS_PKG) not in sys.path:
        sys.path.insert(0, str(ROS_PKG))
    from dppo_robot_ros.compose import new_context

    ctx = new_context(1 + (os.getpid() * 13 + 101) % 200)
    yield ctx
    ctx.try_shutdown()


PROPRIO = {"ee_pos": [0.5, 0.0, 0.2], "ee_rot_6d": [1, 0, 0, 0, 1, 0], "ee_lin_vel": [0] * 3, "ee_ang_vel": [0] * 3,
           "gripper_width": [0.05]}  # fmt: skip
CAMERAS = {"front": "/sim/front/color/image_raw", "rear": "/sim/rear/color/image_raw"}


def _configs(tmp_path, scene):
    from dppo_robot.calibration.part_pose_config import load_part_pose_config
    from dppo_robot.calibration.schema import CalibrationFile, CameraCalibration, save_calibration

    intr = scene.intrinsics()
    cams = {f"sim_{c}": CameraCalibration(c, intr) for c in CAMERAS}
    save_calibration(CalibrationFile(1, cams), tmp_path / "calibration.yaml")
    cfg = {
        "layout": str(ONE_LEG_LAYOUT),
        "calibration": "calibration.yaml",  # relative to the config file
        "cameras": [{"name": c, "serial": f"sim_{c}", "image_topic": t} for c, t in CAMERAS.items()],
        "sync_s": 0.02,
    }
    (tmp_path / "part_poses.yaml").write_text(yaml.safe_dump(cfg))
    return load_part_pose_config(tmp_path / "part_poses.yaml")


def _policy_config(layout):
    from dppo_robot.deploy.config import ActionMapping, DeployConfig, ObsSource

    cfg = DeployConfig()
    cfg.policy.control_hz = 10.0
    # one_leg acts in absolute poses (its 6D rotation has no mapping yet; this test is about inputs)
    cfg.action = ActionMapping(mode="absolute_pose", position_slice="ee_pos", gripper_slice="gripper")
    cfg.policy.obs = [ObsSource(name, "task_state") for name in PROPRIO]
    for i, part in enumerate(layout.published()):
        cfg.policy.obs += [ObsSource(f"{part}_pos", "part_poses", "position", index=i),
                           ObsSource(f"{part}_quat", "part_poses", "quat_xyzw", index=i)]  # fmt: skip
    # generous: this test checks the wiring (poses into the right slices), not latency; AprilTag
    # detection on a loaded 2-core machine took 1.4 s and made the policy hold ("inputs stale")
    cfg.policy.max_age_s = {"part_poses": 5.0}
    return cfg


def test_part_pose_node_over_dds_feeds_the_policy_node(ros_context, tmp_path):
    import rclpy
    from dppo_robot_ros import convert
    from dppo_robot_ros.common import RELIABLE, SENSOR
    from dppo_robot_ros.compose import Spinner
    from dppo_robot_ros.part_pose_node import PartPoseNode
    from dppo_robot_ros.policy_node import PolicyNode
    from geometry_msgs.msg import PoseArray
    from sensor_msgs.msg import Image, JointState

    from dppo_robot.deploy.fresh_bundle import fresh_task_bundle

    scene = build_tag_scene(tmp_path / "tex", all_parts_poses())
    images = scene.render(np.random.default_rng(0))  # RGB [720, 1280, 3]
    truth = scene.truth()
    cfg = _configs(tmp_path, scene)
    order = scene.layout.published()
    bundle = fresh_task_bundle(tmp_path / "bundle", task="one_leg", cond_steps=1, horizon_steps=8, act_steps=4)

    node = PartPoseNode(config=cfg, context=ros_context)
    pol_cfg = _policy_config(scene.layout)
    policy = PolicyNode(config=pol_cfg, bundle=str(bundle), context=ros_context)
    test = rclpy.create_node("test_part_poses", context=ros_context)
    img_pubs = {c: test.create_publisher(Image, t, SENSOR) for c, t in CAMERAS.items()}
    state_pub = test.create_publisher(JointState, pol_cfg.topics.task_state, RELIABLE)
    received, sent = [], {}
    test.create_subscription(PoseArray, cfg.output_topic, received.append, 50)
    names = [f"{k}/{i}" for k, v in PROPRIO.items() for i in range(len(v))]
    values = np.concatenate([np.asarray(v, float) for v in PROPRIO.values()])
    turn = {"k": 0}

    def feed() -> None:  # one camera image per 0.1 s, alternating, stamped now; proprio at the same rate
        t = test.get_clock().now().nanoseconds * 1e-9
        cam = list(CAMERAS)[turn["k"] % 2]
        turn["k"] += 1
        msg = convert.fill_image(Image(), t, images[cam].transpose(2, 0, 1), f"{cam}_color_optical_frame")
        sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = cam
        img_pubs[cam].publish(msg)
        state_pub.publish(convert.fill_joint_state(JointState(), t, names, values))

    test.create_timer(0.1, feed)
    seen_obs = []
    from rclpy.lifecycle import TransitionCallbackReturn

    assert policy.trigger_configure() == TransitionCallbackReturn.SUCCESS, policy.last_error
    predict = policy.core.runtime.predict

    def recording_predict(obs, images=None, rng=None):
        seen_obs.append(np.array(obs))
        return predict(obs, images, rng=rng)

    policy.core.runtime.predict = recording_predict
    policy.trigger_activate()
    spinners = [Spinner(ros_context, [node]), Spinner(ros_context, [policy, test])]  # detection in its own thread
    try:
        deadline = time.monotonic() + 12.0
        while time.monotonic() < deadline and (len(seen_obs) < 2 or len(received) < 6):
            time.sleep(0.05)
    finally:
        for s in spinners:
            s.close()
        for n in (node, policy, test):
            n.destroy_node()

    assert len(received) >= 6, f"{len(received)} PoseArrays"
    errs = []
    for msg in received:
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) in sent  # stamped with its image's time
        assert msg.header.frame_id == "base_tag" and len(msg.poses) == len(order)
        arr = np.array([[p.position.x, p.position.y, p.position.z, p.orientation.x, p.orientation.y,
                         p.orientation.z, p.orientation.w] for p in msg.poses])  # fmt: skip
        for name, T in truth.items():
            errs.append(se3.pose_error(se3.from_pos_quat(arr[order.index(name), :3], arr[order.index(name), 3:]), T))
        assert np.allclose(arr[order.index("obstacle_front")], [0, 0.38, -0.015, 1, 0, 0, 0])
    errs = np.array(errs)
    print(f"\npart-pose node over DDS: {len(received)} PoseArrays, max error {errs[:, 0].max():.2f} mm "
          f"{errs[:, 1].max():.2f} deg; policy ran its chain {len(seen_obs)} times on them")  # fmt: skip
    assert errs[:, 0].max() < 3.0

    # the policy node's observations carry the part poses where the bundle's part slices are
    assert seen_obs, "the policy never ran its chain"
    obs = seen_obs[-1][-1]  # [Do] of the newest step
    start = sum(len(v) for v in PROPRIO.values())
    for i, name in enumerate(order):
        pos = obs[start + 7 * i : start + 7 * i + 3]
        if name in truth:
            assert np.linalg.norm(pos - truth[name][:3, 3]) < 3e-3, name
    assert np.allclose(obs[:start], values, atol=1e-6)
