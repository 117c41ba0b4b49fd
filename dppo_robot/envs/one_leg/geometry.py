"""FurnitureBench one_leg facts (dimensions, frames, reset poses, randomness) and frame maths.

numpy only (no MuJoCo): the env, the scripted expert and the tests share these numbers.

Sources (clvrai/furniture-bench): furniture_bench/config.py (robot/tag frames, reset poses,
assembled poses and thresholds), furniture/parts/*.py (part extents, obstacle placement),
envs/furniture_sim_env.py (obstacle poses in FurnitureSim, randomness); the low/med obstacle
offsets and joint noise are those of the DPPO reference's FurnitureSim (robust-rearrangement
fork). Values marked GUESS are not published and were chosen to make a printable, graspable
part with the published outer dimensions.

Frames
------
world     MuJoCo world: z up, the robot faces +x.
base      the robot base (panda link0). Axes = world axes (the base is not rotated).
base_tag  the AprilTag base frame, fixed on the table: origin on the table surface at
          base + (0.3015, 0, -0.015) (FurnitureBench `tag_base_from_robot_base`, the robot sits
          on a 1.5 cm clamp); x_tag = +y_base, y_tag = +x_base (away from the robot),
          z_tag = -z_base (into the table). Part poses are observed in this frame.
Part frames are FurnitureBench's mesh frames: the tabletop's local y is its thickness axis
(up when it lies upside down, as at reset) and a leg's local y is its long axis with the screw
at -y; so part quaternions and the assembled relative pose match FurnitureBench's.
Quaternions are xyzw with w >= 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------- robot and tag frame
ROBOT_HEIGHT = 0.015  # robot base above the table surface (FurnitureBench bench clamp)
TAG_IN_BASE = np.array([0.23 + 0.0715, 0.0, -ROBOT_HEIGHT])  # base_tag origin in the base frame
# Columns: base_tag axes expressed in the base (= world) frame: rot_mat((pi, 0, pi/2)).
R_BASE_TAG = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
# FurnitureBench's Franka reset joint angles (config["robot"]["reset_joints"]).
RESET_JOINTS = np.array([-0.02630888, 0.3758795, 0.12485036, -2.1383357, -0.09431414, 2.49649072, 0.01921718])
# End-effector position limits in the base frame (config["robot"]["position_limits"]); targets are clipped.
EE_POS_LIMITS = np.array([[0.3, 0.8], [-0.55, 0.55], [0.005, 0.4]])
MAX_GRIPPER_WIDTH = 0.065  # config["robot"]["max_gripper_width"]["one_leg"] (robosuite's Panda opens to 0.08)
CONTROL_HZ = 10.0

# ----------------------------------------------------------------------------- parts (metres)
TABLETOP_HALF_WIDTH = 0.08125  # SquareTableTop.half_width (0.1625 square)
TABLETOP_HALF_THICKNESS = 0.015625  # reset z of the tabletop centre above the table
TABLETOP_PLATE = 0.010  # GUESS: plate thickness; the rest of the thickness is a rim and leg bosses
RIM_WIDTH = 0.010  # GUESS: matches FurnitureBench's tabletop grasp width (TableTop.body_grip_width 0.01)
LEG_HALF_WIDTH = 0.015  # SquareTableLeg.half_width (square 0.03 section)
LEG_HALF_LENGTH = 0.03125  # leg body from the mesh (0.0625 long), consistent with the assembled pose
HOLE_OFFSET = 0.05625  # leg axes at (+-0.05625, +-0.05625) from the tabletop centre (default_assembled_pose)
PEG_RADIUS = 0.004  # GUESS: the leg's screw (an M8-like stud)
PEG_LENGTH = 0.016  # GUESS
HOLE_HALF_WIDTH = 0.0065  # GUESS: 2.5 mm radial clearance around the stud (MuJoCo has no threads)
CREST_DEPTH = 0.004  # GUESS: the stud rests on the first thread crest 4 mm into the hole
HOME_GAP = 0.0005  # leg shoulder stops 0.5 mm above the boss when screwed home
THREAD_TRAVEL = PEG_LENGTH - CREST_DEPTH - HOME_GAP  # 11.5 mm from first engagement to home
THREAD_PITCH = 0.006  # GUESS: m per turn (coarse printed thread): ~1.9 turns from engagement to home
TABLETOP_MASS = 0.25  # GUESS (3D printed PLA)
LEG_MASS = 0.04  # GUESS

# Assembled pose of leg4 in the tabletop frame (config square_table_leg4 default_assembled_pose).
LEG4_ASSEMBLED_POS = np.array([-HOLE_OFFSET, TABLETOP_HALF_THICKNESS + LEG_HALF_LENGTH, -HOLE_OFFSET])
ASSEMBLED_POS_THRESHOLD = np.array([0.010, 0.005, 0.010])  # config["furniture"]["assembled_pos_threshold"]
ASSEMBLED_ORI_BOUND = 0.94  # Furniture.ori_bound: cosine similarity of each rotation-matrix column

# Corner fixture (FurnitureSim: obstacle_front at base_tag y + 0.38, side obstacles 7.5 cm closer and
# 17.5 cm to each side; 3 cm tall). Extents from ObstacleFront / ObstacleRight (0.35 x 0.02, 0.02 x 0.17).
OBSTACLE_FRONT_TAG = np.array([0.0, 0.37 + 0.01, -0.015])
OBSTACLE_SIDE_OFFSET = np.array([0.175, -0.075])  # (+-x, y) of the side obstacles from the front one (tag)
OBSTACLE_FRONT_HALF = np.array([0.175, 0.01])  # tag x, tag y half extents
OBSTACLE_SIDE_HALF = np.array([0.01, 0.085])
OBSTACLE_HALF_HEIGHT = 0.015

PART_NAMES = (
    "square_table_top",
    "square_table_leg1",
    "square_table_leg2",
    "square_table_leg3",
    "square_table_leg4",
)
OBSTACLE_NAME = "obstacle_front"
LEG_INDEX = 4  # square_table_leg4 is the one assembled in one_leg (OneLeg.should_be_assembled [(0, 4)])


def rot_mat(angles) -> np.ndarray:
    """FurnitureBench's rot_mat: Rz @ Ry @ Rx of (x, y, z) angles."""
    x, y, z = angles
    cx, sx, cy, sy, cz, sz = math.cos(x), math.sin(x), math.cos(y), math.sin(y), math.cos(z), math.sin(z)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


