"""The one_leg scene in robosuite 1.5.1 / MuJoCo: Panda on a table, square tabletop, 4 legs, fixture.

A robosuite ManipulationEnv subclass (robosuite's Panda, its default gripper and its OSC
controller) whose objects are plain MJCF written here (boxes and cylinders with
FurnitureBench's dimensions, see geometry.py):

* tabletop (free body): a 0.1625 m square, 3.125 cm thick: a 1 cm plate, a 1 cm rim round the
  edge (the part FurnitureBench grasps: grip width 1 cm) and four 3 cm corner bosses, each with
  a square hole (2.5 mm clearance round the leg's stud). Lies upside down, as in FurnitureBench.
* 4 legs (free bodies): 0.03 x 0.03 x 0.0625 m with an 8 mm stud 16 mm long at one end, lying
  on the table. All four are real bodies (their poses are observed); leg4 is the one assembled.
* fixture (mocap body): the front wall and two side walls (3 cm tall) the tabletop is pushed into.
* base tag: four visual 4.8 cm squares around the base_tag origin on the table (no collision).
* cameras: robosuite's "robot0_eye_in_hand" (wrist) and "front" (FurnitureSim's front camera pose).

The thread (leg4's hole only), a documented simplification: a "nut" body inside the hole, child
of the tabletop, turns on a hinge along the hole axis (limits at the thread's first crest and at
home; friction). Until engaged, the stud rests on a thin "crest" geom 4 mm down the hole.
Engagement (OneLegScene.engage_thread) happens when the stud is in the hole: it switches the
crest's collisions off and welds leg4 to the nut, the leg's axis on the hole's. The weld's target
height along the axis is slaved to the hinge angle every physics step (pitch 6 mm per turn), so
turning the leg clockwise (seen from above) screws it down 11.5 mm to home in ~1.9 turns, turning
it back unscrews it up to the first crest, and pushing on it does not move it (a self-locking
thread, with no friction torque that grows with the load). MuJoCo has no helical joint; a slide
and a hinge coupled by a joint equality were tried first and yield millimetres under gripper
forces (soft constraints on the nut's small inertia).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections import OrderedDict

import numpy as np

from dppo_robot.envs.one_leg import geometry as G

try:  # robosuite is optional until a one_leg env is built (this module imports it at the top)
    from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
    from robosuite.models.arenas import TableArena
    from robosuite.models.tasks import ManipulationTask
except ImportError as e:  # pragma: no cover
    raise ImportError("the one_leg task needs robosuite 1.5.1 (pip install dppo-robot[sim])") from e

ROBOT_BASE_XY = (-0.56, 0.0)  # robosuite's default Panda-on-table placement
TABLE_FULL_SIZE = (0.8, 0.8, 0.05)
TABLE_FRICTION = (0.5, 0.005, 0.0001)
PART_FRICTION = "0.5 0.005 0.0001"
NUT = "leg4_nut"
CREST = "leg4_crest"
WELD = "leg4_thread_weld"
WRIST_CAMERA = "robot0_eye_in_hand"
# Stiff thread constraints (the weld and the hinge limits; time constant 2 physics steps): MuJoCo's
# default (0.02 s) lets the 40 g leg sag millimetres along the thread under the gripper's forces.
THREAD_SOLREF = "0.004 1"
THREAD_SOLIMP = "0.99 0.999 0.001"
NUT_FRICTION = 0.01  # N m: the leg turns freely in the fingers' grip, but not by itself
FRONT_CAMERA = "front"


def _f(*v: float) -> str:
    return " ".join(f"{x:.6g}" for x in v)


def _box(parent: ET.Element, name: str, pos, size, rgba: str = "0.92 0.92 0.9 1", **kw: str) -> None:
    ET.SubElement(
        parent, "geom", name=name, type="box", pos=_f(*pos), size=_f(*size), rgba=rgba, friction=PART_FRICTION,
        group="1", **kw,
    )  # fmt: skip


def _tabletop_xml() -> ET.Element:
    """Tabletop body in FurnitureBench's tabletop frame (local y = thickness axis)."""
    hw, ht, plate, rim = G.TABLETOP_HALF_WIDTH, G.TABLETOP_HALF_THICKNESS, G.TABLETOP_PLATE, G.RIM_WIDTH
    body = ET.Element("body", name="square_table_top")
    ET.SubElement(body, "freejoint", name="square_table_top_joint")
    ET.SubElement(body, "inertial", pos="0 0 0", mass=str(G.TABLETOP_MASS), diaginertia=_f(1.1e-3, 2.2e-3, 1.1e-3))
    plate_top = -ht + plate
    _box(body, "top_plate", (0, -ht + plate / 2, 0), (hw, plate / 2, hw))
    wall_h = (ht - plate_top) / 2  # rim and bosses rise from the plate to the top surface
    wall_y = plate_top + wall_h
    for i, s in enumerate((-1, 1)):
        _box(body, f"top_rim_z{i}", (0, wall_y, s * (hw - rim / 2)), (hw, wall_h, rim / 2))
        _box(body, f"top_rim_x{i}", (s * (hw - rim / 2), wall_y, 0), (rim / 2, wall_h, hw - rim))
    h, b = G.HOLE_HALF_WIDTH, G.LEG_HALF_WIDTH  # hole and boss half widths
    side = (b - h) / 2
    for k, (sx, sz) in enumerate(((1, 1), (-1, 1), (1, -1), (-1, -1)), start=1):
        cx, cz = sx * G.HOLE_OFFSET, sz * G.HOLE_OFFSET
        leg = k  # FurnitureBench's default_assembled_pose of leg k
        _box(body, f"boss{leg}_a", (cx - h - side, wall_y, cz), (side, wall_h, b))
        _box(body, f"boss{leg}_b", (cx + h + side, wall_y, cz), (side, wall_h, b))
        _box(body, f"boss{leg}_c", (cx, wall_y, cz - h - side), (h, wall_h, side))
        _box(body, f"boss{leg}_d", (cx, wall_y, cz + h + side), (h, wall_h, side))
    # leg4's hole is at (-0.05625, -0.05625) (its default_assembled_pose); the crest and the nut sit there
    cx, cz = -G.HOLE_OFFSET, -G.HOLE_OFFSET
    _box(body, CREST, (cx, ht - G.CREST_DEPTH - 0.001, cz), (h, 0.001, h), rgba="0.7 0.7 0.7 1")
    # nut frame: origin on the boss top on the hole axis, z along the tabletop's y (Rx(-90 deg))
    nut = ET.SubElement(body, "body", name=NUT, pos=_f(cx, ht, cz), quat=_f(math.sqrt(0.5), -math.sqrt(0.5), 0, 0))
    ET.SubElement(nut, "inertial", pos="0 0 0", mass="0.005", diaginertia="1e-6 1e-6 1e-6")
    turns = G.THREAD_TRAVEL / G.THREAD_PITCH
    ET.SubElement(nut, "joint", name=f"{NUT}_hinge", type="hinge", axis="0 0 1", limited="true",
                  range=_f(-2 * math.pi * turns, 0), frictionloss=str(NUT_FRICTION), armature="1e-3", damping="0.001",
                  solreflimit=THREAD_SOLREF, solimplimit=THREAD_SOLIMP)  # fmt: skip
    return body


