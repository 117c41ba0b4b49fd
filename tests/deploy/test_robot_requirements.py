"""The robot-PC install set (requirements/robot.txt) resolves on Humble (Python 3.10) and Jazzy
(Python 3.12) against the package index: every pin has a binary wheel for that Python, numpy
stays on the distro's 1.x minor, and every pinned package's own requirements on other pinned
packages hold (a pin without a wheel, or numpy 2 sneaking in, fails here, not on the robot PC)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROBOT_TXT = Path(__file__).resolve().parents[2] / "requirements" / "robot.txt"
# The numpy minor each distro's ROS 2 message extensions are built against (Ubuntu's python3-numpy).
DISTRO_NUMPY = {"3.10": "1.21", "3.12": "1.26"}


def robot_requirements(python_version: str, path: Path = ROBOT_TXT) -> list[Requirement]:
    """The lines of `path` whose environment markers hold on Linux x86-64 with `python_version`.

    pip evaluates markers against the interpreter running it, not --python-version: they are
    evaluated here."""
    env = {**default_environment(), "python_version": python_version, "python_full_version": f"{python_version}.0"}
    env.update(sys_platform="linux", platform_system="Linux", platform_machine="x86_64")
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            r = Requirement(line)
            if r.marker is None or r.marker.evaluate(env):
                out.append(r)
    return out


def _pins(reqs: list[Requirement]) -> dict[str, Version]:
    pins = {}
    for r in reqs:
        (spec,) = r.specifier
        assert spec.operator == "==", f"{ROBOT_TXT.name}: {r} is not an exact pin"
        name = canonicalize_name(r.name)
        assert name not in pins, f"{ROBOT_TXT.name}: {r.name} pinned twice for one Python"
        pins[name] = Version(spec.version)
    return pins


def test_markers_select_one_pin_per_package_and_the_distro_numpy():
    for py, minor in DISTRO_NUMPY.items():
        pins = _pins(robot_requirements(py))
        assert str(pins["numpy"]).startswith(minor + "."), (py, pins["numpy"])
        assert {"onnxruntime", "pyyaml", "mujoco", "mink"} <= set(pins), py


def _index_reachable() -> bool:
    import urllib.request

    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("python_version", sorted(DISTRO_NUMPY))
def test_robot_pc_install_set_resolves_against_the_index(python_version, tmp_path):
    if not _index_reachable():
        pytest.skip("https://pypi.org is unreachable: cannot resolve requirements/robot.txt against the index")
    reqs = robot_requirements(python_version)
    pins = _pins(reqs)
    lock = tmp_path / "robot.txt"
    lock.write_text("\n".join(f"{r.name}=={v}" for r, v in zip(reqs, pins.values())) + "\n")
    dest = tmp_path / "wheels"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
           python_version, "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
           "--platform", "manylinux1_x86_64", "--platform", "linux_x86_64", "--disable-pip-version-check",
           "-d", str(dest), "-r", str(lock)]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (
        f"Python {python_version}: a pin has no wheel:\n{run.stdout[-2000:]}{run.stderr[-3000:]}"
    )
    wheels = sorted(dest.glob("*.whl"))
    assert len(wheels) == len(pins), [w.name for w in wheels]
    # each pinned package's requirements on other pinned packages (numpy ranges above all) hold
    env = {**default_environment(), "python_version": python_version, "python_full_version": f"{python_version}.0"}
    env.update(sys_platform="linux", platform_system="Linux", platform_machine="x86_64", extra="")
    broken = []
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            msg = Parser().parsestr(z.read(meta).decode())
        rp = msg.get("Requires-Python")
        if rp and not Requirement(f"python{rp}").specifier.contains(f"{python_version}.0"):
            broken.append(f"{w.name}: Requires-Python {rp}")
        for line in msg.get_all("Requires-Dist") or []:
            dep = Requirement(line)
            if dep.marker is not None and not dep.marker.evaluate(env):
                continue
            name = canonicalize_name(dep.name)
            if name in pins and not dep.specifier.contains(pins[name], prereleases=True):
                broken.append(f"{w.name} requires {dep}; robot.txt pins {name}=={pins[name]}")
    assert not broken, f"Python {python_version}:\n" + "\n".join(broken)
