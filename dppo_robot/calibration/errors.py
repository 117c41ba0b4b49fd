"""The one error type of the calibration package."""

from __future__ import annotations


class CalibrationError(ValueError):
    """A calibration that cannot be computed from the given data (too few views, no detections...)."""
