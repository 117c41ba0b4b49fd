"""Synthetic-truth builders for the calibration tests: board views and a MuJoCo scene of tagged parts."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from dppo_robot.calibration import render, se3
from dppo_robot.calibration.charuco import BoardDetector, BoardObservation, BoardSpec, board_pose
from dppo_robot.calibration.layout import TagLayout, load_layout
from dppo_robot.calibration.mujoco_tags import add_tag_group
from dppo_robot.calibration.schema import Intrinsics

# MuJoCo picks its GL backend when first imported: headless EGL unless the caller chose one.
os.environ.setdefault("MUJOCO_GL", "egl")
REPO = Path(__file__).resolve().parents[2]
ONE_LEG_LAYOUT = REPO / "calibration" / "one_leg_tags.yaml"
K_VGA = np.array([[600.0, 0.0, 319.5], [0.0, 600.0, 239.5], [0.0, 0.0, 1.0]])  # 640x480, ~56 deg HFOV
NOISE = {"blur_sigma": 0.8, "noise_std": 3.0}


def board_centre(spec: BoardSpec) -> np.ndarray:
    """T_board_centre: the board's middle (its origin is the top-left corner)."""
    return se3.make_pose(np.eye(3), [spec.squares_x * spec.square_m / 2, spec.squares_y * spec.square_m / 2, 0.0])


def observe_board(
    spec: BoardSpec, T_cam_board: np.ndarray, rng: np.random.Generator, K: np.ndarray = K_VGA
) -> tuple[np.ndarray, BoardObservation | None]:
    """(rendered 640x480 image with blur and noise, detected board or None)."""
    img = render.render([spec.plane(T_cam_board)], K, (640, 480), supersample=2, rng=rng, **NOISE)
    return img, BoardDetector(spec).detect(img)


def board_pose_from_image(
    spec: BoardSpec, T_cam_board: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, BoardObservation]:
    _, obs = observe_board(spec, T_cam_board, rng)
    assert obs is not None, "board not detected"
    return board_pose(obs, K_VGA, np.zeros(5))[0], obs


# ----------------------------------------------------------------------------- MuJoCo scene of tagged parts
# FurnitureBench's base-tag frame in the world (geometry of dppo_robot/envs/one_leg): x_tag = +y, y_tag = +x, z down.
R_WORLD_BASE_TAG = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
T_WORLD_BASE_TAG = se3.make_pose(R_WORLD_BASE_TAG, [0.3, 0.0, 3e-4])  # tags 0.3 mm above the table
INSET = 2e-4  # part boxes are this much smaller than the layout's faces; the tags sit exactly on the layout faces
PART_BOXES = {"square_table_top": (0.08125, 0.015625, 0.08125), "leg": (0.015, 0.03125, 0.015)}


def _quat_wxyz(R: np.ndarray) -> str:
    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return f"{w:.12g} {x:.12g} {y:.12g} {z:.12g}"


def _rot(axis: str, a: float) -> np.ndarray:
    return Rotation.from_euler(axis, a).as_matrix()


def one_leg_part_poses() -> dict[str, np.ndarray]:
    """T_basetag_part near FurnitureBench's reset poses (tabletop upside down, legs lying), yawed."""
    top = _rot("z", -0.25) @ _rot("x", -np.pi / 2) @ _rot("z", np.pi)  # rot_mat((-pi/2, 0, pi)) yawed
    leg = _rot("y", -np.pi / 2)  # rot_mat((0, -pi/2, 0))
    return {
        "square_table_top": se3.make_pose(top, [-0.02, 0.22, -0.015625]),
        "square_table_leg1": se3.make_pose(_rot("z", 0.35) @ leg, [-0.14, 0.07, -0.015]),
        "square_table_leg4": se3.make_pose(_rot("z", -0.2) @ leg, [0.15, 0.08, -0.015]),
    }


def all_parts_poses() -> dict[str, np.ndarray]:
    """Every one_leg part at FurnitureBench's reset positions (legs at x -0.20, -0.12, 0.12, 0.20), yawed."""
    leg = _rot("y", -np.pi / 2)
    out = {"square_table_top": one_leg_part_poses()["square_table_top"]}
    for i, (x, yaw) in enumerate(((-0.20, 0.3), (-0.12, -0.25), (0.12, 0.2), (0.20, -0.3)), start=1):
        out[f"square_table_leg{i}"] = se3.make_pose(_rot("z", yaw) @ leg, [x, 0.07, -0.015])
    return out


