"""one_leg phase predicates, computed from the simulator state every env step.

    1 tabletop_grasped   both finger pads touch the tabletop
    2 tabletop_in_corner tabletop within 1.5 cm (x and y) of flush against the fixture's front
                         and left walls, and within 15 deg of square to them (FurnitureBench's
                         reset-pose tolerance: reset_pos_diff_threshold 1.5 cm, ori bound 0.96)
    3 leg_lifted         both finger pads touch leg4 and its centre is > 2 cm above its start
                         height (FurnitureSim's lift check)
    4 leg_inserted       leg4's stud is in its hole: the tip at least 2 mm below the boss top,
                         within 3.5 mm of the hole axis, the leg's axis within 12 deg of the hole's
                         (this engages the thread; it stays true once engaged)
    5 leg_screwed        FurnitureBench's assembled check of (tabletop, leg4): relative position
                         within [0.010, 0.005, 0.010] m of the assembled pose, each rotation column
                         within cosine 0.94 of one of the 4 assembled orientations (= success)

The phase an episode has reached is the highest k whose predicates fired in order: predicate k
counts once phase k - 1 has been reached (several may fire in one step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dppo_robot.envs.one_leg import geometry as G

PHASE_NAMES = ("start", "tabletop_grasped", "tabletop_in_corner", "leg_lifted", "leg_inserted", "leg_screwed")
N_PHASES = len(PHASE_NAMES) - 1
CORNER_POS_TOL = 0.015
CORNER_YAW_TOL_DEG = 15.0
LIFT_HEIGHT = 0.02
INSERT_MIN_DEPTH = 0.002
INSERT_MAX_LATERAL = 0.0035
INSERT_MAX_TILT_DEG = 12.0
_HOLE_LOCAL = np.array([-G.HOLE_OFFSET, G.TABLETOP_HALF_THICKNESS, -G.HOLE_OFFSET])  # leg4's hole mouth, tabletop frame


@dataclass
class Snapshot:
    """What the predicates read: poses (world frame unless named), contacts, thread state."""

    top_pos: np.ndarray
    top_rot: np.ndarray
    leg_pos: np.ndarray
    leg_rot: np.ndarray
    leg_start_z: float
    stud_tip: np.ndarray
    obstacle_tag: np.ndarray  # fixture (front wall) position in the base_tag frame
    top_pos_tag: np.ndarray
    top_rot_tag: np.ndarray
    grasp_top: bool
    grasp_leg: bool
    thread_engaged: bool
    stud_inside: bool | None = None  # stud_in_hole(...)[0] when already computed this step


def hole_frame(top_pos: np.ndarray, top_R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World position of leg4's hole mouth (centre of the boss top) and the hole axis (out of the hole)."""
    local = _HOLE_LOCAL
    return np.asarray(top_pos) + np.asarray(top_R) @ local, np.asarray(top_R)[:, 1]


def stud_in_hole(s: Snapshot) -> tuple[bool, float]:
    """(stud inside the hole within tolerance, stud tip depth below the hole mouth)."""
    mouth, axis = hole_frame(s.top_pos, s.top_rot)
    rel = s.stud_tip - mouth
    depth = -float(rel @ axis)
    lateral = float(np.linalg.norm(rel + depth * axis))
    tilt = math.degrees(math.acos(min(max(float(s.leg_rot[:, 1] @ axis), -1.0), 1.0)))
    ok = depth >= INSERT_MIN_DEPTH and lateral <= INSERT_MAX_LATERAL and tilt <= INSERT_MAX_TILT_DEG
    return ok, depth


def tabletop_in_corner(s: Snapshot) -> bool:
    corner = G.corner_pose_tag(s.obstacle_tag[:2])
    if np.any(np.abs(s.top_pos_tag[:2] - corner) > CORNER_POS_TOL):
        return False
    yaw = G.yaw_about_tag_z(s.top_rot_tag, G.RESET_ORI_TAG["square_table_top"])
    return abs(G.wrap(yaw, math.pi / 2)) <= math.radians(CORNER_YAW_TOL_DEG)


def leg_screwed(s: Snapshot) -> bool:
    rel_pos, rel_R = G.leg_in_tabletop(s.top_pos, s.top_rot, s.leg_pos, s.leg_rot)
    return G.is_assembled(rel_pos, rel_R)


def predicates(s: Snapshot) -> list[bool]:
    """Truth of predicates 1..5 now (index 0 = phase 1)."""
    now = (
        s.grasp_top,
        tabletop_in_corner(s),
        s.grasp_leg and s.leg_pos[2] - s.leg_start_z > LIFT_HEIGHT,
        s.thread_engaged or (stud_in_hole(s)[0] if s.stud_inside is None else s.stud_inside),
        leg_screwed(s),
    )
    return [bool(v) for v in now]


def advance(phase: int, now: list[bool]) -> int:
    """Highest phase reached in order, given the phase so far and the predicates now."""
    while phase < N_PHASES and now[phase]:
        phase += 1
    return phase