def _leg_xml(i: int) -> ET.Element:
    """Leg i in FurnitureBench's leg frame (local y = long axis, stud at -y)."""
    body = ET.Element("body", name=f"square_table_leg{i}")
    ET.SubElement(body, "freejoint", name=f"square_table_leg{i}_joint")
    w, L = G.LEG_HALF_WIDTH, G.LEG_HALF_LENGTH
    i_axis = G.LEG_MASS * (4 * w * w) / 6
    i_long = G.LEG_MASS * ((2 * w) ** 2 + (2 * L) ** 2) / 12
    ET.SubElement(body, "inertial", pos="0 0 0", mass=str(G.LEG_MASS), diaginertia=_f(i_long, i_axis, i_long))
    rgba = "0.95 0.95 0.93 1" if i != G.LEG_INDEX else "0.85 0.9 1 1"
    _box(body, f"leg{i}_body", (0, 0, 0), (w, L, w), rgba=rgba)
    ET.SubElement(
        body,
        "geom",
        name=f"leg{i}_stud",
        type="cylinder",
        fromto=_f(0, -L, 0, 0, -L - G.PEG_LENGTH, 0),
        size=_f(G.PEG_RADIUS),
        rgba="0.6 0.6 0.6 1",
        friction=PART_FRICTION,
        group="1",
    )
    ET.SubElement(body, "site", name=f"leg{i}_stud_tip", pos=_f(0, -L - G.PEG_LENGTH, 0), size="0.002", rgba="1 0 0 0")
    return body


