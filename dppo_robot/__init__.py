"""dppo_robot: DPPO fine-tuning of diffusion policies, policy bundles, and sim-to-real deployment.

The core package never imports ROS; the ROS 2 nodes live in ros2_ws/src/dppo_robot.
"""

__version__ = "0.1.0"
