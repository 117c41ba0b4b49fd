"""Sim-to-real evaluation: trial records, statistics, trial runners, the hardware session, reports.

ROS-free except `ros_io` (lifecycle activation, MCAP recording) and `ros_runner` (trials
through the ROS 2 stack), which import rclpy and are only imported when those are used.
"""
