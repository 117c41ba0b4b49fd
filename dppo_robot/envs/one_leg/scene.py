"""The one_leg scene in MuJoCo: Panda on a table, square tabletop, 4 legs, fixture, stepped natively.

The MJCF is assembled once from robosuite 1.5.1's model classes (its Panda, mount, default
gripper and table arena: robosuite builds the XML only; no robosuite env, controller or
observable runs) plus plain MJCF written here (boxes and cylinders with FurnitureBench's
dimensions, see geometry.py):

* tabletop (free body): a 0.1625 m square, 3.125 cm thick: a 1 cm plate, a 1 cm rim round the
  edge (the part FurnitureBench grasps: grip width 1 cm) and four 3 cm corner bosses, each with
  a square hole (2.5 mm clearance round the leg's stud). Lies upside down, as in FurnitureBench.
* 4 legs (free bodies): 0.03 x 0.03 x 0.0625 m with an 8 mm stud 16 mm long at one end, lying
  on the table. All four are real bodies (their poses are observed); leg4 is the one assembled.
* fixture (mocap body): the front wall and two side walls (3 cm tall) the tabletop is pushed into.
* base tag: four visual 4.8 cm squares around the base_tag origin on the table (no collision).
* cameras: robosuite's "robot0_eye_in_hand" (wrist) and "front" (FurnitureSim's front camera pose).

The arm is driven by MuJoCo itself (controller.py computes one joint target per control step):
robosuite's torque motors on the 7 arm joints are replaced by joint impedance actuators
(`general`, force = kp (target - q) - kv qdot, clipped to robosuite's torque limits, see
controller.ARM_KP / ARM_KV), and the arm and gripper bodies are gravity compensated by MuJoCo
(body gravcomp, routed through the arm actuators with joint actuatorgravcomp, so it counts
against their torque limits). The integrator stays robosuite's (Euler; kv dt / inertia = 2
ARM_OMEGA dt = 0.08, well inside explicit stability). The fingers keep robosuite's position
actuators. A control step is one `mj_step(m, d, nstep=50)` (2 ms physics, 10 Hz control), or
THREAD_BLOCKS calls while the thread is engaged (below), then the position and velocity
stages of mj_forward (OneLegScene.observe) so the observation matches the state.

The thread (leg4's hole only), a documented simplification: a "nut" body inside the hole, child
of the tabletop, turns on a hinge along the hole axis (limits at the thread's first crest and at
home; friction). Until engaged, the stud rests on a thin "crest" geom 4 mm down the hole.
Engagement (OneLegScene.engage_thread) happens when the stud is in the hole: it switches the
crest's collisions off and welds leg4 to the nut, the leg's axis on the hole's. The weld's target
height along the axis is slaved to the hinge angle (pitch 6 mm per turn) between blocks of
physics steps (THREAD_BLOCKS per control step, 20 ms each: the height lags the hinge by at most
the turn of one block, ~0.02 mm at the expert's screwing speed), so turning the leg clockwise
(seen from above) screws it down 11.5 mm to home in ~1.9 turns, turning it back unscrews it up
to the first crest, and pushing on it does not move it (a self-locking thread, with no friction
torque that grows with the load). MuJoCo has no helical joint; a slide and a hinge coupled by a
joint equality were tried first and yield millimetres under gripper forces (soft constraints on
the nut's small inertia).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import mujoco
import numpy as np

from dppo_robot.envs.one_leg import geometry as G

ROBOT_BASE_XY = (-0.56, 0.0)  # robosuite's default Panda-on-table placement
ROBOT_BASE_Z = 0.912  # robosuite's Panda base height on its default mount (checked at reset)
TABLE_FULL_SIZE = (0.8, 0.8, 0.05)
TABLE_FRICTION = (0.5, 0.005, 0.0001)
PART_FRICTION = "0.5 0.005 0.0001"
NUT = "leg4_nut"
CREST = "leg4_crest"
WELD = "leg4_thread_weld"
WRIST_CAMERA = "robot0_eye_in_hand"
FRONT_CAMERA = "front"
# Stiff thread constraints (the weld and the hinge limits; time constant 2 physics steps): MuJoCo's
# default (0.02 s) lets the 40 g leg sag millimetres along the thread under the gripper's forces.
THREAD_SOLREF = "0.004 1"
THREAD_SOLIMP = "0.99 0.999 0.001"
NUT_FRICTION = 0.01  # N m: the leg turns freely in the fingers' grip, but not by itself
TIMESTEP = 0.002  # s, robosuite's SIMULATION_TIMESTEP
THREAD_BLOCKS = 5  # weld height updates per control step while the thread is engaged
ARM_JOINTS = tuple(f"robot0_joint{i}" for i in range(1, 8))
ARM_TORQUE_LIMIT = (80.0, 80.0, 80.0, 80.0, 80.0, 12.0, 12.0)  # N m, robosuite's Panda motor ctrlrange
FINGER_JOINTS = ("gripper0_right_finger_joint1", "gripper0_right_finger_joint2")
FINGER_ACTUATORS = ("gripper0_right_gripper_finger_joint1", "gripper0_right_gripper_finger_joint2")
FINGER_INIT_QPOS = (0.020833, -0.020833)  # robosuite's PandaGripper init_qpos
FINGERPAD_GEOMS = ("gripper0_right_finger1_pad_collision", "gripper0_right_finger2_pad_collision")
GRIP_SITE = "gripper0_right_grip_site"
ROBOT_BASE_BODY = "robot0_base"
ROBOT_BASE = np.array([ROBOT_BASE_XY[0], ROBOT_BASE_XY[1], ROBOT_BASE_Z])
TABLE_Z = ROBOT_BASE_Z - G.ROBOT_HEIGHT


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


def tag_to_world(pos_tag) -> np.ndarray:
    """A base_tag position in the world frame."""
    return ROBOT_BASE + G.tag_to_base(pos_tag)


def _robosuite_xml() -> ET.Element:
    """robosuite's Panda (mount, default gripper) on its table arena, as an MJCF tree (no env is built)."""
    try:
        from robosuite.models.arenas import TableArena
        from robosuite.models.bases import robot_base_factory
        from robosuite.models.grippers import gripper_factory
        from robosuite.models.robots import create_robot
        from robosuite.models.tasks import ManipulationTask
    except ImportError as e:  # pragma: no cover
        raise ImportError("the one_leg task needs robosuite 1.5.1 (pip install dppo-robot[sim])") from e

    robot = create_robot("Panda", idn=0)
    robot.add_base(base=robot_base_factory(robot.default_base, idn=0))
    robot.update_joints()
    robot.update_actuators()
    robot.add_gripper(gripper_factory(robot.default_gripper["right"], idn="0_right"), robot.eef_name["right"])
    robot.set_base_xpos((ROBOT_BASE_XY[0], ROBOT_BASE_XY[1], 0))
    arena = TableArena(table_full_size=TABLE_FULL_SIZE, table_friction=TABLE_FRICTION, table_offset=(0.0, 0.0, TABLE_Z))
    arena.set_origin([0, 0, 0])
    return ET.fromstring(ManipulationTask(mujoco_arena=arena, mujoco_robots=[robot]).get_xml())


