"""Scripted expert for the one_leg twin (privileged simulator state, absolute 10-D actions).

A phase machine closing the loop on the true part poses every step (world frame inside; the
action is the ee target in the base frame, FurnitureBench hand-frame 6D rotation, gripper):

    tabletop  above the rim nearest the robot (fingers across the rim), down, close; carry the
              tabletop into the fixture corner (its target pose is flush with the front and left
              walls, square to them, 5 mm into both so it ends pressed there), open, up.
    leg       over leg4 near its top end (fingers across it, the approach leaning 30 deg back
              towards the stud), down, close, lift 15 cm and come forward; turn the gripper
              90 deg about the fingers' axis (gripper pointing away from the robot and 30 deg
              down, so the wrist clears the tabletop; leg hanging stud-down); bring the stud tip
              over leg4's hole (higher while still off to the side), then down into it
              (correcting the tilt of the leg in the fingers, hovering to re-centre when off
              the hole) until the thread engages; open, back off.
    screw     gripper pointing down again, fingers on a pair of the leg's faces; repeat: close,
              turn 90 deg clockwise (seen from above) following the leg down, open, turn back,
              until the leg is assembled (the env then ends the episode) or time runs out.

Closing the gripper waits until the fingers stop (up to 10 steps; moving off earlier drops the
part). Every sub-step has a step budget after which it moves on, so a failed grasp wastes time
rather than hanging. Action noise (std 1.5 mm position, 0.015 rad rotation on the targets; 0.3x while
inserting) makes the demonstrations cover small deviations.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from scipy.spatial.transform import Rotation

from dppo_robot.envs.one_leg import geometry as G
from dppo_robot.envs.one_leg.controller import matrix_to_rot6d
from dppo_robot.envs.one_leg.phases import hole_frame, tabletop_in_corner

OPEN, CLOSE = -1.0, 1.0
UP = np.array([0.0, 0.0, 1.0])
DOWN = -UP
RIM_GRASP_BELOW_TOP = 0.010  # grip site this far below the rim's top (pads 1.6 cm tall)
LEG_GRASP_FROM_END = 0.015  # fingers centred this far from the leg's top end
LEG_GRASP_HEIGHT = 0.019  # grip site above the table when picking the lying leg
LEG_GRASP_TILT_DEG = 30.0  # approach leaning back from vertical when picking the leg (FurnitureBench: ~54)
CARRY_HEIGHT = 0.17  # grip site above the table while turning the leg upright
UPRIGHT_MIN_X = 0.50  # ... and at least this far in front of the robot base
PUSH_INTO_WALLS = 0.005
HOVER_OVER_HOLE, HOVER_EXTRA_MAX = 0.015, 0.03  # stud tip above the hole before inserting (+ while off to the side)
CLOSE_MIN_STEPS, CLOSE_MAX_STEPS = 4, 14  # closing the gripper: at least / at most this many steps
CLOSE_STALL = 0.0005  # m: ... until the width shrinks by less than this in a step (full travel takes 10 steps)
SCREW_PSI_LOW = 2.66  # fingers' yaw (rad) at the start of each clockwise quarter turn: in [2.66, 2.66 + pi/2)


def ee_frame(approach: np.ndarray, closing: np.ndarray) -> np.ndarray:
    """FurnitureBench hand frame (columns x, y = closing axis, z = approach) from two directions."""
    z = approach / np.linalg.norm(approach)
    y = closing - (closing @ z) * z
    y /= np.linalg.norm(y)
    return np.stack([np.cross(y, z), y, z], axis=1)


def down_frame(psi: float) -> np.ndarray:
    """Gripper pointing down, fingers closing along the horizontal direction at yaw psi."""
    return ee_frame(DOWN, np.array([math.cos(psi), math.sin(psi), 0.0]))


def rotate_towards(R_now: np.ndarray, R_goal: np.ndarray, max_angle: float) -> np.ndarray:
    rv = Rotation.from_matrix(R_goal @ R_now.T).as_rotvec()
    n = float(np.linalg.norm(rv))
    if n > max_angle:
        rv *= max_angle / n
    return Rotation.from_rotvec(rv).as_matrix() @ R_now


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector a to unit vector b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if c < -1 + 1e-6:  # opposite (a leg upside down): half a turn about any axis perpendicular to a
        n = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        n /= np.linalg.norm(n)
        return 2.0 * np.outer(n, n) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


# DART (collect-demos --exec-noise): executed-action noise relative to the requested std, per stage:
# full in free space, halved near contacts, a fifth where millimetres decide (insertion, screwing).
EXEC_NOISE_SCALE = {
    **dict.fromkeys(
        ("top_above", "top_up", "leg_above", "leg_lift", "leg_upright", "leg_back_off", "screw_above"), 1.0
    ),
    **dict.fromkeys(
        ("top_down", "top_close", "top_push", "top_release", "leg_down", "leg_close", "leg_over_hole"), 0.5
    ),
    **dict.fromkeys(
        ("leg_insert", "leg_release", "screw_down", "screw_close", "screw_turn", "screw_open", "screw_back"), 0.2
    ),
}


class OneLegExpert:
    """Scripted one_leg demonstrator (see the module docstring). Use with make_env(one_leg config)."""

    def exec_noise_scale(self) -> float:
        """Multiplier of DART's executed-action noise in the current stage (EXEC_NOISE_SCALE)."""
        return EXEC_NOISE_SCALE.get(self.stage, 1.0)

    def __init__(self, pos_noise: float = 0.0015, rot_noise: float = 0.015, max_step: float = 0.025) -> None:
        self.pos_noise = pos_noise
        self.rot_noise = rot_noise
        self.max_step = max_step

    # -- episode ---------------------------------------------------------------------------
    def reset(self, env: gym.Env, rng: np.random.Generator) -> None:
        self.env = env.unwrapped
        self.rng = rng
        self.stage = "top_above"
        self.t_stage = 0
        self.t = 0
        self.turns = 0
        self.last_width = self.env.gripper_width()
        self.log: list[tuple[int, str]] = [(0, self.stage)]

    def goto(self, stage: str) -> None:
        self.stage = stage
        self.t_stage = 0
        self.log.append((self.t, stage))

    # -- state -----------------------------------------------------------------------------
    def ee(self) -> tuple[np.ndarray, np.ndarray]:
        pos, R = self.env.ee_pose()
        return pos + self.env.scene.robot_base, R  # world position

    def part(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.env.part_pose_world(index)

    @property
    def table_z(self) -> float:
        return float(self.env.scene.table_z)

    # -- action ----------------------------------------------------------------------------
    def command(self, pos: np.ndarray, R: np.ndarray, grip: float, max_step: float | None = None,
                max_angle: float = 0.25, noise: float = 1.0) -> np.ndarray:  # fmt: skip
        """Action moving the ee towards (pos, R) (world) by at most max_step / max_angle this step.

        noise scales the target noise (fine insertion uses less).
        """
        ee_pos, ee_R = self.ee()
        step = self.max_step if max_step is None else max_step
        d = pos - ee_pos
        n = float(np.linalg.norm(d))
        target = ee_pos + (d * (step / n) if n > step else d)
        R_t = rotate_towards(ee_R, R, max_angle)
        if self.pos_noise > 0 and noise > 0:
            target = target + self.rng.normal(0.0, noise * self.pos_noise, 3)
        if self.rot_noise > 0 and noise > 0:
            R_t = Rotation.from_rotvec(self.rng.normal(0.0, noise * self.rot_noise, 3)).as_matrix() @ R_t
        base = target - self.env.scene.robot_base
        return np.concatenate([base, matrix_to_rot6d(R_t), [grip]]).astype(np.float32)

    def reached(self, pos: np.ndarray, R: np.ndarray | None = None, tol: float = 0.006, ang: float = 0.08) -> bool:
        ee_pos, ee_R = self.ee()
        if np.linalg.norm(pos - ee_pos) > tol:
            return False
        return R is None or float(np.linalg.norm(Rotation.from_matrix(R @ ee_R.T).as_rotvec())) <= ang

    def act(self, obs: Any) -> np.ndarray:
        a = self.step()
        self.t += 1
        self.t_stage += 1
        self.last_width = self.env.gripper_width()
        return a

    def _closed(self, t: int) -> bool:
        """The fingers have closed on something: the gripper width stopped shrinking (or the stage timed out)."""
        w = self.env.gripper_width()
        return (t >= CLOSE_MIN_STEPS and self.last_width - w < CLOSE_STALL) or t >= CLOSE_MAX_STEPS

    # -- the script ------------------------------------------------------------------------
    def _rim_grasp(self) -> tuple[np.ndarray, np.ndarray]:
        """Grip-site position over the rim nearest the robot and the gripper frame for it."""
        top_pos, top_R = self.part(0)
        normals = [top_R[:, 0], -top_R[:, 0], top_R[:, 2], -top_R[:, 2]]
        n = min(normals, key=lambda v: v[0])  # outward normal pointing most towards the robot
        n = np.array([n[0], n[1], 0.0]) / np.linalg.norm(n[:2])
        centre = top_pos + (G.TABLETOP_HALF_WIDTH - G.RIM_WIDTH / 2) * n
        z = self.table_z + 2 * G.TABLETOP_HALF_THICKNESS - RIM_GRASP_BELOW_TOP
        _, ee_R = self.ee()
        psi_now = math.atan2(ee_R[1, 1], ee_R[0, 1])
        psi = math.atan2(n[1], n[0])
        psi = psi_now + G.wrap(psi - psi_now, math.pi)  # closing axis is +-n: take the nearer
        return np.array([centre[0], centre[1], z]), down_frame(psi)

    def _corner_target(self) -> tuple[np.ndarray, np.ndarray]:
        """Tabletop pose (world) in the corner, pressed PUSH_INTO_WALLS into both walls, square to them."""
        obst_tag, _ = self.env.world_to_tag(*self.env.obstacle_pose_world())
        corner = G.corner_pose_tag(obst_tag[:2]) + PUSH_INTO_WALLS
        top_pos, top_R = self.part(0)
        p_tag = np.array([corner[0], corner[1], G.RESET_POS_TAG["square_table_top"][2]])
        pos = self.env.scene.tag_to_world(p_tag)
        # the nearest of the 4 square orientations (about the vertical) to the current one
        _, top_R_tag = self.env.world_to_tag(top_pos, top_R)
        yaw = G.yaw_about_tag_z(top_R_tag, G.RESET_ORI_TAG["square_table_top"])
        R_tag = G.rot_mat((0.0, 0.0, yaw - G.wrap(yaw, math.pi / 2))) @ G.RESET_ORI_TAG["square_table_top"]
        return pos, G.R_BASE_TAG @ R_tag

    def _leg_grasp(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grip-site position near leg4's top end, gripper frame, and the leg's axis (towards the top end)."""
        leg_pos, leg_R = self.part(G.LEG_INDEX)
        a = leg_R[:, 1].copy()
        a[2] = 0.0
        a /= np.linalg.norm(a)
        p = leg_pos + (G.LEG_HALF_LENGTH - LEG_GRASP_FROM_END) * a
        # fingers close along a x up (not its opposite): turning the leg upright about that axis then
        # leaves the gripper pointing away from the robot in a wrist configuration within joint limits.
        # The approach leans back towards the stud by LEG_GRASP_TILT, so that with the leg upright the
        # gripper points forward and down and the wrist clears the tabletop.
        u = np.cross(a, UP)
        tilt = math.radians(LEG_GRASP_TILT_DEG)
        approach = -math.cos(tilt) * UP - math.sin(tilt) * a
        return np.array([p[0], p[1], self.table_z + LEG_GRASP_HEIGHT]), ee_frame(approach, u), a

    def _stud_and_hole(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        tip = self.env.data.site_xpos[self.env.scene.stud_tip_site_id].copy()
        mouth, axis = hole_frame(*self.part(0))
        _, leg_R = self.part(G.LEG_INDEX)
        return tip, mouth, axis, leg_R[:, 1]

    def _insert_command(self, tip_goal: np.ndarray, max_step: float, lateral_gain: float = 1.0) -> np.ndarray:
        """Move so the stud tip goes to tip_goal, turning the gripper so the leg's axis meets the hole's."""
        tip, _, axis, leg_axis = self._stud_and_hole()
        ee_pos, ee_R = self.ee()
        R_goal = rotation_between(leg_axis, axis) @ ee_R
        err = tip_goal - tip
        along = (err @ axis) * axis
        move = along + lateral_gain * (err - along)
        return self.command(ee_pos + move, R_goal, CLOSE, max_step=max_step, max_angle=0.1, noise=0.3)

    def _screw_psi(self) -> float:
        _, leg_R = self.part(G.LEG_INDEX)
        psi = math.atan2(leg_R[1, 0], leg_R[0, 0])
        return SCREW_PSI_LOW + (psi - SCREW_PSI_LOW) % (math.pi / 2)

    def _screw_height(self) -> float:
        leg_pos, leg_R = self.part(G.LEG_INDEX)
        return float(leg_pos[2] + G.LEG_HALF_LENGTH * abs(leg_R[2, 1]) - 0.012)  # 1.2 cm below the leg's top

    def step(self) -> np.ndarray:
        s, t = self.stage, self.t_stage
        ee_pos, ee_R = self.ee()
        # ---------------------------------------------------------------- tabletop
        if s == "top_above":
            p, R = self._rim_grasp()
            goal = p + 0.08 * UP
            if self.reached(goal, R, tol=0.012, ang=0.1) or t > 60:
                self.goto("top_down")
            return self.command(goal, R, OPEN)
        if s == "top_down":
            p, R = self._rim_grasp()
            if self.reached(p, tol=0.004) or t > 30:
                self.goto("top_close")
            return self.command(p, R, OPEN, max_step=0.015)
        if s == "top_close":
            if self._closed(t):
                self.goto("top_push")
            return self.command(ee_pos, ee_R, CLOSE)
        if s == "top_push":
            top_pos, top_R = self.part(0)
            goal_pos, goal_R = self._corner_target()
            # keep the grasp: the ee goes where it would be if the tabletop were at its goal pose
            rel_p, rel_R = top_R.T @ (ee_pos - top_pos), top_R.T @ ee_R
            want_p, want_R = goal_pos + goal_R @ rel_p, goal_R @ rel_R
            if (t > 8 and self._flush_in_corner()) or t > 70:
                self.goto("top_release")
            return self.command(want_p, want_R, CLOSE, max_step=0.012, max_angle=0.05)
        if s == "top_release":
            if t >= 4:
                self.goto("top_up")
            return self.command(ee_pos, ee_R, OPEN)
        if s == "top_up":
            goal = np.array([ee_pos[0], ee_pos[1], self.table_z + 0.12])
            if ee_pos[2] > self.table_z + 0.10 or t > 20:
                self.goto("leg_above")
            return self.command(goal, ee_R, OPEN)
        # ---------------------------------------------------------------- leg
        if s == "leg_above":
            p, R, _ = self._leg_grasp()
            goal = p - 0.08 * R[:, 2]  # on the approach axis
            if self.reached(goal, R, tol=0.012, ang=0.1) or t > 60:
                self.goto("leg_down")
            return self.command(goal, R, OPEN)
        if s == "leg_down":
            p, R, _ = self._leg_grasp()
            if self.reached(p, tol=0.004) or t > 30:
                self.goto("leg_close")
            return self.command(p, R, OPEN, max_step=0.015)
        if s == "leg_close":
            if self._closed(t):
                # lift, and come forward: turning the leg upright close to the robot runs the wrist into its limits
                base = self.env.scene.robot_base
                self.lift_goal = np.array(
                    [max(ee_pos[0], base[0] + UPRIGHT_MIN_X), ee_pos[1], self.table_z + CARRY_HEIGHT]
                )
                self.goto("leg_lift")
            return self.command(ee_pos, ee_R, CLOSE)
        if s == "leg_lift":
            goal = self.lift_goal if ee_pos[2] > self.table_z + 0.06 else np.array([*ee_pos[:2], self.lift_goal[2]])
            if self.reached(self.lift_goal, tol=0.015) or t > 40:
                _, leg_R = self.part(G.LEG_INDEX)
                stud_dir = -leg_R[:, 1]  # from the fingers towards the stud
                self.upright_R = rotation_between(stud_dir, DOWN) @ ee_R
                self.goto("leg_upright")
            return self.command(goal, ee_R, CLOSE)
        if s == "leg_upright":
            if self.reached(self.lift_goal, self.upright_R, tol=0.015, ang=0.05) or t > 50:
                self.goto("leg_over_hole")
            return self.command(self.lift_goal, self.upright_R, CLOSE, max_angle=0.1)
        if s == "leg_over_hole":
            tip, mouth, axis, leg_axis = self._stud_and_hole()
            rel = tip - mouth
            lateral = float(np.linalg.norm(rel - (rel @ axis) * axis))
            # 1.5 cm over the hole, higher while still off to the side: the stud clears the tabletop
            goal = mouth + (HOVER_OVER_HOLE + float(np.clip(lateral - 0.005, 0.0, HOVER_EXTRA_MAX))) * axis
            tilt = math.acos(float(np.clip(leg_axis @ axis, -1, 1)))
            if (lateral < 0.0015 and abs((tip - goal) @ axis) < 0.006 and tilt < 0.05) or t > 80:
                self.goto("leg_insert")
            return self._insert_command(goal, max_step=0.02)
        if s == "leg_insert":
            if self.env.scene.thread_engaged:
                self.goto("leg_release")
                return self.command(ee_pos, ee_R, CLOSE)
            tip, mouth, axis, _ = self._stud_and_hole()
            rel = tip - mouth
            lateral = float(np.linalg.norm(rel - (rel @ axis) * axis))
            if t > 40:
                self.goto("leg_over_hole")  # retry from above
            if lateral > 0.0015 and rel @ axis > -0.001:  # off the hole: hover just above it and re-centre
                return self._insert_command(mouth + 0.003 * axis, max_step=0.004, lateral_gain=1.5)
            return self._insert_command(mouth - 0.006 * axis, max_step=0.004, lateral_gain=1.5)
        if s == "leg_release":
            if t >= 4:
                self.back_off = ee_pos - 0.07 * ee_R[:, 2] + 0.03 * UP
                self.goto("leg_back_off")
            return self.command(ee_pos, ee_R, OPEN)
        if s == "leg_back_off":
            if self.reached(self.back_off, tol=0.01) or t > 25:
                self.goto("screw_above")
            return self.command(self.back_off, ee_R, OPEN)
        # ---------------------------------------------------------------- screw
        leg_pos, _ = self.part(G.LEG_INDEX)
        if s == "screw_above":
            R = down_frame(self._screw_psi())
            goal = np.array([leg_pos[0], leg_pos[1], self._screw_height() + 0.06])
            if self.reached(goal, R, tol=0.01, ang=0.08) or t > 60:
                self.goto("screw_down")
            return self.command(goal, R, OPEN)
        if s == "screw_down":
            R = down_frame(self._screw_psi())
            goal = np.array([leg_pos[0], leg_pos[1], self._screw_height()])
            if self.reached(goal, tol=0.004) or t > 30:
                self.goto("screw_close")
            return self.command(goal, R, OPEN, max_step=0.015)
        if s == "screw_close":
            if self._closed(t):
                self.psi_goal = math.atan2(ee_R[1, 1], ee_R[0, 1]) - math.pi / 2
                self.goto("screw_turn")
            return self.command(ee_pos, ee_R, CLOSE)
        if s == "screw_turn":
            R = down_frame(self.psi_goal)
            goal = np.array([leg_pos[0], leg_pos[1], self._screw_height()])
            if self.reached(goal, R, tol=1.0, ang=0.06) or t > 25:
                self.turns += 1
                self.goto("screw_open")
            return self.command(goal, R, CLOSE, max_angle=0.3)
        if s == "screw_open":
            if t >= 3:
                self.goto("screw_back")
            return self.command(ee_pos, ee_R, OPEN)
        if s == "screw_back":
            R = down_frame(self._screw_psi())
            goal = np.array([leg_pos[0], leg_pos[1], self._screw_height()])
            if self.reached(goal, R, tol=0.006, ang=0.06) or t > 25:
                self.goto("screw_close")
            return self.command(goal, R, OPEN, max_angle=0.3)
        raise RuntimeError(f"unknown stage {s!r}")

    def _flush_in_corner(self, tol: float = 0.006) -> bool:
        """The tabletop's corner predicate holds and it is within tol of flush against both walls."""
        snap = self.env.snapshot()
        corner = G.corner_pose_tag(snap.obstacle_tag[:2])
        return tabletop_in_corner(snap) and bool(np.all(np.abs(snap.top_pos_tag[:2] - corner) < tol))


def measure_expert(cfg, n_episodes: int, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Run the expert for n_episodes (seeds drawn as collect_demos does) and report its success.

    Returns successes, rate, the 95% Wilson interval, per-phase counts (episodes that reached at
    least phase k, k = 1..5, in order), mean episode steps and env steps per second.
    """
    import time

    from dppo_robot.confidence import proportion
    from dppo_robot.envs.one_leg.phases import N_PHASES, PHASE_NAMES
    from dppo_robot.envs.registry import make_env

    env = make_env(cfg, seed)
    expert = OneLegExpert()
    rng = np.random.default_rng(seed)
    seeds = np.random.default_rng([seed, 1]).integers(0, 2**31 - 1, n_episodes)
    reached, lengths, successes, steps, t0 = [], [], 0, 0, time.perf_counter()
    try:
        for ep, s in enumerate(seeds):
            obs, info = env.reset(seed=int(s))
            expert.reset(env, rng)
            done, ok, n = False, False, 0
            while not done:
                obs, _, term, trunc, info = env.step(expert.act(obs))
                n += 1
                ok = ok or bool(info["success"])
                done = term or trunc
            successes += ok
            reached.append(int(info["phase"]))
            lengths.append(n)
            steps += n
            if progress:
                print(f"[one_leg expert] episode {ep + 1}/{n_episodes}: phase {info['phase']} "
                      f"({info['phase_name']}), {'success' if ok else 'failure'} in {n} steps", flush=True)  # fmt: skip
    finally:
        env.close()
    wall = time.perf_counter() - t0
    p = proportion(successes, n_episodes)
    return {
        "episodes": n_episodes,
        "successes": successes,
        "rate": p.rate,
        "ci95": [p.low, p.high],
        "phase_counts": {PHASE_NAMES[k]: sum(r >= k for r in reached) for k in range(1, N_PHASES + 1)},
        "phase_reached": reached,
        "mean_steps": float(np.mean(lengths)),
        "env_steps_per_s": steps / wall,
        "seed": seed,
        "randomness": cfg.randomness,
    }


if __name__ == "__main__":  # python -m dppo_robot.data.one_leg_expert --episodes 50
    import argparse
    import json

    from dppo_robot.envs.registry import default_task_config

    ap = argparse.ArgumentParser(description="success rate of the scripted one_leg expert")
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--randomness", choices=sorted(G.RANDOMNESS), default="low")
    ap.add_argument("--out", help="write the report as JSON here")
    args = ap.parse_args()
    report = measure_expert(
        default_task_config("one_leg", randomness=args.randomness), args.episodes, args.seed, progress=True
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
