"""Calibration files refuse NaN/inf intrinsics, distortion and report figures (issue 18, finding 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dppo_robot.calibration.schema import load_calibration
from dppo_robot.typed_config import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "calibration" / "example_calibration.yaml"
SERIAL = "035422073295"

# field path under cameras.<serial> -> where it sits in the YAML data
FIELDS = {
    "intrinsics.camera_matrix[0][0]": ("intrinsics", "camera_matrix", 0, 0),  # fx
    "intrinsics.camera_matrix[1][1]": ("intrinsics", "camera_matrix", 1, 1),  # fy
    "intrinsics.camera_matrix[0][2]": ("intrinsics", "camera_matrix", 0, 2),  # cx
    "intrinsics.camera_matrix[1][2]": ("intrinsics", "camera_matrix", 1, 2),  # cy
    "intrinsics.distortion[0]": ("intrinsics", "distortion", 0),
    "intrinsics.rms_px": ("intrinsics", "rms_px"),
    "extrinsics.camera_in_parent.translation[0]": ("extrinsics", "camera_in_parent", "translation", 0),
    "extrinsics.report.residual_mm": ("extrinsics", "report", "residual_mm"),
}


def _write(tmp_path: Path, keys: tuple, value) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    node = data["cameras"][SERIAL]
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    path = tmp_path / "calib.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_non_finite_calibration_values_are_refused(tmp_path, field, bad):
    path = _write(tmp_path, FIELDS[field], bad)
    with pytest.raises(ConfigError) as e:
        load_calibration(path)
    msg = str(e.value)
    assert msg == f"{path}: field 'cameras.{SERIAL}.{field}': must be a finite number, got {bad!r}", msg


def test_checks_past_the_loader_refuse_bad_values(tmp_path):
    path = _write(tmp_path, ("intrinsics", "camera_matrix", 1), [0.0, 909.5])
    with pytest.raises(ConfigError, match="camera_matrix must be 3x3, got rows of \\[3, 2, 3\\]"):
        load_calibration(path)
    path = _write(tmp_path, ("intrinsics", "rms_px"), -1.0)
    with pytest.raises(ConfigError, match="rms_px must be finite and >= 0"):
        load_calibration(path)
    path = _write(tmp_path, ("extrinsics", "report", "holdout_mm"), -0.5)
    with pytest.raises(ConfigError, match="holdout_mm must be finite and >= 0"):
        load_calibration(path)