def build_mjcf(offscreen_size: int = 256) -> str:
    """The whole one_leg MJCF (see the module docstring); offscreen_size: largest image rendered (px)."""
    from dppo_robot.envs.one_leg.controller import ARM_KP, ARM_KV

    root = _robosuite_xml()
    opt = root.find("option")
    opt.set("timestep", str(TIMESTEP))
    size = root.find("size")
    if size is not None:  # robosuite's nconmax/njmax 5000: let MuJoCo size its arena itself
        root.remove(size)
    vis = root.find("visual") if root.find("visual") is not None else ET.SubElement(root, "visual")
    gl = vis.find("global") if vis.find("global") is not None else ET.SubElement(vis, "global")
    gl.set("offwidth", str(max(offscreen_size, 640)))
    gl.set("offheight", str(max(offscreen_size, 480)))
    # arm: joint impedance actuators in place of robosuite's torque motors; MuJoCo's gravity compensation
    act = root.find("actuator")
    motors = [a for a in act.findall("motor") if (a.get("joint") or "") in ARM_JOINTS]
    if [a.get("joint") for a in motors] != list(ARM_JOINTS):
        raise RuntimeError(f"robosuite's Panda arm motors changed: {[a.get('joint') for a in motors]}")
    for a, kp, kv, lim in zip(motors, ARM_KP, ARM_KV, ARM_TORQUE_LIMIT):
        idx = list(act).index(a)
        act.remove(a)
        gen = ET.Element(
            "general", name=a.get("name").replace("torq", "imp"), joint=a.get("joint"), gaintype="fixed",
            biastype="affine", gainprm=_f(kp), biasprm=_f(0.0, -kp, -kv), ctrllimited="false",
            forcelimited="true", forcerange=_f(-lim, lim),
        )  # fmt: skip
        act.insert(idx, gen)
    wb = root.find("worldbody")
    for body in wb.iter("body"):
        name = body.get("name") or ""
        if name.startswith(("robot0_link", "robot0_right_hand", "gripper0_")) and name != "robot0_link0":
            body.set("gravcomp", "1")
    for joint in wb.iter("joint"):
        if (joint.get("name") or "") in ARM_JOINTS:
            joint.set("actuatorgravcomp", "true")
    # the parts, at their nominal reset poses (reset moves them)
    top = _tabletop_xml()
    wb.append(top)
    legs = [_leg_xml(i) for i in range(1, 5)]
    for leg in legs:
        wb.append(leg)
    for name, body in zip(G.PART_NAMES, [top, *legs]):
        body.set("pos", _f(*tag_to_world(G.RESET_POS_TAG[name])))
    wb.append(_fixture_xml(tag_to_world(G.OBSTACLE_FRONT_TAG)))
    tag = ROBOT_BASE + G.TAG_IN_BASE
    for k, (dx, dy) in enumerate(((-0.03, -0.03), (0.03, -0.03), (-0.03, 0.03), (0.03, 0.03))):
        p = tag + G.R_BASE_TAG @ np.array([dx, dy, 0.0]) + np.array([0, 0, 0.0005])
        ET.SubElement(
            wb, "geom", name=f"base_tag{k}", type="box", pos=_f(*p), size="0.024 0.024 0.0005",
            rgba="0.05 0.05 0.05 1", contype="0", conaffinity="0", group="1",
        )  # fmt: skip
    cam_pos = tag + np.array([0.8985, 0.0, 0.235])
    cam_target = tag + np.array([-1.0015, 0.0, -0.115])
    ET.SubElement(wb, "camera", name=FRONT_CAMERA, mode="fixed", pos=_f(*cam_pos),
                  xyaxes=_look_at_xyaxes(cam_pos, cam_target), fovy="40")  # fmt: skip
    eq = root.find("equality") if root.find("equality") is not None else ET.SubElement(root, "equality")
    ET.SubElement(eq, "weld", name=WELD, body1=NUT, body2=f"square_table_leg{G.LEG_INDEX}", active="false",
                  solref=THREAD_SOLREF, solimp=THREAD_SOLIMP)  # fmt: skip
    return ET.tostring(root, encoding="unicode")


