"""Tag layouts: which AprilTags sit where on the base and on each part, and the published part order.

    schema_version: 1
    family: tag36h11
    base:                      # the base tags define the base-tag frame (FurnitureBench)
      tag_size: 0.048          # black-square edge (m)
      tags: {"0": {translation: [-0.03, -0.03, 0]}, ...}     # T_base_tag per tag id
    parts:
      square_table_top:
        tag_size: 0.0195
        tags: {"4": {translation: [0, 0, -0.08125], rotation: 3x3}, ...}  # T_part_tag
    fixed:                     # parts with no tags and a known pose in the base-tag frame
      obstacle_front: {translation: [0, 0.38, -0.015]}
    order: [square_table_top, ..., obstacle_front]   # PoseArray order = the policy's part slices

Tag frames use the AprilTag convention (x right and y down in the tag image, z into the tag,
origin at the centre), the convention of FurnitureBench's rel_pose_from_center tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _field
from pathlib import Path
from typing import Literal

import numpy as np

from dppo_robot.calibration.schema import SCHEMA_VERSION, Transform
from dppo_robot.typed_config import load_yaml


@dataclass
class TagGroup:
    """A rigid set of tags of one size: T_group_tag for each tag id."""

    tag_size: float
    tags: dict[str, Transform]

    def validate(self) -> None:
        if self.tag_size <= 0:
            raise ValueError(f"tag_size must be > 0, got {self.tag_size}")
        if not self.tags:
            raise ValueError("a tag group needs at least one tag")
        for key in self.tags:
            if not key.isdigit():
                raise ValueError(f"tag id '{key}' is not a non-negative integer")

    def poses(self) -> dict[int, np.ndarray]:
        """tag id -> T_group_tag [4, 4]."""
        return {int(k): v.matrix() for k, v in self.tags.items()}


@dataclass
class TagLayout:
    schema_version: int
    base: TagGroup
    parts: dict[str, TagGroup] = _field(default_factory=dict)
    fixed: dict[str, Transform] = _field(default_factory=dict)
    order: list[str] = _field(default_factory=list)
    family: Literal["tag36h11"] = "tag36h11"

    def validate(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {self.schema_version} is not supported (this code reads {SCHEMA_VERSION})"
            )
        owner: dict[str, str] = {k: "base" for k in self.base.tags}
        for name, group in self.parts.items():
            for k in group.tags:
                if k in owner:
                    raise ValueError(f"tag id {k} is used by both '{owner[k]}' and '{name}'")
                owner[k] = name
        both = set(self.parts) & set(self.fixed)
        if both:
            raise ValueError(f"parts {sorted(both)} are listed both under parts and fixed")
        if len(set(self.order)) != len(self.order):
            raise ValueError(f"order repeats a part: {self.order}")
        for name in self.order:
            if name not in self.parts and name not in self.fixed:
                raise ValueError(f"order names '{name}', which is neither a part nor fixed")

    def published(self) -> list[str]:
        """Part names in PoseArray order (order, or every part then every fixed entry)."""
        return list(self.order) if self.order else [*self.parts, *self.fixed]

    def tag_owner(self) -> dict[int, str]:
        """tag id -> "base" or the part name."""
        out = {int(k): "base" for k in self.base.tags}
        for name, group in self.parts.items():
            out.update({int(k): name for k in group.tags})
        return out


def load_layout(path: str | Path) -> TagLayout:
    """Load and validate a tag layout YAML (ConfigError naming the file and field)."""
    return load_yaml(TagLayout, path)
