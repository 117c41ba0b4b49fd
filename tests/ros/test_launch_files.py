"""Launch files checked without `launch`: executables are console scripts, referenced files exist."""

from __future__ import annotations

import ast
import re
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
