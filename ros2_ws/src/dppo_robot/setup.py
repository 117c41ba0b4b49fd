"""ament_python package `dppo_robot`; its Python module is dppo_robot_ros (the core is `dppo_robot`)."""

from glob import glob

from setuptools import setup

PACKAGE = "dppo_robot"
MODULE = "dppo_robot_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[MODULE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config/params", glob("config/params/*.yaml")),  # ros__parameters files
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="dppo_robot developers",
    description="ROS 2 nodes for dppo_robot policy bundles on a Franka",
    license="MIT",
    entry_points={
        "console_scripts": [
            f"policy_node = {MODULE}.policy_node:main",
            f"franka_bridge = {MODULE}.bridge_node:main",
            f"camera_node = {MODULE}.camera_node:main",
            f"sim_franka = {MODULE}.sim_franka_node:main",
            f"part_pose_node = {MODULE}.part_pose_node:main",
            f"robot_mode_relay = {MODULE}.robot_mode_relay:main",
        ],
    },
)
