"""ROS-free deployment logic: observation history on the control grid, chunk scheduling, the
Franka bridge's execution and safety, the simulated Franka and camera capture.

The ROS 2 nodes in ros2_ws/src/dppo_robot/dppo_robot_ros are thin wrappers over these classes:
messages in, a call into this package, messages out. Nothing here imports ROS.
"""
