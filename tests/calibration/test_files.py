"""Calibration and layout files: round trip, strict loading with clear errors, the one_leg layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from dppo_robot.calibration import se3
from dppo_robot.calibration.layout import load_layout
from dppo_robot.calibration.schema import (
    CalibrationFile,
    CameraCalibration,
    Extrinsics,
    HandEyeReport,
    Intrinsics,
    Transform,
    load_calibration,
    save_calibration,
)
from dppo_robot.typed_config import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "calibration" / "example_calibration.yaml"
LAYOUT = REPO / "calibration" / "one_leg_tags.yaml"


def _calib() -> CalibrationFile:
    K = [[910.0, 0.0, 641.0], [0.0, 909.0, 362.0], [0.0, 0.0, 1.0]]
    R = se3.random_rotation(np.random.default_rng(0), np.pi)
    ext = Extrinsics(
        "eye_to_hand", "base", Transform.from_matrix(se3.make_pose(R, [1.0, 0.2, 0.5])), HandEyeReport(15, 14)
    )
    cam = CameraCalibration("front", Intrinsics(1280, 720, K, [0.1, -0.2, 0.0, 0.0, 0.05], source="charuco"), ext)
    return CalibrationFile(1, {"035422073295": cam}, Transform.from_matrix(np.eye(4)))


def _write(tmp_path: Path, data) -> Path:
    p = tmp_path / "calib.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_round_trip_keeps_serials_and_exact_rotations(tmp_path):
    calib = _calib()
    path = save_calibration(calib, tmp_path / "c.yaml")
    back = load_calibration(path)
    assert list(back.cameras) == ["035422073295"]  # leading zero kept
    R0 = calib.cameras["035422073295"].extrinsics.camera_in_parent.matrix()
    assert np.allclose(back.cameras["035422073295"].extrinsics.camera_in_parent.matrix(), R0, atol=1e-12)
    assert back.intrinsics("035422073295").K()[0, 0] == 910.0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["cameras"]["035422073295"].update(colour="red"), "unknown field 'cameras.035422073295.colour'"),
        (lambda d: d["cameras"]["035422073295"]["intrinsics"].update(camera_matrix=[[1, 0], [0, 1]]), "must be 3x3"),
        (lambda d: d["cameras"]["035422073295"]["intrinsics"].update(distortion=[0.1, 0.2, 0.3]), "distortion"),
        (
            lambda d: d["cameras"]["035422073295"]["extrinsics"]["camera_in_parent"].update(
                rotation=[[1, 0, 0], [0, 1.01, 0], [0, 0, 1]]
            ),
            "not orthonormal",
        ),
        (
            lambda d: d["cameras"]["035422073295"]["extrinsics"]["camera_in_parent"].update(
                rotation=[[1, 0, 0], [0, 1, 0], [0, 0, -1]]
            ),
            "reflection",
        ),
        (lambda d: d["cameras"]["035422073295"]["extrinsics"].update(mount="on_the_wall"), "is not one of"),
        (lambda d: d.update(schema_version=2), "schema_version 2 is not supported"),
        (lambda d: d["cameras"].update({35422073295: d["cameras"].pop("035422073295")}), "must be a quoted string"),
    ],
)
def test_bad_files_name_the_file_and_field(tmp_path, edit, message):
    data = yaml.safe_load(save_calibration(_calib(), tmp_path / "ok.yaml").read_text())
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as e:
        load_calibration(path)
    assert str(path) in str(e.value) and message in str(e.value), str(e.value)


def test_intrinsics_scale_with_the_stream_and_refuse_another_aspect():
    i = Intrinsics(1280, 720, [[900.0, 0, 639.5], [0, 900.0, 359.5], [0, 0, 1]])
    half = i.for_size(640, 360)
    assert np.allclose(half.K(), [[450.0, 0, 319.5], [0, 450.0, 179.5], [0, 0, 1]])
    with pytest.raises(ConfigError, match="aspect ratio"):
        i.for_size(640, 480)


def test_example_calibration_file_loads():
    calib = load_calibration(EXAMPLE)
    assert calib.cameras and all(c.intrinsics is not None for c in calib.cameras.values())


def test_one_leg_layout_matches_furniturebench_and_the_simulator():
    layout = load_layout(LAYOUT)
    assert layout.published() == [
        "square_table_top",
        *(f"square_table_leg{i}" for i in range(1, 5)),
        "obstacle_front",
    ]
    assert layout.base.tag_size == 0.048 and sorted(layout.base.poses()) == [0, 1, 2, 3]
    ids = {n: sorted(g.poses()) for n, g in layout.parts.items()}
    assert ids["square_table_top"] == [4, 5, 6, 7] and ids["square_table_leg4"] == [20, 21, 22, 23]
    for name, group in layout.parts.items():
        assert group.tag_size == 0.0195
        for T in group.poses().values():  # every tag's z (into the tag) points at the part's centre
            assert np.allclose(T[:3, 2], -T[:3, 3] / np.linalg.norm(T[:3, 3])), name
    # the fixed obstacle pose is what the one_leg simulator reports for its nominal fixture
    G = pytest.importorskip("dppo_robot.envs.one_leg.geometry")
    rz90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    T = layout.fixed["obstacle_front"].matrix()
    assert np.allclose(T[:3, 3], G.OBSTACLE_FRONT_TAG) and np.allclose(T[:3, :3], G.R_BASE_TAG.T @ rz90)
    assert np.allclose(layout.base.poses()[0][:3, 3], [-0.03, -0.03, 0.0])


def test_example_part_pose_config_builds_an_estimator():
    from dppo_robot.calibration.part_pose_config import build_estimator, load_part_pose_config

    cfg = load_part_pose_config(REPO / "calibration" / "part_poses_one_leg.yaml")
    est, layout = build_estimator(cfg)
    assert sorted(est.cameras) == ["front", "rear"] and est.order == layout.published()
    assert cfg.tracking.hold_s == 0.5 and Path(cfg.layout).is_absolute()


def test_layout_rejects_a_tag_id_used_twice(tmp_path):
    data = yaml.safe_load(LAYOUT.read_text())
    data["parts"]["square_table_leg1"]["tags"]["4"] = {"translation": [0, 0, -0.015]}
    p = tmp_path / "layout.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="tag id 4 is used by both") as e:
        load_layout(p)
    assert "'square_table_top'" in str(e.value) and "'square_table_leg1'" in str(e.value) and str(p) in str(e.value)