# Reset poses in the base_tag frame (config["furniture"]["square_table"], skill 0).
RESET_POS_TAG = {
    "square_table_top": np.array([0.0, 0.24, -0.015625]),
    "square_table_leg1": np.array([-0.20, 0.07, -0.015]),
    "square_table_leg2": np.array([-0.12, 0.07, -0.015]),
    "square_table_leg3": np.array([0.12, 0.07, -0.015]),
    "square_table_leg4": np.array([0.20, 0.07, -0.015]),
}
RESET_ORI_TAG = {
    "square_table_top": rot_mat((-math.pi / 2, 0.0, math.pi)),
    **{f"square_table_leg{i}": rot_mat((0.0, -math.pi / 2, 0.0)) for i in range(1, 5)},
}
# Rectangles used by FurnitureBench's reset collision check (reset_x_len, reset_y_len), in the tag frame.
RESET_EXTENTS = {
    "square_table_top": (0.1625, 0.1625),
    **{f"square_table_leg{i}": (0.03 + 0.02, 0.0875) for i in range(1, 5)},
}
PARTS_POS_LIMITS_TAG = np.array([[-0.21, 0.21], [0.07, 0.37]])  # config["furniture"]["position_limits"]
COLLISION_MARGIN = 0.01  # Part.collision_margin


@dataclass(frozen=True)
class Randomness:
    """One start-state randomness level (FurnitureBench / the DPPO reference's FurnitureSim)."""

    name: str
    part_pos: float  # uniform +- (m) on each part's x, y (tag frame)
    part_yaw_deg: float  # uniform +- about the vertical
    obstacle_offset: float  # uniform +- (m) on the fixture's x, y
    joint_noise_deg: float  # uniform +- on each arm joint