def _fixture_xml(world_pos: np.ndarray) -> ET.Element:
    """The three walls on one mocap body whose frame is FurnitureSim's obstacle_front frame (Rz(90 deg))."""
    body = ET.Element(
        "body", name=G.OBSTACLE_NAME, mocap="true", pos=_f(*world_pos), quat=_f(math.sqrt(0.5), 0, 0, math.sqrt(0.5))
    )
    hz = G.OBSTACLE_HALF_HEIGHT
    rgba = "0.25 0.25 0.28 1"
    # body x = world y = tag x; body y = -world x = -tag y
    _box(body, "obstacle_front_wall", (0, 0, 0), (G.OBSTACLE_FRONT_HALF[0], G.OBSTACLE_FRONT_HALF[1], hz), rgba=rgba)
    sx, sy = G.OBSTACLE_SIDE_OFFSET
    for name, s in (("obstacle_right_wall", -1), ("obstacle_left_wall", 1)):
        _box(body, name, (s * sx, -sy, 0), (G.OBSTACLE_SIDE_HALF[0], G.OBSTACLE_SIDE_HALF[1], hz), rgba=rgba)
    return body


def _look_at_xyaxes(pos: np.ndarray, target: np.ndarray) -> str:
    f = (target - pos) / np.linalg.norm(target - pos)
    x = np.cross(f, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(x, f)
    return _f(*x, *y)


class OneLegScene(ManipulationEnv):
    """robosuite env of the one_leg scene. Reset draws a start from `self.start_rng` at `self.level`.

    The gym wrapper (dppo_robot.envs.one_leg.env.OneLegEnv) owns observations, phases and rewards;
    robosuite's own observables are not used (none are registered).
    """

    def __init__(self, level: G.Randomness, control_freq: float, has_offscreen_renderer: bool, **kwargs) -> None:
        self.level = level
        self.start_rng = np.random.default_rng(0)
        self.start: G.StartState | None = None
        self.thread_engaged = False
        base_z = 0.912  # robosuite's Panda base height on its default mount (checked in _setup_references)
        self.table_z = base_z - G.ROBOT_HEIGHT
        self.robot_base = np.array([ROBOT_BASE_XY[0], ROBOT_BASE_XY[1], base_z])
        from dppo_robot.envs.one_leg.controller import controller_config

        super().__init__(
            robots="Panda",
            controller_configs=controller_config(),
            initialization_noise={"magnitude": 0.0, "type": "uniform"},
            use_camera_obs=False,
            has_renderer=False,
            has_offscreen_renderer=has_offscreen_renderer,
            render_camera=None,
            control_freq=control_freq,
            lite_physics=True,
            horizon=10**9,
            ignore_done=True,
            hard_reset=False,
            camera_names=FRONT_CAMERA,
            **kwargs,
        )

    # -- frames --------------------------------------------------------------------------
    @property
    def tag_origin_world(self) -> np.ndarray:
        return self.robot_base + G.TAG_IN_BASE

    def tag_to_world(self, pos_tag) -> np.ndarray:
        return self.robot_base + G.tag_to_base(pos_tag)

    # -- model -----------------------------------------------------------------------------
    def _load_model(self) -> None:
        super()._load_model()
        self.robots[0].robot_model.set_base_xpos((ROBOT_BASE_XY[0], ROBOT_BASE_XY[1], 0))
        arena = TableArena(
            table_full_size=TABLE_FULL_SIZE,
            table_friction=TABLE_FRICTION,
            table_offset=(0.0, 0.0, self.table_z),
        )
        arena.set_origin([0, 0, 0])
        self.model = ManipulationTask(mujoco_arena=arena, mujoco_robots=[r.robot_model for r in self.robots])
        wb = self.model.worldbody
        # the parts start at their nominal reset poses; reset moves them
        top = _tabletop_xml()
        wb.append(top)
        for i in range(1, 5):
            wb.append(_leg_xml(i))
        for name, body in zip(G.PART_NAMES, [top, *wb[-4:]]):
            body.set("pos", _f(*self.tag_to_world(G.RESET_POS_TAG[name])))
        wb.append(_fixture_xml(self.tag_to_world(G.OBSTACLE_FRONT_TAG)))
        tag = self.tag_origin_world
        for k, (dx, dy) in enumerate(((-0.03, -0.03), (0.03, -0.03), (-0.03, 0.03), (0.03, 0.03))):
            p = tag + G.R_BASE_TAG @ np.array([dx, dy, 0.0]) + np.array([0, 0, 0.0005])
            ET.SubElement(
                wb, "geom", name=f"base_tag{k}", type="box", pos=_f(*p), size="0.024 0.024 0.0005",
                rgba="0.05 0.05 0.05 1", contype="0", conaffinity="0", group="1",
            )  # fmt: skip
        cam_pos = tag + np.array([0.8985, 0.0, 0.235])
        cam_target = tag + np.array([-1.0015, 0.0, -0.115])
        ET.SubElement(
            wb,
            "camera",
            name=FRONT_CAMERA,
            mode="fixed",
            pos=_f(*cam_pos),
            xyaxes=_look_at_xyaxes(cam_pos, cam_target),
            fovy="40",
        )
        ET.SubElement(self.model.equality, "weld", name=WELD, body1=NUT, body2=f"square_table_leg{G.LEG_INDEX}",
                      active="false", solref=THREAD_SOLREF, solimp=THREAD_SOLIMP)  # fmt: skip

    def _setup_references(self) -> None:
        super()._setup_references()
        m = self.sim.model
        self.part_body_ids = [m.body_name2id(n) for n in G.PART_NAMES]
        self.obstacle_body_id = m.body_name2id(G.OBSTACLE_NAME)
        self.obstacle_mocap_id = int(m.body_mocapid[self.obstacle_body_id])
        self.part_qpos_adr = [int(m.jnt_qposadr[m.joint_name2id(f"{n}_joint")]) for n in G.PART_NAMES]
        self.part_qvel_adr = [int(m.jnt_dofadr[m.joint_name2id(f"{n}_joint")]) for n in G.PART_NAMES]
        self.nut_body_id = m.body_name2id(NUT)
        self.nut_hinge_adr = int(m.jnt_qposadr[m.joint_name2id(f"{NUT}_hinge")])
        self.nut_dof_adr = int(m.jnt_dofadr[m.joint_name2id(f"{NUT}_hinge")])
        self.crest_geom_id = m.geom_name2id(CREST)
        self.weld_id = self._eq_id(WELD)
        self.stud_tip_site_id = m.site_name2id(f"leg{G.LEG_INDEX}_stud_tip")
        self.part_geoms = {
            n: [m.geom_id2name(g) for g in range(m.ngeom) if m.geom_bodyid[g] == bid]
            for n, bid in zip(G.PART_NAMES, self.part_body_ids)
        }
        self.robot_base_body_id = m.body_name2id(self.robots[0].robot_model.root_body)

    def check_robot_base(self) -> None:
        """The robot base must sit where the frames assume (call after a reset)."""
        base = self.sim.data.body_xpos[self.robot_base_body_id]
        if not np.allclose(base, self.robot_base, atol=1e-6):
            raise RuntimeError(f"robot base at {base}, expected {self.robot_base} (robosuite's Panda mount changed?)")

    def _eq_id(self, name: str) -> int:
        import mujoco

        return int(mujoco.mj_name2id(self.sim.model._model, mujoco.mjtObj.mjOBJ_EQUALITY, name))

    def _setup_observables(self) -> OrderedDict:
        return OrderedDict()  # observations are computed by the gym wrapper from the sim state

    # -- reset -----------------------------------------------------------------------------
    def _reset_internal(self) -> None:
        start = G.sample_start(self.start_rng, self.level)
        self.start = start
        self.robots[0].init_qpos = np.array(start.joints)
        super()._reset_internal()
        m, d = self.sim.model, self.sim.data
        for name, adr, vadr in zip(G.PART_NAMES, self.part_qpos_adr, self.part_qvel_adr):
            p = self.tag_to_world(start.part_pos[name])
            R = G.R_BASE_TAG @ start.part_rot[name]
            x, y, z, w = G.mat_to_quat_xyzw(R)
            d.qpos[adr : adr + 7] = [*p, w, x, y, z]
            d.qvel[vadr : vadr + 6] = 0.0
        d.mocap_pos[self.obstacle_mocap_id] = self.tag_to_world(start.obstacle_pos)
        d.qpos[self.nut_hinge_adr] = 0.0
        m.geom_contype[self.crest_geom_id] = 1
        m.geom_conaffinity[self.crest_geom_id] = 1
        d.eq_active[self.weld_id] = 0
        self.thread_engaged = False
        self.sim.forward()

    # -- the thread ------------------------------------------------------------------------
    def engage_thread(self, depth: float) -> None:
        """Weld leg4 to the nut, its axis on the hole's, where the thread catches for stud depth `depth`.

        The thread has 4 starts (the square leg's symmetry) phased so that the leg ends square to
        the tabletop when screwed home; it catches at the start nearest the stud's depth (at most a
        quarter pitch, 1.5 mm, away), so engaging moves the leg by at most 0.75 mm and never turns it.
        """
        m, d = self.sim.model, self.sim.data
        k = G.THREAD_PITCH / (2 * math.pi)
        h_min = -G.THREAD_TRAVEL / k
        h_depth = -float(np.clip(depth - G.CREST_DEPTH, 0.0, G.THREAD_TRAVEL)) / k
        leg_id = self.part_body_ids[G.LEG_INDEX]
        top_R = d.body_xmat[self.part_body_ids[0]].reshape(3, 3)
        R_leg = d.body_xmat[leg_id].reshape(3, 3)
        # smallest rotation taking the leg's axis (local y) onto the hole axis (tabletop y), keeping its turn
        a, b = R_leg[:, 1], top_R[:, 1]
        v, c = np.cross(a, b), float(np.dot(a, b))
        vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
        R_aligned = (np.eye(3) + vx + vx @ vx / (1.0 + c)) @ R_leg
        rel = top_R.T @ R_aligned  # = Ry(psi)
        psi = math.atan2(rel[0, 2], rel[0, 0])
        base = psi + h_min
        h0 = base + round((h_depth - base) / (math.pi / 2)) * (math.pi / 2)
        while h0 > 0.0:
            h0 -= math.pi / 2
        while h0 < h_min:
            h0 += math.pi / 2
        d.qpos[self.nut_hinge_adr] = h0
        d.qvel[self.nut_dof_adr] = 0.0
        self.sim.forward()
        R_nut = d.body_xmat[self.nut_body_id].reshape(3, 3)
        x, y, z, w = G.mat_to_quat_xyzw(R_nut.T @ R_aligned)
        eq = m.eq_data[self.weld_id]
        eq[0:3] = 0.0  # anchor at the leg's origin
        eq[3:6] = [0.0, 0.0, self._leg_height(h0)]  # leg in the nut frame
        eq[6:10] = [w, x, y, z]
        eq[10] = 1.0  # torquescale
        m.geom_contype[self.crest_geom_id] = 0
        m.geom_conaffinity[self.crest_geom_id] = 0
        d.eq_active[self.weld_id] = 1
        self.thread_engaged = True

    @staticmethod
    def _leg_height(hinge: float) -> float:
        """Leg centre above the boss top along the hole axis at hinge angle `hinge` (<= 0: screwed in)."""
        return G.LEG_HALF_LENGTH + G.HOME_GAP + G.THREAD_TRAVEL + G.THREAD_PITCH / (2 * math.pi) * hinge

    @property
    def thread_depth(self) -> float:
        """How far the leg has been screwed in from the first crest (m; THREAD_TRAVEL = home)."""
        return -G.THREAD_PITCH / (2 * math.pi) * float(self.sim.data.qpos[self.nut_hinge_adr])

    def _pre_action(self, action, policy_step=False) -> None:
        super()._pre_action(action, policy_step)
        if self.thread_engaged:  # the weld's height follows the thread
            self.sim.model.eq_data[self.weld_id][5] = self._leg_height(float(self.sim.data.qpos[self.nut_hinge_adr]))

    # -- robosuite hooks (the gym wrapper computes rewards and success) ---------------------
    def reward(self, action=None) -> float:
        return 0.0

    def _check_success(self) -> bool:
        return False
