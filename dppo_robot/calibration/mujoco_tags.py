"""AprilTag textures on MuJoCo bodies, for simulated perception of a tag layout.

`add_tag_group` inserts, for every tag of a group, a PNG texture (the tag with a one-cell white
margin), a material and a flat textured quad mesh in the body's frame at the tag's layout pose,
raised `lift_m` out of the surface (towards the viewer: a quad exactly on a face would fight it
in the depth buffer). The lift shifts the rendered tag off its layout plane: at 1e-4 m it moves
an oblique tag by ~0.1 px. Give 0 when the face under the tag is inset by that much instead.
Meshes use texcoords and inertia="shell" (zero volume). Works on an MJCF ElementTree root; pass
the body element that carries the group's frame.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

from dppo_robot.calibration.layout import TagGroup
from dppo_robot.calibration.render import tag_texture


def _f(*v: float) -> str:
    return " ".join(f"{x:.9g}" for x in v)


def add_tag_group(
    root: ET.Element,
    body: ET.Element,
    group: TagGroup,
    texture_dir: str | Path,
    T_body_group: np.ndarray | None = None,
    lift_m: float = 1e-4,
    cells_px: int = 16,
) -> list[str]:
    """Add the group's tags to `body` (group frame at T_body_group, default identity); geom names."""
    texture_dir = Path(texture_dir)
    texture_dir.mkdir(parents=True, exist_ok=True)
    asset = root.find("asset")
    if asset is None:
        asset = ET.SubElement(root, "asset")
    T_bg = np.eye(4) if T_body_group is None else np.asarray(T_body_group, np.float64)
    h = group.tag_size / 2.0 * 10.0 / 8.0  # the quad includes the white margin: 10 cells for 8
    # quad corners in the tag frame (x right, y down, z into the tag): TL, TR, BR, BL, lifted towards -z
    quad = np.array([[-h, -h, -lift_m], [h, -h, -lift_m], [h, h, -lift_m], [-h, h, -lift_m]])
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # texture rows go down the tag image
    names = []
    for key, placement in group.tags.items():
        tag_id = int(key)
        png = texture_dir / f"tag36h11_{tag_id}.png"
        if not png.exists():
            cv2.imwrite(str(png), tag_texture(tag_id, cells_px))
        T = T_bg @ placement.matrix()
        verts = (T[:3, :3] @ quad.T).T + T[:3, 3]
        name = f"apriltag_{tag_id}"
        ET.SubElement(asset, "texture", name=name, type="2d", file=str(png.resolve()))
        ET.SubElement(asset, "material", name=name, texture=name, specular="0", shininess="0", reflectance="0")
        ET.SubElement(
            asset,
            "mesh",
            name=name,
            vertex=_f(*verts.ravel()),
            texcoord=_f(*uv.ravel()),
            face="0 3 2 0 2 1",  # counter-clockwise seen from outside (-z of the tag)
            inertia="shell",
        )
        ET.SubElement(
            body, "geom", name=name, type="mesh", mesh=name, material=name, contype="0", conaffinity="0", mass="0"
        )
        names.append(name)
    return names
