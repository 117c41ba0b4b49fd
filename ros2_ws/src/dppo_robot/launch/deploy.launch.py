"""Robot PC: policy node (lifecycle, configured here, activated unless activate:=false), Franka
bridge, cameras.

    ros2 launch dppo_robot deploy.launch.py bundle:=/path/to/bundle robot_ip:=172.16.0.2 \
        camera_serials:=123456789012,234567890123 dry_run:=true

For hardware trial sessions (`dppo-robot trials run`), launch with activate:=false: the session
activates the policy at each trial's start and deactivates it at its end.

The Franka bridge (lifecycle) is configured and activated once at start-up: it then holds the
arm where it is (or, outside the workspace box, publishes nothing) until chunks arrive.
franka_ros2 (the controller manager with a Cartesian impedance controller reading
/target_pose) and robot_mode_relay (this package; needs franka_msgs) run beside it.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition


def _cameras(context, *args, **kwargs):
    serials = [s for s in LaunchConfiguration("camera_serials").perform(context).split(",") if s]
    return [
        Node(
            package="dppo_robot",
            executable="camera_node",
            name=f"camera_{i}",
            parameters=[{"config_file": LaunchConfiguration("config"), "serial": s, "camera_index": i}],
            output="screen",
        )
        for i, s in enumerate(serials)
    ]


def generate_launch_description() -> LaunchDescription:
    default_config = PathJoinSubstitution([FindPackageShare("dppo_robot"), "config", "deploy_franka.yaml"])
    args = [
        DeclareLaunchArgument("bundle", description="policy bundle directory (bundle.yaml + policy.onnx)"),
        DeclareLaunchArgument("config", default_value=default_config, description="deployment config YAML"),
        DeclareLaunchArgument("robot_ip", default_value="172.16.0.2", description="Franka controller IP"),
        DeclareLaunchArgument(
            "camera_serials", default_value="", description="comma-separated RealSense serials (one node each)"
        ),
        DeclareLaunchArgument(
            "dry_run", default_value="false", description="run everything but publish no target to the robot"
        ),
        DeclareLaunchArgument(
            "activate",
            default_value="true",
            description="activate the policy once configured (false: it waits inactive, e.g. for trials run)",
        ),
    ]
    policy = LifecycleNode(
        package="dppo_robot",
        executable="policy_node",
        name="dppo_policy",
        namespace="",
        parameters=[{"bundle": LaunchConfiguration("bundle"), "config_file": LaunchConfiguration("config")}],
        output="screen",
    )
    bridge = LifecycleNode(
        package="dppo_robot",
        executable="franka_bridge",
        name="franka_bridge",
        namespace="",
        parameters=[
            {
                "config_file": LaunchConfiguration("config"),
                "dry_run": LaunchConfiguration("dry_run"),
                "robot_ip": LaunchConfiguration("robot_ip"),
            }
        ],
        output="screen",
    )
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(policy), transition_id=Transition.TRANSITION_CONFIGURE)
    )
    activate = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=policy,
            goal_state="inactive",
            entities=[
                EmitEvent(
                    event=ChangeState(
                        lifecycle_node_matcher=matches_action(policy), transition_id=Transition.TRANSITION_ACTIVATE
                    )
                )
            ],
        ),
        condition=IfCondition(LaunchConfiguration("activate")),
    )
    # The bridge (lifecycle) publishes nothing until active: configure it, then activate it once,
    # on the configuring -> inactive transition only (a manual deactivate stays deactivated).
    configure_bridge = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(bridge), transition_id=Transition.TRANSITION_CONFIGURE)
    )
    activate_bridge = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=bridge,
            start_state="configuring",
            goal_state="inactive",
            entities=[
                EmitEvent(
                    event=ChangeState(
                        lifecycle_node_matcher=matches_action(bridge), transition_id=Transition.TRANSITION_ACTIVATE
                    )
                )
            ],
        )
    )
    return LaunchDescription(
        [
            *args,
            policy,
            bridge,
            OpaqueFunction(function=_cameras),
            activate,
            configure,
            activate_bridge,
            configure_bridge,
        ]
    )