RANDOMNESS = {
    # low: Furniture.randomize_init_pose(pos_range=[-0.015, 0.015], rot_range=15) in FurnitureSim;
    # max_obstacle_offset 0.02 and franka_joint_rand_lim_deg 5 in the reference's fork.
    "low": Randomness("low", 0.015, 15.0, 0.02, 5.0),
    # med: randomize_init_pose defaults (pos_range [-0.05, 0.05], rot_range 45); 0.04 m, 10 deg.
    "med": Randomness("med", 0.05, 45.0, 0.04, 10.0),
}


# ----------------------------------------------------------------------------- frame maths
def tag_to_base(pos_tag: np.ndarray) -> np.ndarray:
    return TAG_IN_BASE + R_BASE_TAG @ np.asarray(pos_tag, float)


def base_to_tag(pos_base: np.ndarray) -> np.ndarray:
    return R_BASE_TAG.T @ (np.asarray(pos_base, float) - TAG_IN_BASE)


def mat_to_quat_xyzw(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (x, y, z, w) with w >= 0."""
    R = np.asarray(R, float)
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def quat_xyzw_to_mat(q: np.ndarray) -> np.ndarray:
    x, y, z, w = np.asarray(q, float) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def yaw_about_tag_z(R_tag: np.ndarray, R_reset_tag: np.ndarray) -> float:
    """Rotation about the tag's z axis that takes the reset orientation to R_tag (rad)."""
    D = np.asarray(R_tag) @ np.asarray(R_reset_tag).T
    return math.atan2(D[1, 0], D[0, 0])


def wrap(angle: float, period: float) -> float:
    """angle folded into (-period / 2, period / 2]."""
    return float(-((-angle + period / 2) % period - period / 2))


# ----------------------------------------------------------------------------- assembly check
def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


# The square leg screws home in any of 4 orientations about its axis (FurnitureBench lists the 4).
LEG4_ASSEMBLED_ROTS = tuple(_ry(k * math.pi / 2) for k in range(4))


def leg_in_tabletop(top_pos, top_R, leg_pos, leg_R) -> tuple[np.ndarray, np.ndarray]:
    """Pose of the leg in the tabletop's frame (any common parent frame)."""
    top_R = np.asarray(top_R)
    return top_R.T @ (np.asarray(leg_pos) - np.asarray(top_pos)), top_R.T @ np.asarray(leg_R)


def is_assembled(rel_pos: np.ndarray, rel_R: np.ndarray) -> bool:
    """FurnitureBench's is_similar_pose against leg4's assembled poses (position per axis, each column's cosine)."""
    if np.any(np.abs(np.asarray(rel_pos) - LEG4_ASSEMBLED_POS) > ASSEMBLED_POS_THRESHOLD):
        return False
    for target in LEG4_ASSEMBLED_ROTS:
        cos = np.sum(target * rel_R, axis=0)  # columns are unit vectors
        if np.all(cos >= ASSEMBLED_ORI_BOUND):
            return True
    return False


# ----------------------------------------------------------------------------- reset sampling
def _rect_aabb(center_xy, yaw: float, extents) -> np.ndarray:
    """Axis-aligned box [xmin, xmax, ymin, ymax] of a yaw-rotated rectangle (FurnitureBench's check)."""
    hx, hy = extents[0] / 2, extents[1] / 2
    c, s = math.cos(yaw), math.sin(yaw)
    corners = np.array([[c * x - s * y, s * x + c * y] for x, y in ((-hx, hy), (hx, hy), (-hx, -hy), (hx, -hy))])
    lo, hi = corners.min(0) + center_xy, corners.max(0) + center_xy
    return np.array([lo[0], hi[0], lo[1], hi[1]])


def _overlap(a: np.ndarray, b: np.ndarray, margin: float) -> bool:
    if a[0] > b[1] + margin or a[1] < b[0] - margin:
        return False
    return not (a[2] > b[3] + margin or a[3] < b[2] - margin)


def obstacle_boxes_tag(front_xy: np.ndarray) -> list[np.ndarray]:
    """[xmin, xmax, ymin, ymax] of the three fixture walls (tag frame) for a front-wall centre."""
    fx, fy = front_xy
    sx, sy = OBSTACLE_SIDE_OFFSET
    out = [np.array([fx - OBSTACLE_FRONT_HALF[0], fx + OBSTACLE_FRONT_HALF[0], fy - 0.01, fy + 0.01])]
    for side in (-1.0, 1.0):
        cx, cy = fx + side * sx, fy + sy
        out.append(np.array([cx - OBSTACLE_SIDE_HALF[0], cx + OBSTACLE_SIDE_HALF[0], cy - 0.085, cy + 0.085]))
    return out


def corner_pose_tag(front_xy: np.ndarray) -> np.ndarray:
    """Tabletop centre (tag x, y) flush against the front wall and the +x side wall (the fixture corner)."""
    fx, fy = front_xy
    side_face = fx + OBSTACLE_SIDE_OFFSET[0] - OBSTACLE_SIDE_HALF[0]
    front_face = fy - OBSTACLE_FRONT_HALF[1]
    return np.array([side_face - TABLETOP_HALF_WIDTH, front_face - TABLETOP_HALF_WIDTH])


@dataclass
class StartState:
    """A sampled start: part poses (tag frame), fixture position (tag frame), arm joints."""

    part_pos: dict[str, np.ndarray]
    part_rot: dict[str, np.ndarray]
    part_yaw: dict[str, float]
    obstacle_pos: np.ndarray
    joints: np.ndarray
    tries: int


def sample_start(
    rng: np.random.Generator, level: Randomness, part_tries: int = 200, restarts: int = 2_000
) -> StartState:
    """FurnitureBench's reset: a fixture offset, arm joint noise, then each part's pose.

    Parts are placed one at a time (tabletop, legs 1-4), each redrawn (up to part_tries) until its
    centre is inside FurnitureBench's part position limits and its rectangle clears the fixture
    and the parts already placed by the collision margin; a dead end starts the parts over.
    FurnitureBench redraws the whole set instead: the accepted set of starts is the same and this
    is far cheaper at "med", where most whole-set draws collide.
    """
    obstacle = OBSTACLE_FRONT_TAG.copy()
    obstacle[:2] += rng.uniform(-level.obstacle_offset, level.obstacle_offset, 2)
    walls = obstacle_boxes_tag(obstacle[:2])
    joints = RESET_JOINTS + rng.uniform(-1.0, 1.0, 7) * math.radians(level.joint_noise_deg)
    lim = PARTS_POS_LIMITS_TAG
    tries = 0
    for _ in range(restarts):
        pos: dict[str, np.ndarray] = {}
        rot: dict[str, np.ndarray] = {}
        yaw: dict[str, float] = {}
        placed: list[np.ndarray] = list(walls)
        for name in PART_NAMES:
            for _ in range(part_tries):
                tries += 1
                p = RESET_POS_TAG[name].copy()
                p[:2] += rng.uniform(-level.part_pos, level.part_pos, 2)
                a = float(rng.uniform(-1.0, 1.0) * math.radians(level.part_yaw_deg))
                if not (lim[0, 0] <= p[0] <= lim[0, 1] and lim[1, 0] <= p[1] <= lim[1, 1]):
                    continue
                box = _rect_aabb(p[:2], a, RESET_EXTENTS[name])
                if any(_overlap(box, other, COLLISION_MARGIN) for other in placed):
                    continue
                pos[name], rot[name], yaw[name] = p, rot_mat((0.0, 0.0, a)) @ RESET_ORI_TAG[name], a
                placed.append(box)
                break
            else:
                break  # dead end: start the parts over
        if len(pos) == len(PART_NAMES):
            return StartState(pos, rot, yaw, obstacle, joints, tries)
    raise RuntimeError(f"no collision-free one_leg start found in {tries} draws ({level.name})")
