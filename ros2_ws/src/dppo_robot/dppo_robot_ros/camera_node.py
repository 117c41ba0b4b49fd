"""RealSense camera node: colour frames -> sensor_msgs/Image + CameraInfo on realsense-ros names.

Topics: <topic_prefix>/color/image_raw (rgb8) and <topic_prefix>/color/camera_info, both reliable
as realsense-ros publishes them (a default reliable subscriber, e.g. rviz or image_view, gets
them; best-effort readers such as the policy node match too).
Parameters: config_file (cameras[camera_index] of the DeployConfig), serial, recording (a .db3
to play back instead of a device). Device frames carry the device's global-time stamp (host
clock); a recording is replayed with its frame spacing, the first frame stamped now.
"""

from __future__ import annotations

import threading

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from dppo_robot.deploy.camera import Frame, RealSenseCapture
from dppo_robot.deploy.config import CameraConfig, DeployConfig
from dppo_robot_ros import convert
from dppo_robot_ros.common import CAMERA, declare_config, spin_main


def fill_camera_info(msg, frame: Frame, frame_id: str):
    i = frame.intrinsics
    msg.header.stamp, msg.header.frame_id = msg.header.stamp, frame_id
    msg.width, msg.height = i.width, i.height
    msg.distortion_model = i.model
    msg.d = list(i.coeffs)
    msg.k = i.k()
    msg.r = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    msg.p = [i.fx, 0.0, i.ppx, 0.0, 0.0, i.fy, i.ppy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


class CameraNode(Node):
    def __init__(
        self, name: str = "camera", config: DeployConfig | None = None, camera: CameraConfig | None = None, **kw
    ):
        super().__init__(name, **kw)
        cfg, _ = declare_config(self, config)
        idx = self.declare_parameter("camera_index", 0).value
        cam = camera or (cfg.cameras[idx] if idx < len(cfg.cameras) else CameraConfig())
        cam.serial = self.declare_parameter("serial", cam.serial).value
        cam.recording = self.declare_parameter("recording", cam.recording).value
        self.cam = cam
        self.frame_id = f"{cam.name}_color_optical_frame"
        self.image_pub = self.create_publisher(Image, f"{cam.topic_prefix}/color/image_raw", CAMERA)
        self.info_pub = self.create_publisher(CameraInfo, f"{cam.topic_prefix}/color/camera_info", CAMERA)
        self.capture = RealSenseCapture(cam)
        self.published = 0
        self._stop = threading.Event()
        self._t0: tuple[float, float] | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _stamp(self, f: Frame) -> float:
        if not self.cam.recording:
            return f.stamp_s
        if self._t0 is None:
            self._t0 = (f.stamp_s, self.get_clock().now().nanoseconds * 1e-9)
        return self._t0[1] + (f.stamp_s - self._t0[0])

    def _loop(self) -> None:
        while not self._stop.is_set():
            f = self.capture.read(500)
            if f is None:
                if self.cam.recording:
                    break
                continue
            t = self._stamp(f)
            img = convert.fill_image(Image(), t, f.rgb.transpose(2, 0, 1), self.frame_id)
            info = fill_camera_info(CameraInfo(), f, self.frame_id)
            convert.set_stamp(info.header.stamp, t)
            self.image_pub.publish(img)
            self.info_pub.publish(info)
            self.published += 1

    def destroy_node(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.capture.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_main(CameraNode, args)