@dataclass
class TagScene:
    model: object  # mujoco.MjModel
    data: object  # mujoco.MjData
    layout: TagLayout
    cameras: list[str]
    width: int
    height: int
    fovy_deg: float

    def intrinsics(self) -> Intrinsics:
        """MuJoCo's pinhole: fy = (H / 2) / tan(fovy / 2), square pixels, centre at ((W - 1) / 2, (H - 1) / 2)."""
        f = (self.height / 2) / np.tan(np.radians(self.fovy_deg) / 2)
        K = [[f, 0.0, (self.width - 1) / 2], [0.0, f, (self.height - 1) / 2], [0.0, 0.0, 1.0]]
        return Intrinsics(self.width, self.height, K, source="simulator")

    def body_pose(self, name: str) -> np.ndarray:
        b = self.model.body(name).id
        return se3.make_pose(self.data.xmat[b].reshape(3, 3), self.data.xpos[b])

    def truth(self) -> dict[str, np.ndarray]:
        """T_basetag_part of every tagged part body, from the simulator."""
        T_wb = self.body_pose("base_tag")
        return {n: se3.invert(T_wb) @ self.body_pose(n) for n in self.layout.parts if _has_body(self.model, n)}

    def render(
        self, rng: np.random.Generator, blur_sigma: float = 0.8, noise_std: float = 3.0
    ) -> dict[str, np.ndarray]:
        """camera -> RGB uint8 [H, W, 3], with a camera-like blur and sensor noise."""
        import cv2
        import mujoco

        out = {}
        r = mujoco.Renderer(self.model, self.height, self.width)
        try:
            for cam in self.cameras:
                r.update_scene(self.data, cam)
                img = r.render().astype(np.float32)
                if blur_sigma > 0:
                    img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
                img = img + rng.normal(0.0, noise_std, img.shape)
                out[cam] = np.clip(np.round(img), 0, 255).astype(np.uint8)
        finally:
            r.close()
        return out


def _has_body(model, name: str) -> bool:
    try:
        model.body(name)
    except KeyError:
        return False
    return True


def build_tag_scene(
    tmp: Path, poses: dict[str, np.ndarray] | None = None, width: int = 1280, height: int = 720
) -> TagScene:
    """A table with the 2x2 base tags, tagged parts of the one_leg layout at `poses`, and two cameras."""
    import mujoco

    layout = load_layout(ONE_LEG_LAYOUT)
    poses = one_leg_part_poses() if poses is None else poses
    fovy = 42.0
    root = ET.fromstring(
        f'<mujoco><visual><global offwidth="{width}" offheight="{height}"/>'
        '<headlight ambient="0.7 0.7 0.7" diffuse="0.3 0.3 0.3" specular="0 0 0"/></visual>'
        '<asset/><worldbody><geom type="plane" size="1 1 0.01" rgba="0.55 0.5 0.45 1"/></worldbody></mujoco>'
    )
    wb = root.find("worldbody")
    T_wb = T_WORLD_BASE_TAG
    base = ET.SubElement(
        wb, "body", name="base_tag", pos=" ".join(map(str, T_wb[:3, 3])), quat=_quat_wxyz(T_wb[:3, :3])
    )
    add_tag_group(root, base, layout.base, tmp, lift_m=0.0)
    for name, T_bp in poses.items():
        T = T_wb @ T_bp
        body = ET.SubElement(wb, "body", name=name, pos=" ".join(map(str, T[:3, 3])), quat=_quat_wxyz(T[:3, :3]))
        half = np.array(PART_BOXES["square_table_top" if name == "square_table_top" else "leg"]) - INSET
        ET.SubElement(body, "geom", type="box", size=" ".join(map(str, half)), rgba="0.9 0.9 0.88 1")
        add_tag_group(root, body, layout.parts[name], tmp, lift_m=0.0)
    # FurnitureBench-like front and rear cameras ~0.55 m from the parts, looking down at ~35 deg
    target = (T_wb @ np.array([0.0, 0.15, 0.0, 1.0]))[:3]
    cams = {"front": np.array([0.78, 0.22, 0.36]), "rear": np.array([0.74, -0.3, 0.33])}
    for name, eye in cams.items():
        T = se3.look_at(eye, target) @ np.diag([1.0, -1.0, -1.0, 1.0])  # MuJoCo cameras look down -z, y up
        ET.SubElement(wb, "camera", name=name, pos=" ".join(map(str, eye)), quat=_quat_wxyz(T[:3, :3]), fovy=str(fovy))
    model = mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode"))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return TagScene(model, data, layout, list(cams), width, height, fovy)
