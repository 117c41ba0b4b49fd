"""ROS-free inference runtime for policy bundles (onnxruntime)."""

from dppo_robot.runtime.errors import BundleError, BundleMismatchError, ObservationError
from dppo_robot.runtime.policy_runtime import PolicyRuntime, RuntimeConfig

__all__ = ["BundleError", "BundleMismatchError", "ObservationError", "PolicyRuntime", "RuntimeConfig"]
