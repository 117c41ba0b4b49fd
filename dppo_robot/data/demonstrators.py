"""Scripted demonstrators (privileged simulator state) and demo collection into the reference layout.

robosuite tasks (OSC_POSE delta actions, gripper -1 open / +1 close), each a phase machine
closing the loop on the true object pose every step:
    lift    above the cube (fingers square to its faces), descend, close, lift.
    can     above the can, descend, close, lift clear of the bin wall, carry over the can's
            target compartment of the right bin, lower, open.
    square  above the nut's handle (fingers across it, 8 mm outboard of its centre so no finger
            lands on the ring), descend in two stages, close, lift above the peg, turn the nut
            square to the peg with its handle not pointing away from the robot (reach), centre
            it over the peg, lower it down the peg, open, back off.
reach2d: pick the left or right gap at random, follow waypoints through it with an aim error
per episode and per-step action noise, tuned so about 2/3 of episodes succeed (the rest clip
the wall): a multimodal, mediocre demonstrator that leaves RL room to improve.

collect_demos(...) runs one, writes train.npz (normalised, as the reference's datasets),
normalization.npz and demos_report.json.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Literal, Protocol

import gymnasium as gym
import numpy as np
from scipy.spatial.transform import Rotation

from dppo_robot.data.dataset import (
    Dataset,
    fit_normalization,
    normalize_dataset,
    save_dataset,
    save_normalization_npz,
)
from dppo_robot.data.one_leg_expert import OneLegExpert
from dppo_robot.envs.registry import make_env
from dppo_robot.envs.task_config import TaskConfig

# Gripper pointing down with its fingers closing along world y (robosuite Panda at yaw 0).
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
OPEN, CLOSE = -1.0, 1.0
POS_SCALE_M = 0.05  # OSC output_max for position: action 1 = 5 cm
ROT_SCALE_RAD = 0.5  # OSC output_max for rotation: action 1 = 0.5 rad
GRASP_OUTWARD_M = 0.008  # square: grasp point beyond the handle site, away from the nut ring


class Demonstrator(Protocol):
    def reset(self, env: gym.Env, rng: np.random.Generator) -> None: ...

    def act(self, obs: Any) -> np.ndarray: ...


def _wrap(angle: float, period: float) -> float:
    """angle folded into (-period / 2, period / 2]."""
    return float(-((-angle + period / 2) % period - period / 2))


def _yaw_of(quat_wxyz: np.ndarray) -> float:
    w, x, y, z = quat_wxyz
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


class ArmScript:
    """Common parts of the robosuite scripts: sim access and the pose-servo action."""

    def __init__(self, action_noise_std: float = 0.02, pos_gain: float = 1.0, rot_gain: float = 1.0) -> None:
        self.action_noise_std = action_noise_std
        self.pos_gain = pos_gain
        self.rot_gain = rot_gain

    def reset(self, env: gym.Env, rng: np.random.Generator) -> None:
        self.task_env = env.unwrapped
        self.rs = self.task_env.env
        self.sim = self.rs.sim
        self.robot = self.rs.robots[0]
        self.rng = rng
        self.phase = 0
        self.t_phase = 0

    # -- state ---------------------------------------------------------------------------
    def eef_pos(self) -> np.ndarray:
        return np.array(self.sim.data.site_xpos[self.robot.eef_site_id["right"]])

    def eef_mat(self) -> np.ndarray:
        return np.array(self.sim.data.site_xmat[self.robot.eef_site_id["right"]]).reshape(3, 3)

    def eef_yaw(self) -> float:
        """Yaw of the gripper relative to R_DOWN (rotation about world z)."""
        m = self.eef_mat() @ R_DOWN.T
        return math.atan2(m[1, 0], m[0, 0])

    def body_pos(self, body_id: int) -> np.ndarray:
        return np.array(self.sim.data.body_xpos[body_id])

    def body_yaw(self, body_id: int) -> float:
        return _yaw_of(np.array(self.sim.data.body_xquat[body_id]))

    def gripper_width(self) -> float:
        q = np.array(self.sim.data.qpos[self.robot._ref_gripper_joint_pos_indexes["right"]])
        return float(abs(q[0] - q[1]))

    # -- action --------------------------------------------------------------------------
    def servo(self, target: np.ndarray, yaw: float, grip: float, max_speed: float = 1.0) -> np.ndarray:
        pos = np.clip(self.pos_gain * (target - self.eef_pos()) / POS_SCALE_M, -max_speed, max_speed)
        r_target = Rotation.from_euler("z", yaw).as_matrix() @ R_DOWN
        rotvec = Rotation.from_matrix(r_target @ self.eef_mat().T).as_rotvec()
        rot = np.clip(self.rot_gain * rotvec / ROT_SCALE_RAD, -1.0, 1.0)
        a = np.concatenate([pos, rot, [grip]])
        if self.action_noise_std > 0:
            a[:6] += self.rng.normal(0.0, self.action_noise_std, 6)
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def next_phase(self) -> None:
        self.phase += 1
        self.t_phase = 0

    def act(self, obs: Any) -> np.ndarray:
        a = self.step()
        self.t_phase += 1
        return a

    def step(self) -> np.ndarray:
        raise NotImplementedError


class LiftScript(ArmScript):
    """Reach above the cube, descend, grasp, lift."""

    def reset(self, env: gym.Env, rng: np.random.Generator) -> None:
        super().reset(env, rng)
        self.cube = self.rs.cube_body_id
        self.hold = None

    def step(self) -> np.ndarray:
        cube = self.body_pos(self.cube)
        yaw = self.eef_yaw() + _wrap(self.body_yaw(self.cube) - self.eef_yaw(), math.pi / 2)
        if self.phase == 0:  # above the cube, aligned
            self.grasp_yaw = yaw
            target = cube + np.array([0.0, 0.0, 0.08])
            err = target - self.eef_pos()
            if (np.linalg.norm(err[:2]) < 0.01 and abs(err[2]) < 0.02) or self.t_phase > 60:
                self.next_phase()
            return self.servo(target, yaw, OPEN)
        if self.phase == 1:  # descend around it
            target = cube + np.array([0.0, 0.0, -0.003])
            if np.linalg.norm(target - self.eef_pos()) < 0.008 or self.t_phase > 40:
                self.next_phase()
            return self.servo(target, self.grasp_yaw, OPEN, max_speed=0.6)
        if self.phase == 2:  # close
            if self.t_phase >= 8:
                self.hold = self.eef_pos()
                self.next_phase()
            return self.servo(self.eef_pos(), self.grasp_yaw, CLOSE)
        return self.servo(self.hold + np.array([0.0, 0.0, 0.2]), self.grasp_yaw, CLOSE, max_speed=0.6)  # lift


class CanScript(ArmScript):
    """Pick the can out of the left bin and drop it into its compartment of the right bin."""

    def reset(self, env: gym.Env, rng: np.random.Generator) -> None:
        super().reset(env, rng)
        self.can = self.rs.obj_body_id["Can"]
        self.goal = np.array(self.rs.target_bin_placements[self.rs.object_to_id["can"]])
        self.yaw = 0.0
        self.carry_z = 1.05

    def step(self) -> np.ndarray:
        can = self.body_pos(self.can)
        eef = self.eef_pos()
        if self.phase == 0:  # above the can
            target = can + np.array([0.0, 0.0, 0.1])
            err = target - eef
            if (np.linalg.norm(err[:2]) < 0.01 and abs(err[2]) < 0.02) or self.t_phase > 60:
                self.next_phase()
            return self.servo(target, self.yaw, OPEN)
        if self.phase == 1:  # descend
            target = can + np.array([0.0, 0.0, 0.01])
            if np.linalg.norm(target - eef) < 0.01 or self.t_phase > 40:
                self.next_phase()
            return self.servo(target, self.yaw, OPEN, max_speed=0.6)
        if self.phase == 2:  # close
            if self.t_phase >= 8:
                self.next_phase()
            return self.servo(eef, self.yaw, CLOSE)
        if self.phase == 3:  # lift straight up
            target = np.array([eef[0], eef[1], self.carry_z])
            if eef[2] > self.carry_z - 0.03 or self.t_phase > 40:
                self.next_phase()
            return self.servo(target, self.yaw, CLOSE)
        if self.phase == 4:  # carry over the compartment (closing the loop on the can)
            target = np.array([*(eef[:2] + self.goal[:2] - can[:2]), self.carry_z])
            if np.linalg.norm(self.goal[:2] - can[:2]) < 0.015 or self.t_phase > 80:
                self.next_phase()
            return self.servo(target, self.yaw, CLOSE)
        if self.phase == 5:  # lower into the bin
            target = np.array([*(eef[:2] + self.goal[:2] - can[:2]), self.goal[2] + 0.12])
            if eef[2] < self.goal[2] + 0.14 or self.t_phase > 40:
                self.next_phase()
            return self.servo(target, self.yaw, CLOSE, max_speed=0.6)
        return self.servo(np.array([eef[0], eef[1], self.goal[2] + 0.2]), self.yaw, OPEN)  # release, back off


class SquareScript(ArmScript):
    """Grasp the square nut by its handle and put it over the square peg."""

    def reset(self, env: gym.Env, rng: np.random.Generator) -> None:
        super().reset(env, rng)
        self.nut = self.rs.obj_body_id["SquareNut"]
        self.handle = self.sim.model.site_name2id("SquareNut_handle_site")
        self.peg = self.rs.peg1_body_id
        self.table_z = float(self.rs.table_offset[2])
        self.carry_z = 1.02  # nut centre height while carrying (peg top at 0.95)

    def grasp_point(self) -> np.ndarray:
        """On the handle, 8 mm further out than its centre site, so no finger lands on the ring."""
        h = np.array(self.sim.data.site_xpos[self.handle])
        yaw = self.body_yaw(self.nut)
        return h + GRASP_OUTWARD_M * np.array([math.cos(yaw), math.sin(yaw), 0.0])

    def step(self) -> np.ndarray:
        nut = self.body_pos(self.nut)
        nut_yaw = self.body_yaw(self.nut)
        eef = self.eef_pos()
        peg = self.body_pos(self.peg)
        if self.phase == 0:  # above the handle, fingers across it
            self.grasp_yaw = _wrap(nut_yaw, math.pi)
            target = self.grasp_point() + np.array([0.0, 0.0, 0.08])
            err = target - eef
            if (np.linalg.norm(err[:2]) < 0.008 and abs(err[2]) < 0.02) or self.t_phase > 60:
                self.next_phase()
            return self.servo(target, self.grasp_yaw, OPEN)
        if self.phase == 1:  # down to just above the handle, centred
            target = self.grasp_point() + np.array([0.0, 0.0, 0.03])
            err = target - eef
            if (np.linalg.norm(err[:2]) < 0.003 and abs(err[2]) < 0.01) or self.t_phase > 40:
                self.phase, self.t_phase = 10, 0
            return self.servo(target, self.grasp_yaw, OPEN, max_speed=0.6)
        if self.phase == 10:  # slowly around the handle
            target = self.grasp_point() + np.array([0.0, 0.0, -0.005])
            if np.linalg.norm(target - eef) < 0.006 or self.t_phase > 40:
                self.phase, self.t_phase = 2, 0
            return self.servo(target, self.grasp_yaw, OPEN, max_speed=0.3)
        if self.phase == 2:  # close
            if self.t_phase >= 8:
                # Square the nut to the peg with the wrist, the handle not pointing away from the
                # robot (+x: the eef would then be beyond the Panda's reach over the peg); of the
                # other three quarter turns take the one that leaves the wrist least twisted.
                cands = (math.pi / 2, math.pi, -math.pi / 2)
                self.nut_yaw_goal = min(cands, key=lambda c: abs(self.eef_yaw() + _wrap(c - nut_yaw, 2 * math.pi)))
                self.next_phase()
            return self.servo(eef, self.grasp_yaw, CLOSE)
        turn = _wrap(self.nut_yaw_goal - nut_yaw, 2 * math.pi)
        yaw = self.eef_yaw() + turn
        over_peg = np.array([*(eef[:2] + peg[:2] - nut[:2]), eef[2] + self.carry_z - nut[2]])
        if self.phase == 3:  # lift clear of the peg top
            target = np.array([eef[0], eef[1], eef[2] + self.carry_z - nut[2]])
            if nut[2] > self.carry_z - 0.02 or self.t_phase > 40:
                self.next_phase()
            return self.servo(target, self.eef_yaw(), CLOSE)
        if self.phase == 4:  # centre over the peg, squared up
            xy_err = np.linalg.norm(peg[:2] - nut[:2])
            if (xy_err < 0.004 and abs(turn) < 0.05) or self.t_phase > 80:
                self.next_phase()
            return self.servo(over_peg, yaw, CLOSE, max_speed=0.5)
        if self.phase == 5:  # lower down the peg, still centring
            down = np.array([over_peg[0], over_peg[1], eef[2] + (self.table_z + 0.02) - nut[2]])
            if nut[2] < self.table_z + 0.035 or self.t_phase > 60:
                self.next_phase()
            return self.servo(down, yaw, CLOSE, max_speed=0.3)
        if self.phase == 6:  # open
            if self.t_phase >= 6:
                self.next_phase()
            return self.servo(eef, self.eef_yaw(), OPEN)
        return self.servo(eef + np.array([0.0, 0.0, 0.1]), self.eef_yaw(), OPEN)  # back off


class Reach2DDemonstrator:
    """Left or right gap at random; waypoints through it with aim error and action noise."""

    def __init__(self, aim_std: float = 0.18, action_noise_std: float = 0.3, waypoint_tol: float = 0.06) -> None:
        self.aim_std = aim_std
        self.action_noise_std = action_noise_std
        self.waypoint_tol = waypoint_tol

    def reset(self, env: gym.Env, rng: np.random.Generator) -> None:
        from dppo_robot.envs import toy_multimodal as T

        self.T = T
        self.rng = rng
        self.side = int(rng.choice([-1, 1]))
        gap_x = 0.5 * (T.GAP_INNER_X + T.GAP_OUTER_X)
        aim = self.side * gap_x + rng.normal(0.0, self.aim_std)
        band = T.WALL_HALF_THICKNESS + 0.2
        self.waypoints = [np.array([aim, -band]), np.array([aim, band]), np.array(T.GOAL)]
        self.k = 0

    def act(self, obs: Any) -> np.ndarray:
        pos = np.asarray(obs, np.float64)[:2]
        if self.k < len(self.waypoints) - 1 and np.linalg.norm(self.waypoints[self.k] - pos) < self.waypoint_tol:
            self.k += 1
        a = np.clip((self.waypoints[self.k] - pos) / self.T.MAX_STEP, -1.0, 1.0)
        a = a + self.rng.normal(0.0, self.action_noise_std, 2)
        return np.clip(a, -1.0, 1.0).astype(np.float32)


DEMONSTRATORS: dict[str, type] = {
    "lift": LiftScript,
    "can": CanScript,
    "square": SquareScript,
    "reach2d": Reach2DDemonstrator,
    "one_leg": OneLegExpert,
}


def make_demonstrator(task: str, **kwargs: Any) -> Demonstrator:
    try:
        return DEMONSTRATORS[task](**kwargs)
    except KeyError:
        raise ValueError(f"no scripted demonstrator for task '{task}'; have {sorted(DEMONSTRATORS)}") from None


def run_episode(
    env: gym.Env,
    demo: Demonstrator,
    seed: int,
    rng: np.random.Generator,
    post_success_steps: int = 10,
    exec_noise_std: float = 0.0,
) -> dict[str, Any]:
    """One demonstration; stops post_success_steps after the first success, or when the episode ends.

    exec_noise_std > 0 is DART (Laskey et al., 2017): the env executes the action plus Gaussian noise
    on every dimension but the last (the gripper of the arm tasks), the dataset records the demonstrator's clean
    action, so the data covers states off the demonstrator's path together with its corrections.
    A demonstrator may scale that noise by stage (its exec_noise_scale(), e.g. less where millimetres
    decide).
    """
    obs, _ = env.reset(seed=seed)
    demo.reset(env, rng)
    states, actions, images = [], [], []
    success, since, t = False, 0, 0
    while True:
        a = demo.act(obs["state"] if isinstance(obs, dict) else obs)
        if isinstance(obs, dict):
            states.append(obs["state"])
            images.append(np.concatenate([obs[k] for k in obs if k.startswith("image_")], axis=0))
        else:
            states.append(obs)
        actions.append(a)
        if exec_noise_std > 0:
            a = np.asarray(a, np.float32).copy()
            scale = demo.exec_noise_scale() if hasattr(demo, "exec_noise_scale") else 1.0
            a[:-1] = np.clip(a[:-1] + rng.normal(0.0, exec_noise_std * scale, a.shape[0] - 1), -1.0, 1.0)
        obs, _, terminated, truncated, info = env.step(a)
        t += 1
        success = success or bool(info.get("success", False))
        since = since + 1 if success else 0
        if terminated or truncated or (success and since > post_success_steps):
            break
    return {
        "states": np.asarray(states, np.float32),
        "actions": np.asarray(actions, np.float32),
        "images": np.asarray(images, np.uint8) if images else None,
        "success": success,
        "length": t,
    }


def _save_episode(ep_dir: Path, ep: int, r: dict[str, Any], rng: np.random.Generator) -> None:
    """One finished episode, written atomically, with the generator state that follows it."""
    import os

    path = ep_dir / f"ep{ep:05d}.npz"
    tmp = ep_dir / f".ep{ep:05d}.tmp.npz"
    arrays = {k: r[k] for k in ("states", "actions") if r.get(k) is not None}
    if r.get("images") is not None:
        arrays["images"] = r["images"]
    np.savez(tmp, success=r["success"], length=r["length"], rng_state=json.dumps(rng.bit_generator.state), **arrays)
    os.replace(tmp, path)


def _load_saved_episodes(ep_dir: Path, settings: dict[str, Any], n_episodes: int) -> list[dict[str, Any]]:
    """Episodes 0..k-1 saved by an earlier run with the same settings (none if the settings differ)."""
    ep_dir.mkdir(parents=True, exist_ok=True)
    meta = ep_dir / "settings.json"
    if meta.exists() and json.loads(meta.read_text()) != settings:
        raise ValueError(
            f"{ep_dir}: saved episodes were collected with {meta.read_text().strip()}, not {json.dumps(settings)}; "
            "use another --out or remove that folder"
        )
    meta.write_text(json.dumps(settings))
    out: list[dict[str, Any]] = []
    for ep in range(n_episodes):
        path = ep_dir / f"ep{ep:05d}.npz"
        if not path.exists():
            break
        with np.load(path) as z:
            out.append(
                {
                    "states": z["states"], "actions": z["actions"],
                    "images": z.get("images"), "success": bool(z["success"]),
                    "length": int(z["length"]), "rng_state": str(z["rng_state"]),
                }
            )  # fmt: skip
    return out


def collect_demos(
    task_cfg: TaskConfig,
    n_episodes: int,
    seed: int,
    out_dir: str | Path,
    keep: Literal["success", "all"] = "success",
    demonstrator: Demonstrator | None = None,
    post_success_steps: int = 10,
    progress: bool = True,
    exec_noise_std: float = 0.0,
) -> dict[str, Any]:
    """Run the task's scripted demonstrator for n_episodes; write the dataset and a report.

    Writes out_dir/train.npz (states and actions normalised with out_dir/normalization.npz, as
    the reference's datasets; images uint8 with the cameras stacked along channels) and
    out_dir/demos_report.json. Returns the report: episodes, successes, rate, kept, steps, ...
    Raises ValueError when no episode is kept.
    """
    if keep not in ("success", "all"):
        raise ValueError(f"keep must be 'success' or 'all', got {keep!r}")
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    demo = demonstrator if demonstrator is not None else make_demonstrator(task_cfg.name)
    env = make_env(task_cfg, seed)
    rng = np.random.default_rng(seed)
    seeds = np.random.default_rng([seed, 1]).integers(0, 2**31 - 1, n_episodes)
    kept: list[dict[str, Any]] = []
    successes, lengths = 0, []
    t0 = time.monotonic()
    # nothing lost on a crash: each episode is saved as it ends (with the generator's state after it),
    # and a rerun with the same settings continues after the last saved episode
    ep_dir = out / "episodes"
    settings = {
        "task": task_cfg.name, "seed": seed, "keep": keep, "exec_noise_std": exec_noise_std,
        "post_success_steps": post_success_steps, "cameras": list(task_cfg.cameras),
    }  # fmt: skip
    done = _load_saved_episodes(ep_dir, settings, n_episodes)
    if done and progress:
        print(f"[collect_demos] resuming after {len(done)} saved episodes in {ep_dir}", flush=True)
    for r in done:
        successes += int(r["success"])
        lengths.append(r["length"])
        if keep == "all" or r["success"]:
            kept.append(r)
    if done:
        rng.bit_generator.state = json.loads(str(done[-1]["rng_state"]))
    try:
        for ep in range(len(done), n_episodes):
            r = run_episode(env, demo, int(seeds[ep]), rng, post_success_steps, exec_noise_std)
            _save_episode(ep_dir, ep, r, rng)
            successes += int(r["success"])
            lengths.append(r["length"])
            if keep == "all" or r["success"]:
                kept.append(r)
            if progress:
                print(
                    f"[collect_demos] {task_cfg.name} episode {ep + 1}/{n_episodes}: "
                    f"{'success' if r['success'] else 'failure'} in {r['length']} steps "
                    f"(rate so far {successes}/{ep + 1})",
                    flush=True,
                )
    finally:
        env.close()
    report: dict[str, Any] = {
        "task": task_cfg.name,
        "demonstrator": type(demo).__name__,
        "episodes": n_episodes,
        "successes": successes,
        "rate": successes / n_episodes,
        "keep": keep,
        "kept": len(kept),
        "steps": int(sum(len(r["actions"]) for r in kept)),
        "mean_episode_steps": float(np.mean(lengths)),
        "seed": seed,
        "cameras": list(task_cfg.cameras),
        "exec_noise_std": exec_noise_std,
        "wall_s": round(time.monotonic() - t0, 2),
    }
    with open(out / "demos_report.json", "w") as f:
        json.dump(report, f, indent=2)
    if not kept:
        raise ValueError(f"{task_cfg.name}: no episode kept out of {n_episodes} (keep={keep}); see {out}")
    raw = Dataset(
        np.concatenate([r["states"] for r in kept]),
        np.concatenate([r["actions"] for r in kept]),
        np.array([len(r["actions"]) for r in kept], np.int64),
    )
    norm = fit_normalization(raw)
    stored = normalize_dataset(raw, norm)
    images = np.concatenate([r["images"] for r in kept]) if task_cfg.cameras else None
    save_dataset(
        out / "train.npz",
        stored.states,
        stored.actions,
        stored.traj_lengths,
        images,
        list(task_cfg.cameras) if task_cfg.cameras else None,
    )
    save_normalization_npz(out / "normalization.npz", norm)
    return report
