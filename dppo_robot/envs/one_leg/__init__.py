"""FurnitureBench one_leg twin in MuJoCo (robosuite's Panda model), registered as task "one_leg".

Importing this package registers the task without importing robosuite or MuJoCo (they load
when an env is built). Modules: geometry (FurnitureBench dimensions, frames, reset sampling),
scene (the MJCF and its native stepping, the thread), controller (10-D action -> IK joint
target tracked by MuJoCo's joint impedance actuators), phases (phase predicates), env (the gym
env, IO spec and builder). Randomness level: TaskConfig.randomness
("low" default, "med").
"""

from dppo_robot.envs.one_leg.env import OneLegEnv, build_one_leg, one_leg_io_spec
from dppo_robot.envs.one_leg.phases import PHASE_NAMES
from dppo_robot.envs.registry import register_task

# Reference one_leg configuration (DPPO furniture, state MLP): 700 env steps, To 1, Ta 8, 10 Hz;
# FurnitureBench ends the episode when the leg is assembled.
ONE_LEG_DEFAULTS = {
    "max_episode_steps": 700,
    "cond_steps": 1,
    "act_steps": 8,
    "control_hz": 10.0,
    "reward": "sparse",
    "terminate_on_success": True,
    "randomness": "low",
}

register_task(
    "one_leg",
    build_one_leg,
    one_leg_io_spec,
    defaults=ONE_LEG_DEFAULTS,
    description="FurnitureBench one_leg twin: Panda, square tabletop + leg, corner fixture (Do 58, Da 10, 10 Hz)",
)

__all__ = ["ONE_LEG_DEFAULTS", "PHASE_NAMES", "OneLegEnv", "build_one_leg", "one_leg_io_spec"]
