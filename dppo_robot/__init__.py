"""dppo_robot: DPPO fine-tuning of diffusion policies, policy bundles, and sim-to-real deployment.

The core package never imports ROS; the ROS 2 nodes live in ros2_ws/src/dppo_robot.
"""

__version__ = "0.1.0"

import os as _os

# Headless offscreen rendering (keyframes, pixel observations) unless the user chose a backend;
# MuJoCo reads this once, when it is first imported (robosuite sets the same default).
_os.environ.setdefault("MUJOCO_GL", "egl")
