"""Launch files checked without `launch`: executables are console scripts, referenced files exist."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "dppo_robot"
LAUNCH_FILES = sorted((PKG / "launch").glob("*.launch.py"))


def console_scripts() -> set[str]:
    tree = ast.parse((PKG / "setup.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and " = " in node.value:
            out.add(node.value.split(" = ")[0].strip())
        if isinstance(node, ast.JoinedStr):  # f"name = {MODULE}.x:main"
            head = node.values[0]
            if isinstance(head, ast.Constant) and " = " in str(head.value):
                out.add(str(head.value).split(" = ")[0].strip())
    return out


def kwargs_of(tree: ast.AST, func: str) -> list[dict[str, ast.AST]]:
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name == func:
                calls.append({k.arg: k.value for k in node.keywords})
    return calls


def test_package_layout():
    assert console_scripts() == {
        "policy_node",
        "franka_bridge",
        "camera_node",
        "sim_franka",
        "part_pose_node",
        "robot_mode_relay",
    }
    # every console script points at a module of dppo_robot_ros that has the named function
    text = (PKG / "setup.py").read_text()
    for name, module, func in re.findall(r'"(\w+) = \{MODULE\}\.(\w+):(\w+)"', text):
        path = PKG / "dppo_robot_ros" / f"{module}.py"
        assert path.is_file(), f"{name}: {path} missing"
        assert f"def {func}(" in path.read_text(), f"{name}: no {func}() in {path}"
    assert len(re.findall(r"\{MODULE\}\.", text)) == 6
    xml = (PKG / "package.xml").read_text()
    assert 'format="3"' in xml and "<build_type>ament_python</build_type>" in xml
    assert (PKG / "resource" / "dppo_robot").is_file() and (PKG / "setup.cfg").is_file()
    assert (PKG / "dppo_robot_ros" / "__init__.py").is_file() and not (PKG / "dppo_robot").exists()
    assert {p.name for p in LAUNCH_FILES} == {"deploy.launch.py", "sim.launch.py"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_real_executables_and_files(path):
    tree = ast.parse(path.read_text())
    scripts = console_scripts()
    nodes = kwargs_of(tree, "Node") + kwargs_of(tree, "LifecycleNode")
    assert nodes
    for kw in nodes:
        assert isinstance(kw["package"], ast.Constant) and kw["package"].value == "dppo_robot"
        assert kw["executable"].value in scripts, f"{path.name}: {kw['executable'].value} is not a console script"
    # every file named through PathJoinSubstitution([FindPackageShare(pkg), dir, file]) exists in the package
    refs = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "PathJoinSubstitution":
            parts = [e.value for e in node.args[0].elts if isinstance(e, ast.Constant)]
            assert (PKG.joinpath(*parts)).is_file(), f"{path.name} references missing {parts}"
            refs += 1
    assert refs >= 1
    # every argument has a description; deploy declares the five the robot PC needs
    decls = kwargs_of(tree, "DeclareLaunchArgument")
    names = [
        n.args[0].value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DeclareLaunchArgument"
    ]
    assert all("description" in d for d in decls)
    if path.name == "deploy.launch.py":
        assert {"bundle", "config", "robot_ip", "camera_serials", "dry_run"} <= set(names)
    used = set(re.findall(r'LaunchConfiguration\("(\w+)"\)', path.read_text()))
    assert used <= set(names), f"{path.name}: undeclared {used - set(names)}"


def auto_activate_handler(path: Path, target: str = "policy") -> dict[str, object]:
    """The matching options of the OnStateTransition handler of one lifecycle node (the variable
    the launch file names it by), as written in the launch file."""
    handlers = kwargs_of(ast.parse(path.read_text()), "OnStateTransition")
    (kw,) = [h for h in handlers if getattr(h.get("target_lifecycle_node"), "id", None) == target]
    out: dict[str, object] = {"transition": None, "start_state": None, "goal_state": None, "handle_once": False}
    for k in out:
        if k in kw:
            assert isinstance(kw[k], ast.Constant), f"{path.name}: OnStateTransition {k} is not a constant"
            out[k] = kw[k].value
    return out


def handler_fires(spec: dict[str, object], events: list[tuple[str, str, str]]) -> list[bool]:
    """Which (transition, start_state, goal_state) events the handler handles: launch_ros's matcher
    (every option given must equal the event's label) and launch's handle_once (it unregisters
    after the first event it handles)."""
    fired, done = [], False
    for ev in events:
        match = all(spec[k] is None or spec[k] == v for k, v in zip(("transition", "start_state", "goal_state"), ev))
        fired.append(match and not done)
        done = done or (match and bool(spec["handle_once"]))
    return fired


@pytest.mark.ros
@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_auto_activation_fires_once_on_the_real_transition_events(path, ros_context, reach2d_bundle):
    """The policy node's real lifecycle_msgs/TransitionEvent stream (configure, the activation the
    handler asks for, an operator's deactivate, activate, deactivate, cleanup, configure): the
    launch's handler fires on the first inactive after configure and on nothing else.

    Coverage: the handler's options are read from the launch file and matched as launch_ros does
    (launch itself is not installable here); the events are the node's own."""
    import rclpy
    from dppo_robot_ros.compose import Spinner
    from dppo_robot_ros.policy_node import PolicyNode
    from lifecycle_msgs.msg import Transition, TransitionEvent

    from tests.ros.conftest import reach2d_config
    from tests.ros.test_nodes_realtime import change_state

    spec = auto_activate_handler(path)
    cfg = reach2d_config()
    cfg.policy.input_wait_s, cfg.policy.lockstep = 0.0, False
    policy = PolicyNode(config=cfg, bundle=str(reach2d_bundle), context=ros_context)
    test = rclpy.create_node("launch_probe", context=ros_context)
    events: list[tuple[str, str, str]] = []
    test.create_subscription(
        TransitionEvent,
        "/dppo_policy/transition_event",
        lambda m: events.append((m.transition.label, m.start_state.label, m.goal_state.label)),
        50,
    )
    spin = Spinner(ros_context, [policy, test])
    T = Transition
    fired_at = []
    try:
        time.sleep(0.5)  # the subscription matches the node's publisher
        for tid in (T.TRANSITION_CONFIGURE, None, T.TRANSITION_DEACTIVATE, T.TRANSITION_ACTIVATE,
                    T.TRANSITION_DEACTIVATE, T.TRANSITION_CLEANUP, T.TRANSITION_CONFIGURE):  # fmt: skip
            n = len(events)
            if tid is None:  # what the handler emits when it fires on configure
                assert any(handler_fires(spec, events)), f"{path.name}: no auto-activation after configure"
                tid = T.TRANSITION_ACTIVATE
            assert change_state(test, spin, tid)
            deadline = time.monotonic() + 5
            while len(events) < n + 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(events) == n + 2, events
        fired_at = [ev for ev, f in zip(events, handler_fires(spec, events)) if f]
    finally:
        spin.close()
        policy.destroy_node()
        test.destroy_node()
    # once, on the configure (rcl leaves the transition label of these events empty)
    assert [(s, g) for _, s, g in fired_at] == [("configuring", "inactive")], (fired_at, events)
    # the bridge's handler (same lifecycle labels) must match the same way: once, on configure
    bridge_fired = [ev for ev, f in zip(events, handler_fires(auto_activate_handler(path, "bridge"), events)) if f]
    assert [(s, g) for _, s, g in bridge_fired] == [("configuring", "inactive")], (bridge_fired, events)
