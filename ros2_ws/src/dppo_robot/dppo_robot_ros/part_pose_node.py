"""Part-pose node: camera images -> AprilTag part poses in the base-tag frame (geometry_msgs/PoseArray).

Thin wrapper over dppo_robot.calibration (ROS-free). Parameter config_file: a PartPoseConfig
YAML (layout, calibration file, cameras with serial + image topic, fusion and tracking limits).
Every image is processed on arrival; the poses fused over the cameras' frames within sync_s of
it are published at once, stamped with that image's stamp, frame_id = config frame_id
("base_tag"). Poses are in the layout's order (the policy's part slices); a part not seen for
tracking.hold_s is NaN, so the policy holds rather than act on it. /diagnostics at 1 Hz:
per-part tracking status, images processed, the tags seen per camera.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Pose, PoseArray
from rclpy.node import Node
from sensor_msgs.msg import Image

from dppo_robot.calibration.part_pose_config import PartPoseConfig, build_estimator, load_part_pose_config
from dppo_robot_ros import convert
from dppo_robot_ros.common import RELIABLE, SENSOR, publish_diagnostic, spin_main, steady_timer


class PartPoseNode(Node):
    def __init__(self, name: str = "part_poses", config: PartPoseConfig | None = None, **kw) -> None:
        super().__init__(name, **kw)
        path = self.declare_parameter("config_file", "").value
        if config is None:
            if not path:
                raise ValueError("parameter 'config_file' (a PartPoseConfig YAML) is not set")
            config = load_part_pose_config(path)
        self.cfg = config
        self.estimator, self.layout = build_estimator(config)
        self.pub = self.create_publisher(PoseArray, config.output_topic, RELIABLE)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE)
        self.processed = dict.fromkeys((c.name for c in config.cameras), 0)
        self.published = 0
        for cam in config.cameras:
            self.create_subscription(Image, cam.image_topic, self._on_image(cam.name), SENSOR)
        self._diag_timer = steady_timer(self, 1.0, self.publish_diagnostics)
        self.get_logger().info(
            f"part poses of {self.layout.published()} from cameras {[c.name for c in config.cameras]} "
            f"-> {config.output_topic}"
        )

    def _on_image(self, camera: str):
        def cb(msg: Image) -> None:
            try:
                rgb = convert.image_array(msg).transpose(1, 2, 0)
            except ValueError as e:
                self.get_logger().warning(f"camera '{camera}': {e}")
                return
            t = convert.stamp_to_s(msg.header.stamp)
            poses = self.estimator.add_image(camera, rgb, t)
            self.processed[camera] += 1
            out = convert.fill_pose_array(PoseArray(), t, list(poses), Pose, self.cfg.frame_id)
            out.header.stamp = msg.header.stamp  # exactly the image's stamp
            self.pub.publish(out)
            self.published += 1

        return cb

    def publish_diagnostics(self) -> None:
        st = DiagnosticStatus(name=f"{self.get_name()}: part poses", hardware_id="apriltag")
        status = {n: tr.status for n, tr in self.estimator.trackers.items()}
        lost = [n for n, s in status.items() if s in ("lost", "unseen")]
        st.level = DiagnosticStatus.WARN if lost else DiagnosticStatus.OK
        st.message = f"not tracked: {lost}" if lost else "ok"
        vals = {f"{n}.status": s for n, s in status.items()}
        vals.update({f"{c}.images": n for c, n in self.processed.items()})
        for c, fr in self.estimator.latest.items():
            vals[f"{c}.tags"] = sorted(d.tag_id for d in fr.detections)
            vals[f"{c}.base"] = fr.base_source or "none"
        publish_diagnostic(self, self.diag_pub, st, vals)


def main(args: list[str] | None = None) -> None:
    spin_main(PartPoseNode, args)
