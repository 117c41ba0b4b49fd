"""ROS 2 nodes of the dppo_robot package: thin wrappers over the ROS-free core `dppo_robot.deploy`.

Named dppo_robot_ros so that it never shadows the core package `dppo_robot`.
"""
