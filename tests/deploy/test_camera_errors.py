"""pyrealsense2 recording errors are one-line CameraErrors naming the camera and file (issue 18, finding 10).
Real pyrealsense2 playback of real (broken) files; no camera attached."""

from __future__ import annotations

import numpy as np
import pytest

from dppo_robot.deploy.config import CameraConfig


@pytest.mark.parametrize("content", [b"", b"not a recording\n" * 100, bytes(range(256)) * 20])
def test_unreadable_recording_is_a_one_line_camera_error(tmp_path, content):
    pytest.importorskip("pyrealsense2")
    from dppo_robot.deploy.camera import CameraError, RealSenseCapture

    path = tmp_path / "broken.bag"
    path.write_bytes(content)
    with pytest.raises(CameraError) as e:
        RealSenseCapture(CameraConfig(name="front", recording=str(path)))
    msg = str(e.value)
    assert msg.startswith(f"camera 'front': cannot open recording {path}: ") and "\n" not in msg, msg


def test_truncated_recording_is_a_camera_error_or_plays_what_it_holds(tmp_path):
    pytest.importorskip("pyrealsense2")
    from dppo_robot.deploy.camera import CameraError, RealSenseCapture, synthesize_recording

    frames = [np.full((24, 32, 3), 10 * i, np.uint8) for i in range(4)]
    path = synthesize_recording(tmp_path / "rec.db3", frames, fps=30)
    cut = tmp_path / "cut.db3"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    try:
        cap = RealSenseCapture(CameraConfig(name="front", recording=str(cut)))
    except CameraError as e:
        assert "cannot open recording" in str(e) and "\n" not in str(e)
        return
    try:
        for _ in range(10):
            if cap.read(500) is None:
                break
    except CameraError as e:
        assert "cannot read recording" in str(e) and "\n" not in str(e)
    finally:
        cap.close()
