"""Calibration files refuse NaN/inf intrinsics, distortion and report figures (issue 18, finding 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dppo_robot.calibration.schema import load_calibration
from dppo_robot.typed_config import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "calibration" / "example_calibration.yaml"
SERIAL = "035422073295"


def _cam(d: dict) -> dict:
    return d["cameras"][SERIAL]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize(
    "where,set_value,message",
    [
        (
            "fx",
            lambda d, v: _cam(d)["intrinsics"]["camera_matrix"][0].__setitem__(0, v),
            "camera_matrix must be finite",
        ),
        (
            "fy",
            lambda d, v: _cam(d)["intrinsics"]["camera_matrix"][1].__setitem__(1, v),
            "camera_matrix must be finite",
        ),
        (
            "cx",
            lambda d, v: _cam(d)["intrinsics"]["camera_matrix"][0].__setitem__(2, v),
            "camera_matrix must be finite",
        ),
        (
            "cy",
            lambda d, v: _cam(d)["intrinsics"]["camera_matrix"][1].__setitem__(2, v),
            "camera_matrix must be finite",
        ),
        ("k1", lambda d, v: _cam(d)["intrinsics"]["distortion"].__setitem__(0, v), "distortion must be finite"),
        ("rms", lambda d, v: _cam(d)["intrinsics"].__setitem__("rms_px", v), "rms_px must be finite"),
        (
            "translation",
            lambda d, v: _cam(d)["extrinsics"]["camera_in_parent"]["translation"].__setitem__(0, v),
            "must be finite",
        ),
        ("report", lambda d, v: _cam(d)["extrinsics"]["report"].__setitem__("residual_mm", v), "residual_mm must be"),
    ],
)
def test_non_finite_calibration_values_are_refused(tmp_path, where, set_value, message, bad):
    data = yaml.safe_load(EXAMPLE.read_text())
    set_value(data, bad)
    path = tmp_path / "calib.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=message) as e:
        load_calibration(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: field 'cameras.{SERIAL}") and "\n" not in msg, msg


def test_ragged_camera_matrix_is_a_config_error(tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text())
    _cam(data)["intrinsics"]["camera_matrix"][1] = [0.0, 909.5]
    path = tmp_path / "calib.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match="camera_matrix must be 3x3, got rows of \\[3, 2, 3\\]"):
        load_calibration(path)
