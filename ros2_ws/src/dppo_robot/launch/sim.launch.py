"""The stack against the simulated Franka, all on simulated time (sim_franka owns /clock).

ros2 launch dppo_robot sim.launch.py bundle:=/path/to/bundle config:=.../sim_reach2d.yaml episodes:=20
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition


def generate_launch_description() -> LaunchDescription:
    default_config = PathJoinSubstitution([FindPackageShare("dppo_robot"), "config", "sim_reach2d.yaml"])
    config = LaunchConfiguration("config")
    args = [
        DeclareLaunchArgument("bundle", description="policy bundle directory whose spec matches the sim task"),
        DeclareLaunchArgument("config", default_value=default_config, description="deployment + sim config YAML"),
        DeclareLaunchArgument("episodes", default_value="10", description="episodes the simulated Franka plays"),
        DeclareLaunchArgument("dry_run", default_value="false", description="bridge publishes no targets"),
    ]
    sim_time = {"use_sim_time": True}
    policy = LifecycleNode(
        package="dppo_robot",
        executable="policy_node",
        name="dppo_policy",
        namespace="",
        parameters=[{"bundle": LaunchConfiguration("bundle"), "config_file": config}, sim_time],
        output="screen",
    )
    bridge = LifecycleNode(
        package="dppo_robot",
        executable="franka_bridge",
        name="franka_bridge",
        namespace="",
        parameters=[{"config_file": config, "dry_run": LaunchConfiguration("dry_run")}, sim_time],
        output="screen",
    )
    sim = Node(
        package="dppo_robot",
        executable="sim_franka",
        name="sim_franka",
        parameters=[
            {
                "config_file": config,
                "episodes": LaunchConfiguration("episodes"),
                "bundle": LaunchConfiguration("bundle"),
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
        )
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
    return LaunchDescription([*args, policy, bridge, sim, activate, configure, activate_bridge, configure_bridge])
