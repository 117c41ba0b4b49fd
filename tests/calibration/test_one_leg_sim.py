"""Part poses of the one_leg simulator itself: its MJCF with AprilTags textured on its parts, rendered
from two cameras, against the part slices of its own observation (base-tag frame)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from dppo_robot.calibration import se3
from dppo_robot.calibration.layout import load_layout
from dppo_robot.calibration.mujoco_tags import add_tag_group
from dppo_robot.calibration.part_poses import CameraEstimator, PartPoseEstimator
from dppo_robot.calibration.schema import Intrinsics
from tests.calibration.synth import NOISE, ONE_LEG_LAYOUT, _quat_wxyz

W, H, FOVY = 1280, 720, 42.0
# cameras on both sides of the workspace, 0.6 m from the parts, clear of the arm (base-tag frame: eye, target)
CAMERAS = {"left": ((0.42, 0.0, -0.42), (0.0, 0.17, 0.0)), "right": ((-0.42, 0.0, -0.42), (0.0, 0.17, 0.0))}


def tagged_model(env, layout, texture_dir):
    """The env's MJCF with the layout's tags on its part bodies, textured base tags and two cameras."""
    import mujoco

    from dppo_robot.envs.one_leg import geometry as G

    scene = env.unwrapped.scene
    root = ET.fromstring(scene.xml)
    wb = root.find("worldbody")
    for g in list(wb.findall("geom")):  # the scene's untextured base-tag plates
        if (g.get("name") or "").startswith("base_tag"):
            wb.remove(g)
    base = ET.SubElement(wb, "body", name="apriltag_base", pos=" ".join(map(str, scene.tag_origin_world)),
                         quat=_quat_wxyz(G.R_BASE_TAG))  # fmt: skip
    add_tag_group(root, base, layout.base, texture_dir)
    for name, group in layout.parts.items():
        add_tag_group(root, root.find(f".//body[@name='{name}']"), group, texture_dir)
    vis = root.find("visual") if root.find("visual") is not None else ET.SubElement(root, "visual")
    gl = vis.find("global") if vis.find("global") is not None else ET.SubElement(vis, "global")
    gl.set("offwidth", str(W))
    gl.set("offheight", str(H))
    for name, (eye, target) in CAMERAS.items():
        e, t = scene.tag_to_world(np.array(eye)), scene.tag_to_world(np.array(target))
        R = (se3.look_at(e, t) @ np.diag([1.0, -1.0, -1.0, 1.0]))[:3, :3]  # MuJoCo cameras look down -z
        ET.SubElement(wb, "camera", name=name, pos=" ".join(map(str, e)), quat=_quat_wxyz(R), fovy=str(FOVY))
    return mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode"))


def test_one_leg_part_slices_from_its_rendered_cameras(tmp_path):
    assert os.environ.get("MUJOCO_GL")  # set by tests.calibration.synth before MuJoCo is imported
    pytest.importorskip("robosuite")
    import cv2
    import mujoco

    import dppo_robot.envs as envs

    env = envs.make_env(envs.default_task_config("one_leg"), seed=0)
    try:
        env.reset(seed=3)
        layout = load_layout(ONE_LEG_LAYOUT)
        model = tagged_model(env, layout, tmp_path)
        sim_data = env.unwrapped.data
        data = mujoco.MjData(model)
        data.qpos[:] = sim_data.qpos
        data.mocap_pos[:], data.mocap_quat[:] = sim_data.mocap_pos, sim_data.mocap_quat
        mujoco.mj_forward(model, data)
        truth = env.unwrapped.parts_poses().reshape(-1, 7)  # the obs slices <part>_pos, <part>_quat
    finally:
        env.close()
    f = (H / 2) / np.tan(np.radians(FOVY) / 2)
    intr = Intrinsics(W, H, [[f, 0.0, (W - 1) / 2], [0.0, f, (H - 1) / 2], [0.0, 0.0, 1.0]], source="simulator")
    est = PartPoseEstimator(layout, [CameraEstimator(c, layout, intr) for c in CAMERAS])
    rng = np.random.default_rng(0)
    r = mujoco.Renderer(model, H, W)
    try:
        for cam in CAMERAS:
            r.update_scene(data, cam)
            img = cv2.GaussianBlur(r.render().astype(np.float32), (0, 0), NOISE["blur_sigma"])
            img = np.clip(img + rng.normal(0, NOISE["noise_std"], img.shape), 0, 255).astype(np.uint8)
            out = est.add_image(cam, img, 0.0)
    finally:
        r.close()
    order = layout.published()
    lines = []
    for i, name in enumerate(order[:-1]):  # the fixture has no tags (a configured pose; randomised in sim)
        mm, deg = se3.pose_error(
            se3.from_pos_quat(out[i, :3], out[i, 3:]), se3.from_pos_quat(truth[i, :3], truth[i, 3:])
        )
        lines.append(f"{name} {mm:.2f} mm {deg:.2f} deg")
        assert mm < 3.0 and deg < 2.0, lines[-1]
    print("\none_leg simulator, obs part slices from 2 rendered cameras:\n  " + "\n  ".join(lines))
