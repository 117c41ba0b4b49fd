"""Part poses in the base-tag frame: MuJoCo-rendered tagged parts, fusion, outlier and jump rejection."""

from __future__ import annotations

import numpy as np
import pytest

from dppo_robot.calibration import se3
from dppo_robot.calibration.part_poses import (
    CameraEstimator,
    FusionConfig,
    PartEstimate,
    PartPoseEstimator,
    PoseTracker,
    TrackingConfig,
    fuse,
)
from tests.calibration.synth import build_tag_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return build_tag_scene(tmp_path_factory.mktemp("tags"))


def _row_pose(row: np.ndarray) -> np.ndarray:
    return se3.from_pos_quat(row[:3], row[3:])


def test_part_poses_from_rendered_simulator_images_within_3mm(scene):
    """1280x720 MuJoCo renders (blur 0.8 px, noise 3) of the one_leg parts, two cameras fused."""
    imgs = scene.render(np.random.default_rng(0))
    intr = scene.intrinsics()
    est = PartPoseEstimator(scene.layout, [CameraEstimator(c, scene.layout, intr) for c in scene.cameras])
    for cam in scene.cameras:
        out = est.add_image(cam, imgs[cam], 1.0)
        assert est.latest[cam].base_source == "tags" and est.latest[cam].base.rms_px < 0.3
    order = scene.layout.published()
    lines = []
    for name, T in scene.truth().items():
        mm, deg = se3.pose_error(_row_pose(out[order.index(name)]), T)
        per_cam = {
            c: se3.pose_error(est.latest[c].parts[name].T_base_part, T)[0]
            for c in scene.cameras
            if name in est.latest[c].parts
        }
        lines.append(
            f"{name} {mm:.2f} mm {deg:.2f} deg (" + ", ".join(f"{c} {v:.2f} mm" for c, v in per_cam.items()) + ")"
        )
        assert mm < 3.0 and deg < 2.0, lines[-1]
        assert all(v < 3.0 for v in per_cam.values()), lines[-1]
    print("\nsimulator part poses, fused over 2 cameras:\n  " + "\n  ".join(lines))
    # parts not in the scene are NaN; the fixed fixture is published as configured
    assert np.isnan(out[order.index("square_table_leg2")]).all()
    assert np.allclose(out[order.index("obstacle_front")], [0, 0.38, -0.015, 1, 0, 0, 0])
    assert not est.rejected


def test_without_base_tags_a_camera_needs_its_extrinsics(scene):
    img = scene.render(np.random.default_rng(1))["front"]
    T_base_cam = se3.invert(CameraEstimator("front", scene.layout, scene.intrinsics()).process(img, 0.0).T_cam_base)
    no_base = scene.layout
    no_base = type(no_base)(no_base.schema_version, type(no_base.base)(0.048, {"99": no_base.base.tags["0"]}),
                            no_base.parts, no_base.fixed, no_base.order)  # fmt: skip
    blind = CameraEstimator("front", no_base, scene.intrinsics()).process(img, 0.0)
    assert blind.base_source == "" and not blind.parts and 0 in blind.unknown_ids
    with_ext = CameraEstimator("front", no_base, scene.intrinsics(), T_base_cam=T_base_cam).process(img, 0.0)
    assert with_ext.base_source == "extrinsics"
    truth = scene.truth()["square_table_top"]
    assert se3.pose_error(with_ext.parts["square_table_top"].T_base_part, truth)[0] < 3.0


def _est(T: np.ndarray, w: float = 1.0, cam: str = "c") -> PartEstimate:
    return PartEstimate("p", T, w, cam, 0.1, [4])


def test_fusion_drops_the_camera_that_disagrees_and_weights_the_rest():
    a = se3.make_pose(np.eye(3), [0.100, 0.0, 0.0])
    b = se3.make_pose(np.eye(3), [0.102, 0.0, 0.0])
    bad = se3.make_pose(np.eye(3), [0.150, 0.0, 0.0])  # e.g. the flipped solution of a single tag
    T, rejected = fuse([_est(a, 3.0, "front"), _est(bad, 10.0, "wrist"), _est(b, 1.0, "rear")])
    assert [e.camera for e in rejected] == ["wrist"]
    assert T[0, 3] == pytest.approx(0.1005)  # (3 * 0.100 + 1 * 0.102) / 4
    assert fuse([]) == (None, [])


def test_fusion_takes_each_axis_from_the_camera_that_measures_it_best():
    """Camera a sees depth (x) poorly and y well; camera b the other way round: the fused position is
    right on both axes, where a scalar-weighted mean would be off on both."""
    truth = np.array([0.1, 0.2, 0.0])
    a = _est(se3.make_pose(np.eye(3), truth + np.array([0.004, 0.0, 0.0])), cam="a")  # 4 mm off along its depth
    b = _est(se3.make_pose(np.eye(3), truth + np.array([0.0, 0.004, 0.0])), cam="b")
    a.cov_t, b.cov_t = np.diag([16e-6, 1e-8, 1e-8]), np.diag([1e-8, 16e-6, 1e-8])
    T, rejected = fuse([a, b])
    assert not rejected and np.linalg.norm(T[:3, 3] - truth) < 1e-5


def test_tracker_rejects_jumps_relocks_holds_and_forgets():
    cfg = TrackingConfig(max_speed_m_s=0.5, jump_margin_m=0.01, relock_frames=3, hold_s=0.3)
    tr = PoseTracker(cfg)
    at = lambda x: se3.make_pose(np.eye(3), [x, 0.0, 0.0])  # noqa: E731
    assert tr.update(0.0, at(0.0))[0, 3] == 0.0 and tr.status == "tracked"
    assert tr.update(0.033, at(0.02))[0, 3] == 0.02  # 2 cm in 33 ms: within 1 cm + 0.5 m/s * dt
    assert tr.update(0.066, at(0.30))[0, 3] == 0.02 and tr.status == "jump rejected"
    assert tr.update(0.1, at(0.30))[0, 3] == 0.02
    assert tr.update(0.133, at(0.30))[0, 3] == 0.30 and tr.status == "relocked"  # 3 consistent frames
    assert tr.update(0.1, at(0.5))[0, 3] == 0.30  # a late, older frame does not move the track
    assert tr.update(0.3, None)[0, 3] == 0.30 and tr.status == "held"
    assert tr.update(0.5, None) is None and tr.status == "lost"


def test_estimator_refuses_unknown_cameras(scene):
    est = PartPoseEstimator(scene.layout, [CameraEstimator("front", scene.layout, scene.intrinsics())])
    with pytest.raises(KeyError, match="unknown camera 'side'"):
        est.add_image("side", np.zeros((720, 1280), np.uint8), 0.0)
    assert FusionConfig().max_disagreement_m == 0.01
