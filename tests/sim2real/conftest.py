"""Sim-to-real fixtures: a real (fresh, untrained) reach2d bundle and the test-only phased task."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tests.sim2real.phased_task  # noqa: F401  (registers phased_reach)

REACH2D_RANGE = ([-1.5, -1.5, -1.5, -0.5], [1.5, 1.5, 1.5, 3.0])
ROS_CONFIG = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "dppo_robot" / "config" / "sim_reach2d.yaml"


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    from dppo_robot.deploy.fresh_bundle import fresh_task_bundle

    return fresh_task_bundle(tmp_path_factory.mktemp("s2r_bundle") / "b", obs_range=REACH2D_RANGE, name="policy_a")


@pytest.fixture(scope="session")
def bundle_b(tmp_path_factory) -> Path:
    from dppo_robot.deploy.fresh_bundle import fresh_task_bundle

    return fresh_task_bundle(
        tmp_path_factory.mktemp("s2r_bundle_b") / "b", obs_range=REACH2D_RANGE, seed=1, name="policy_b"
    )


def domain_id() -> int:
    """A DDS domain of this test process (parallel runs do not meet)."""
    return 1 + (os.getpid() * 13 + 5) % 200