def _id(m: mujoco.MjModel, kind: mujoco.mjtObj, name: str) -> int:
    i = int(mujoco.mj_name2id(m, kind, name))
    if i < 0:
        raise RuntimeError(f"one_leg model has no {kind.name} named {name!r}")
    return i


class OneLegScene:
    """The compiled one_leg model, its data and the thread. Reset draws a start from `start_rng` at `level`.

    The gym wrapper (dppo_robot.envs.one_leg.env.OneLegEnv) owns the controller, observations,
    phases and rewards; this class owns the physics: `reset(start)`, `step(substeps)`, the thread.
    """

    def __init__(self, level: G.Randomness, substeps: int, offscreen_size: int = 256) -> None:
        self.level = level
        self.substeps = substeps
        self.start_rng = np.random.default_rng(0)
        self.start: G.StartState | None = None
        self.thread_engaged = False
        self.robot_base = ROBOT_BASE.copy()
        self.table_z = TABLE_Z
        self.xml = build_mjcf(offscreen_size)
        self.model = m = mujoco.MjModel.from_xml_string(self.xml)
        self.data = mujoco.MjData(m)
        J, B = mujoco.mjtObj.mjOBJ_JOINT, mujoco.mjtObj.mjOBJ_BODY
        arm = [_id(m, J, n) for n in ARM_JOINTS]
        self.arm_qpos_adr = np.array([m.jnt_qposadr[j] for j in arm])
        self.arm_dof_adr = np.array([m.jnt_dofadr[j] for j in arm])
        self.arm_range = np.array([m.jnt_range[j] for j in arm])
        A = mujoco.mjtObj.mjOBJ_ACTUATOR
        self.arm_act = np.array([_id(m, A, n.replace("joint", "imp_j")) for n in ARM_JOINTS])
        self.finger_act = np.array([_id(m, A, n) for n in FINGER_ACTUATORS])
        self.finger_ctrl_range = np.array([m.actuator_ctrlrange[a] for a in self.finger_act])
        self.finger_qpos_adr = np.array([m.jnt_qposadr[_id(m, J, n)] for n in FINGER_JOINTS])
        self.grip_site_id = _id(m, mujoco.mjtObj.mjOBJ_SITE, GRIP_SITE)
        self.part_body_ids = [_id(m, B, n) for n in G.PART_NAMES]
        self.obstacle_body_id = _id(m, B, G.OBSTACLE_NAME)
        self.obstacle_mocap_id = int(m.body_mocapid[self.obstacle_body_id])
        self.part_qpos_adr = [int(m.jnt_qposadr[_id(m, J, f"{n}_joint")]) for n in G.PART_NAMES]
        self.part_qvel_adr = [int(m.jnt_dofadr[_id(m, J, f"{n}_joint")]) for n in G.PART_NAMES]
        self.nut_body_id = _id(m, B, NUT)
        self.nut_hinge_adr = int(m.jnt_qposadr[_id(m, J, f"{NUT}_hinge")])
        self.nut_dof_adr = int(m.jnt_dofadr[_id(m, J, f"{NUT}_hinge")])
        self.crest_geom_id = _id(m, mujoco.mjtObj.mjOBJ_GEOM, CREST)
        self.weld_id = _id(m, mujoco.mjtObj.mjOBJ_EQUALITY, WELD)
        self.stud_tip_site_id = _id(m, mujoco.mjtObj.mjOBJ_SITE, f"leg{G.LEG_INDEX}_stud_tip")
        self.robot_base_body_id = _id(m, B, ROBOT_BASE_BODY)
        self.fingerpad_geoms = np.array([_id(m, mujoco.mjtObj.mjOBJ_GEOM, n) for n in FINGERPAD_GEOMS])
        # geom id -> part index (0..4), -1 for the rest: the grasp check reads contacts through it
        self.geom_part = np.full(m.ngeom, -1, np.int64)
        for k, bid in enumerate(self.part_body_ids):
            self.geom_part[m.geom_bodyid == bid] = k
        self.part_geoms = {
            n: [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in np.flatnonzero(self.geom_part == k)]
            for k, n in enumerate(G.PART_NAMES)
        }
        self.weld_data0 = m.eq_data[self.weld_id].copy()

    # -- frames --------------------------------------------------------------------------
    @property
    def tag_origin_world(self) -> np.ndarray:
        return self.robot_base + G.TAG_IN_BASE

    def tag_to_world(self, pos_tag) -> np.ndarray:
        return tag_to_world(pos_tag)

    def check_robot_base(self) -> None:
        """The robot base must sit where the frames assume (call after a reset)."""
        base = self.data.xpos[self.robot_base_body_id]
        if not np.allclose(base, self.robot_base, atol=1e-6):
            raise RuntimeError(f"robot base at {base}, expected {self.robot_base} (robosuite's Panda mount changed?)")

    # -- reset -----------------------------------------------------------------------------
    def reset(self) -> None:
        """A fresh start drawn from start_rng: parts, fixture, arm joints; thread disengaged; at rest."""
        start = G.sample_start(self.start_rng, self.level)
        self.start = start
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[self.arm_qpos_adr] = start.joints
        d.qpos[self.finger_qpos_adr] = FINGER_INIT_QPOS
        for name, adr in zip(G.PART_NAMES, self.part_qpos_adr):
            p = self.tag_to_world(start.part_pos[name])
            x, y, z, w = G.mat_to_quat_xyzw(G.R_BASE_TAG @ start.part_rot[name])
            d.qpos[adr : adr + 7] = [*p, w, x, y, z]
        d.mocap_pos[self.obstacle_mocap_id] = self.tag_to_world(start.obstacle_pos)
        d.ctrl[self.arm_act] = start.joints
        d.ctrl[self.finger_act] = FINGER_INIT_QPOS
        m.geom_contype[self.crest_geom_id] = 1
        m.geom_conaffinity[self.crest_geom_id] = 1
        m.eq_data[self.weld_id] = self.weld_data0
        d.eq_active[self.weld_id] = 0
        self.thread_engaged = False
        mujoco.mj_forward(m, d)

    # -- stepping --------------------------------------------------------------------------
    def step(self) -> None:
        """One control step of physics with the controls in data.ctrl, then the derived quantities."""
        m, d = self.model, self.data
        if not self.thread_engaged:
            mujoco.mj_step(m, d, nstep=self.substeps)
        else:  # the weld's height follows the thread between blocks of physics steps
            n = self.substeps
            for k in range(THREAD_BLOCKS):
                m.eq_data[self.weld_id, 5] = self._leg_height(float(d.qpos[self.nut_hinge_adr]))
                nk = n * (k + 1) // THREAD_BLOCKS - n * k // THREAD_BLOCKS
                mujoco.mj_step(m, d, nstep=nk)
            m.eq_data[self.weld_id, 5] = self._leg_height(float(d.qpos[self.nut_hinge_adr]))
        self.observe()

    def observe(self) -> None:
        """What the observation and the phase predicates read, at the state mj_step left: poses
        (mj_kinematics), cameras, velocities (mj_comVel) and contacts (mj_collision). The rest of
        mj_forward (actuation, constraint solve) is left to the next mj_step, which recomputes it."""
        m, d = self.model, self.data
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        mujoco.mj_camlight(m, d)
        mujoco.mj_comVel(m, d)
        mujoco.mj_collision(m, d)

    def forward(self) -> None:
        mujoco.mj_forward(self.model, self.data)

    def grasped_parts(self) -> set[int]:
        """Parts (indices into geometry.PART_NAMES) both finger pads touch: robosuite's _check_grasp
        over the current contacts."""
        d = self.data
        if d.ncon == 0:
            return set()
        g = d.contact.geom  # [ncon, 2]
        part = self.geom_part[g]
        touched = []
        for pad in self.fingerpad_geoms:
            touched.append(set(part[g[:, 0] == pad, 1].tolist()) | set(part[g[:, 1] == pad, 0].tolist()))
        return (touched[0] & touched[1]) - {-1}

    def grasping(self, part_index: int) -> bool:
        """Both finger pads touch the part."""
        return part_index in self.grasped_parts()

    # -- the thread ------------------------------------------------------------------------
    def engage_thread(self, depth: float) -> None:
        """Weld leg4 to the nut, its axis on the hole's, where the thread catches for stud depth `depth`.

        The thread has 4 starts (the square leg's symmetry) phased so that the leg ends square to
        the tabletop when screwed home; it catches at the start nearest the stud's depth (at most a
        quarter pitch, 1.5 mm, away), so engaging moves the leg by at most 0.75 mm and never turns it.
        """
        m, d = self.model, self.data
        k = G.THREAD_PITCH / (2 * math.pi)
        h_min = -G.THREAD_TRAVEL / k
        h_depth = -float(np.clip(depth - G.CREST_DEPTH, 0.0, G.THREAD_TRAVEL)) / k
        leg_id = self.part_body_ids[G.LEG_INDEX]
        top_R = d.xmat[self.part_body_ids[0]].reshape(3, 3)
        R_leg = d.xmat[leg_id].reshape(3, 3)
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
        mujoco.mj_forward(m, d)
        R_nut = d.xmat[self.nut_body_id].reshape(3, 3)
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
        return -G.THREAD_PITCH / (2 * math.pi) * float(self.data.qpos[self.nut_hinge_adr])
