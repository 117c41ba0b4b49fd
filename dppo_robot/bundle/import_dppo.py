"""`dppo-robot import-dppo`: a checkpoint of the reference DPPO implementation -> a policy bundle.

Inputs are what a reference run leaves behind (irom-princeton/dppo v0.8 layout):

- the checkpoint, a torch dict of plain tensors and ints:
    pre-training  {epoch, model, ema}: state dicts of DiffusionModel, keys network.*; the EMA
                  weights are used, as the reference evaluation does;
    fine-tuning   {itr, model}: state dict of PPODiffusion / VPGDiffusion with keys network.*
                  and actor.* (one module under two names: the frozen base copy), actor_ft.*
                  (the fine-tuned copy), critic.* (ignored) and, under DDIM, eta.*;
- the run's Hydra config (its saved .hydra/config.yaml, or the reference config it ran),
  read with dppo_robot.bundle.hydra_config (safe `eval`, no code execution);
- the normalisation statistics: robomimic normalization.npz (obs_min, obs_max, action_min,
  action_max; obs eps 1e-6, clipped to [-1, 1] only when the env wrapper sets clamp_obs)
  or the furniture LinearNormalizer normalization.pth (stats.observations.min/max,
  stats.actions.min/max; obs clamped to +-5).

The denoising steps are served as the reference evaluation serves them: a fine-tuned policy
uses actor for the first S - K' sampling steps and actor_ft for the last K' (DDPM robomimic:
K=20, K'=10; furniture DDIM-5 fine-tunes all 5 steps, so actor_ft serves every step).

Weights are loaded strictly: every reference key must land on one of our parameters with
the same shape and every parameter must be covered. Our modules use the reference module
names; KEY_RENAMES is where a future layout difference would be mapped.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dppo_robot.bundle.export import ExportError, write_bundle
from dppo_robot.bundle.hydra_config import HydraConfigError, load_hydra_config
from dppo_robot.bundle.manifest import BundleManifest, Provenance
from dppo_robot.checkpoint import file_sha256
from dppo_robot.io_spec import IOSpec, Slice
from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.normalization import Normalization
from dppo_robot.model.policy_config import DenoiserConfig, DiffusionConfig, PolicyConfig
from dppo_robot.model.policy_factory import build_diffusion_policy


class ImportDppoError(ExportError):
    """A reference checkpoint, config or normalisation file that cannot be imported; says why.

    An ExportError (hence a ValueError), so callers that report bad export input report it too.
    """


# ----------------------------------------------------------------------------- reference tables
DIFFUSION_MODEL = "model.diffusion.diffusion.DiffusionModel"
DIFFUSION_EVAL = "model.diffusion.diffusion_eval.DiffusionEval"
FINETUNE_MODELS = ("model.diffusion.diffusion_ppo.PPODiffusion", "model.diffusion.diffusion_vpg.VPGDiffusion")
MODEL_TARGETS = (DIFFUSION_MODEL, DIFFUSION_EVAL, *FINETUNE_MODELS)

REFUSED_MODELS = {
    "model.diffusion.diffusion_ppo_exact.PPOExactDiffusion": "exact-likelihood PPO trains through an SDE/ODE "
    "solver whose sampler dppo_robot does not implement",
    "model.diffusion.diffusion_dql.DQLDiffusion": "a DQL baseline (Q-guided), not a DPPO policy",
    "model.diffusion.diffusion_idql.IDQLDiffusion": "IDQL samples many actions and reranks them with its "
    "critics; the bundle chain has no critic",
    "model.diffusion.diffusion_qsm.QSMDiffusion": "a QSM baseline, not a DPPO policy",
    "model.diffusion.diffusion_dipo.DIPODiffusion": "a DIPO baseline, not a DPPO policy",
    "model.diffusion.diffusion_awr.AWRDiffusion": "an AWR baseline, not a DPPO policy",
    "model.diffusion.diffusion_rwr.RWRDiffusion": "an RWR baseline, not a DPPO policy",
}

MLP_NET = "model.diffusion.mlp_diffusion.DiffusionMLP"
UNET_NET = "model.diffusion.unet.Unet1D"
REFUSED_NETWORKS = {
    "model.diffusion.mlp_diffusion.VisionDiffusionMLP": "pixel policies are not supported: the reference "
    "VitEncoder/SpatialEmb image encoder has no weight-compatible counterpart in dppo_robot (model/vit.py is "
    "a different architecture), so its weights cannot be loaded",
}

# Reference constructor defaults (v0.8), used for fields a config leaves out.
MLP_DEFAULTS: dict[str, Any] = {
    "time_dim": 16,
    "mlp_dims": [256, 256],
    "cond_mlp_dims": None,
    "activation_type": "Mish",
    "out_activation_type": "Identity",
    "use_layernorm": False,
    "residual_style": False,
}
UNET_DEFAULTS: dict[str, Any] = {
    "diffusion_step_embed_dim": 32,
    "dim": 32,
    "dim_mults": [1, 2, 4, 8],
    "smaller_encoder": False,
    "cond_mlp_dims": None,
    "kernel_size": 5,
    "n_groups": None,
    "activation_type": "Mish",
    "cond_predict_scale": False,
    "groupnorm_eps": 1e-5,
}
# Keys of the network config that only repeat dimensions checked elsewhere.
NETWORK_DIM_KEYS = ("_target_", "transition_dim", "action_dim", "horizon_steps", "cond_dim")
MODEL_DEFAULTS: dict[str, Any] = {
    "denoising_steps": 100,
    "predict_epsilon": True,
    "denoised_clip_value": 1.0,
    "randn_clip_value": 10.0,
    "final_action_clip_value": None,
    "eps_clip_value": None,
    "use_ddim": False,
    "ddim_discretize": "uniform",
    "ddim_steps": None,
    "min_sampling_denoising_std": 0.1,
    "min_logprob_denoising_std": 0.1,
    "learn_eta": False,
    "ft_denoising_steps_d": 0,
    "ft_denoising_steps_t": 0,
}
ETA_FIXED = ("model.diffusion.eta.EtaFixed", "model.diffusion.eta.EtaAction")

# reference key prefix -> ours, applied after the actor / actor_ft / network prefix is stripped
KEY_RENAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "mlp": (),
    "unet1d": (),
}
FINETUNE_GROUPS = ("network", "actor", "actor_ft", "critic", "eta")


# ----------------------------------------------------------------------------- IO spec tables
ROBOMIMIC_HZ = 20.0
FURNITURE_HZ = 10.0
DEFAULT_HZ = 10.0
ROBOMIMIC_KEYS = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object"]
ROBOMIMIC_TASKS: dict[str, tuple[int, str]] = {
    "lift": (19, "cube pos (3), cube quat xyzw (4), gripper-to-cube pos (3)"),
    "can": (23, "can pos (3), can quat xyzw (4), can-to-eef pos (3), can-to-eef quat xyzw (4)"),
    "square": (23, "nut pos (3), nut quat xyzw (4), nut-to-eef pos (3), nut-to-eef quat xyzw (4)"),
}
FURNITURE_TASKS: dict[str, tuple[int, list[str]]] = {
    "one_leg": (
        58,
        [
            "square_table_top",
            "square_table_leg1",
            "square_table_leg2",
            "square_table_leg3",
            "square_table_leg4",
            "obstacle_front",
        ],
    ),
}
FURNITURE_NAME = re.compile(r"^(one_leg|lamp|round_table)_(low|med)")


def robomimic_spec(task: str, obs_dim: int) -> IOSpec:
    """robomimic state task: the same named slices as dppo_robot.envs' task of that name (the four
    low-dim keys with the object block split per key, OSC_POSE delta actions, 20 Hz), so an imported
    bundle passes check_compatible against our simulated task and the deployment topic mapping."""
    from dppo_robot.envs.registry import default_task_config, task_io_spec

    spec = task_io_spec(default_task_config(task))
    if spec.obs_dim != obs_dim:
        raise ImportDppoError(f"robomimic {task}: the task layout has {spec.obs_dim} dims, the config {obs_dim}")
    return spec


def furniture_spec(task: str) -> IOSpec:
    """FurnitureBench state task: proprio 16 + part poses in the AprilTag base frame, 10 Hz."""
    obs = [
        Slice("ee_pos", 3, "m", "base", "end-effector position"),
        Slice("ee_rot_6d", 6, "6d", "base", "end-effector orientation, 6D rotation"),
        Slice("ee_lin_vel", 3, "m/s", "base", "end-effector linear velocity"),
        Slice("ee_ang_vel", 3, "rad/s", "base", "end-effector angular velocity"),
        Slice("gripper_width", 1, "m", "", "gripper opening"),
    ]
    for part in FURNITURE_TASKS[task][1]:
        obs.append(Slice(f"{part}_pos", 3, "m", "base_tag", f"{part} position"))
        obs.append(Slice(f"{part}_quat", 4, "quat_xyzw", "base_tag", f"{part} orientation"))
    return IOSpec(
        obs=obs,
        action=[
            Slice("ee_pos", 3, "m", "base", "absolute end-effector position target"),
            Slice("ee_rot_6d", 6, "6d", "base", "absolute end-effector orientation target, 6D rotation"),
            Slice("gripper", 1, "normalized", "", "gripper command: -1 open, +1 close"),
        ],
        control_hz=FURNITURE_HZ,
    )


@dataclass
class TaskInfo:
    family: str  # "robomimic", "furniture" or "unknown"
    task: str | None
    clamp_obs: bool = False
    low_dim_keys: list[str] | None = None


def identify_task(cfg: dict) -> TaskInfo:
    """The task a reference config trains or evaluates, from its env fields."""
    env = cfg.get("env")
    env_d = env if isinstance(env, dict) else {}
    specific = env_d.get("specific") if isinstance(env_d.get("specific"), dict) else {}
    wrappers = env_d.get("wrappers") if isinstance(env_d.get("wrappers"), dict) else {}
    names = [n for n in (cfg.get("env_name"), env_d.get("name"), env if isinstance(env, str) else None) if n]
    names = [str(n) for n in names]
    if env_d.get("env_type") == "furniture" or "furniture" in specific:
        task = specific.get("furniture") or cfg.get("task")
        if task is None:
            m = next((FURNITURE_NAME.match(n) for n in names if FURNITURE_NAME.match(n)), None)
            task = m.group(1) if m else None
        return TaskInfo("furniture", task)
    low = wrappers.get("robomimic_lowdim")
    if isinstance(low, dict) or any(n in ROBOMIMIC_TASKS or n == "transport" for n in names):
        low = low if isinstance(low, dict) else {}
        task = next((n for n in names if n in ROBOMIMIC_TASKS or n == "transport"), names[0] if names else None)
        keys = low.get("low_dim_keys")
        return TaskInfo("robomimic", task, bool(low.get("clamp_obs", False)), list(keys) if keys else None)
    for n in names:
        m = FURNITURE_NAME.match(n)
        if m:
            return TaskInfo("furniture", m.group(1))
    return TaskInfo("unknown", names[0] if names else None)


def io_spec_for(task: TaskInfo, obs_dim: int, action_dim: int, control_hz: float | None, notes: list[str]) -> IOSpec:
    """The named IO spec of a known task, else a generic one (with a note saying so)."""
    family_hz = {"robomimic": ROBOMIMIC_HZ, "furniture": FURNITURE_HZ}.get(task.family)
    if family_hz is not None and control_hz is not None and abs(control_hz - family_hz) > 1e-9:
        raise ImportDppoError(
            f"{task.family} task {task.task!r} runs at {family_hz:g} Hz; --control-hz {control_hz:g} disagrees "
            "(the policy's action chunks are timed for its training rate)"
        )
    if task.family == "robomimic" and task.task in ROBOMIMIC_TASKS:
        want = ROBOMIMIC_TASKS[task.task][0]
        keys_ok = task.low_dim_keys is None or task.low_dim_keys == ROBOMIMIC_KEYS
        if obs_dim == want and action_dim == 7 and keys_ok:
            return robomimic_spec(task.task, obs_dim)
        notes.append(
            f"WARNING: robomimic {task.task} normally has obs_dim {want}, action_dim 7 and low_dim_keys "
            f"{ROBOMIMIC_KEYS}; this config has obs_dim {obs_dim}, action_dim {action_dim}, keys "
            f"{task.low_dim_keys}: generic IO spec written"
        )
    elif task.family == "furniture" and task.task in FURNITURE_TASKS:
        want = FURNITURE_TASKS[task.task][0]
        if obs_dim == want and action_dim == 10:
            return furniture_spec(task.task)
        notes.append(
            f"WARNING: furniture {task.task} normally has obs_dim {want}, action_dim 10; this config has "
            f"{obs_dim}, {action_dim}: generic IO spec written"
        )
    else:
        notes.append(
            f"WARNING: task {task.task!r} ({task.family}) has no known observation/action layout: generic IO "
            "spec (one 'obs' and one 'action' slice, no units) written; name the slices before deploying"
        )
    hz = family_hz or (control_hz if control_hz is not None else DEFAULT_HZ)
    if family_hz is None and control_hz is None:
        notes.append(f"WARNING: control rate unknown for task {task.task!r}; assumed {DEFAULT_HZ:g} Hz")
    return IOSpec.generic(obs_dim, action_dim, hz)


# ----------------------------------------------------------------------------- config mapping
@dataclass
class ReferenceModel:
    """What the config says about the model: our PolicyConfig plus how to read the weights."""

    policy_config: PolicyConfig
    model_target: str
    network_target: str
    ft_denoising_steps: int  # K' of the config (0 when it does not fine-tune)
    eta_target: str | None = None
    eta_range: tuple[float, float] = (0.1, 1.0)
    notes: list[str] = field(default_factory=list)


def _need(d: dict, key: str, source: str, where: str) -> Any:
    if key not in d or d[key] is None:
        raise ImportDppoError(f"{source}: config has no '{where}{key}'")
    return d[key]


def _int(v: Any, source: str, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v:
        raise ImportDppoError(f"{source}: '{where}' must be an integer, got {v!r}")
    return int(v)


def _num(v: Any, source: str, where: str, optional: bool = False) -> float | None:
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ImportDppoError(f"{source}: '{where}' must be a number, got {v!r}")
    return float(v)


def _dims(v: Any, source: str, where: str, optional: bool = False) -> list[int] | None:
    if v is None and optional:
        return None
    if not isinstance(v, list) or not v:
        raise ImportDppoError(f"{source}: '{where}' must be a non-empty list of integers, got {v!r}")
    return [_int(x, source, f"{where}[{i}]") for i, x in enumerate(v)]


def reference_policy_config(cfg: dict, source: str) -> ReferenceModel:
    """Map a resolved reference config onto PolicyConfig, refusing what cannot be reproduced."""
    model = cfg.get("model")
    if not isinstance(model, dict):
        raise ImportDppoError(f"{source}: config has no 'model' section")
    target = model.get("_target_")
    if target in REFUSED_MODELS:
        raise ImportDppoError(f"{source}: model._target_ {target} is not supported: {REFUSED_MODELS[target]}")
    if target not in MODEL_TARGETS:
        raise ImportDppoError(
            f"{source}: model._target_ {target!r} is not a reference diffusion policy class this importer "
            f"supports ({', '.join(MODEL_TARGETS)})"
        )
    m = {**MODEL_DEFAULTS, **model}
    net_key = "actor" if target in FINETUNE_MODELS else "network"
    net = model.get(net_key)
    if not isinstance(net, dict):
        raise ImportDppoError(f"{source}: model._target_ {target} needs a 'model.{net_key}' section")
    net_target = net.get("_target_")
    if net_target in REFUSED_NETWORKS:
        raise ImportDppoError(f"{source}: model.{net_key}._target_ {net_target}: {REFUSED_NETWORKS[net_target]}")
    if net_target not in (MLP_NET, UNET_NET):
        raise ImportDppoError(
            f"{source}: model.{net_key}._target_ {net_target!r} is not supported (supported: {MLP_NET}, {UNET_NET})"
        )
    if not m["predict_epsilon"]:
        raise ImportDppoError(
            f"{source}: model.predict_epsilon is false: dppo_robot's sampler only implements epsilon prediction"
        )
    if m["learn_eta"]:
        raise ImportDppoError(
            f"{source}: model.learn_eta is true: a learned DDIM eta (model.eta) has no counterpart in "
            "dppo_robot's DiffusionPolicy (one fixed scalar eta), so its fine-tuning sampler could not be reproduced"
        )
    if m["ft_denoising_steps_d"] or m["ft_denoising_steps_t"]:
        raise ImportDppoError(
            f"{source}: model.ft_denoising_steps_d/_t anneal the number of fine-tuned steps during training; the "
            "checkpoint does not record how many were fine-tuned when it was saved, so the actor/actor_ft split "
            "is unknown"
        )
    if m["use_ddim"] and m["ddim_discretize"] != "uniform":
        raise ImportDppoError(f"{source}: model.ddim_discretize {m['ddim_discretize']!r} is not supported (uniform)")

    obs_dim = _int(m.get("obs_dim", cfg.get("obs_dim")), source, "model.obs_dim")
    action_dim = _int(m.get("action_dim", cfg.get("action_dim")), source, "model.action_dim")
    horizon = _int(m.get("horizon_steps", cfg.get("horizon_steps")), source, "model.horizon_steps")
    w = f"model.{net_key}."
    cond_dim = net.get("cond_dim")
    if "cond_steps" in cfg and cfg["cond_steps"] is not None:
        cond_steps = _int(cfg["cond_steps"], source, "cond_steps")
    elif cond_dim is not None and _int(cond_dim, source, w + "cond_dim") % obs_dim == 0:
        cond_steps = _int(cond_dim, source, w + "cond_dim") // obs_dim
    else:
        raise ImportDppoError(f"{source}: config has neither 'cond_steps' nor a '{w}cond_dim' divisible by obs_dim")
    if cond_dim is not None and _int(cond_dim, source, w + "cond_dim") != obs_dim * cond_steps:
        raise ImportDppoError(
            f"{source}: {w}cond_dim is {cond_dim} but obs_dim * cond_steps = {obs_dim} * {cond_steps} = "
            f"{obs_dim * cond_steps}"
        )
    for key in ("transition_dim", "action_dim"):
        if net.get(key) is not None and _int(net[key], source, w + key) != action_dim:
            raise ImportDppoError(f"{source}: {w}{key} is {net[key]} but model.action_dim is {action_dim}")
    if net.get("horizon_steps") is not None and _int(net["horizon_steps"], source, w + "horizon_steps") != horizon:
        raise ImportDppoError(
            f"{source}: {w}horizon_steps is {net['horizon_steps']} but model.horizon_steps is {horizon}"
        )

    notes: list[str] = []
    if cfg.get("act_steps") is not None:
        act_steps = _int(cfg["act_steps"], source, "act_steps")
    else:
        act_steps = horizon
        notes.append(f"config has no act_steps (a pre-training config?): act_steps set to horizon_steps = {horizon}")

    known = set(NETWORK_DIM_KEYS) | set(MLP_DEFAULTS if net_target == MLP_NET else UNET_DEFAULTS)
    unknown = sorted(set(net) - known)
    if unknown:
        raise ImportDppoError(
            f"{source}: {w[:-1]} ({net_target}) has parameters {unknown} that the reference v0.8 constructor does "
            "not take; the importer cannot tell how they change the network"
        )
    if net_target == MLP_NET:
        n = {**MLP_DEFAULTS, **net}
        if n["out_activation_type"] != "Identity":
            raise ImportDppoError(
                f"{source}: {w}out_activation_type {n['out_activation_type']!r} is not supported (dppo_robot's "
                "denoiser config has an identity output)"
            )
        den = DenoiserConfig(
            kind="mlp",
            mlp_dims=_dims(n["mlp_dims"], source, w + "mlp_dims"),
            time_dim=_int(n["time_dim"], source, w + "time_dim"),
            cond_mlp_dims=_dims(n["cond_mlp_dims"], source, w + "cond_mlp_dims", optional=True),
            residual_style=bool(n["residual_style"]),
            use_layernorm=bool(n["use_layernorm"]),
            activation_type=str(n["activation_type"]),
        )
    else:
        n = {**UNET_DEFAULTS, **net}
        den = DenoiserConfig(
            kind="unet1d",
            unet_dim=_int(n["dim"], source, w + "dim"),
            dim_mults=_dims(n["dim_mults"], source, w + "dim_mults"),
            kernel_size=_int(n["kernel_size"], source, w + "kernel_size"),
            n_groups=None if n["n_groups"] is None else _int(n["n_groups"], source, w + "n_groups"),
            diffusion_step_embed_dim=_int(n["diffusion_step_embed_dim"], source, w + "diffusion_step_embed_dim"),
            cond_predict_scale=bool(n["cond_predict_scale"]),
            smaller_encoder=bool(n["smaller_encoder"]),
            cond_mlp_dims=_dims(n["cond_mlp_dims"], source, w + "cond_mlp_dims", optional=True),
            activation_type=str(n["activation_type"]),
            groupnorm_eps=float(_num(n["groupnorm_eps"], source, w + "groupnorm_eps")),
        )

    K = _int(m["denoising_steps"], source, "model.denoising_steps")
    ddim_steps = None
    if m["use_ddim"]:
        ddim_steps = _int(_need(m, "ddim_steps", source, "model."), source, "model.ddim_steps")
    kp = 0
    if target in FINETUNE_MODELS:
        kp = _int(_need(model, "ft_denoising_steps", source, "model."), source, "model.ft_denoising_steps")
    elif target == DIFFUSION_EVAL:
        kp = _int(model.get("ft_denoising_steps") or 0, source, "model.ft_denoising_steps")

    eta = 1.0
    eta_target = None
    eta_range = (0.1, 1.0)
    eta_cfg = model.get("eta")
    if isinstance(eta_cfg, dict):
        eta_target = eta_cfg.get("_target_")
        if eta_target not in ETA_FIXED:
            raise ImportDppoError(
                f"{source}: model.eta._target_ {eta_target!r} is a state-dependent DDIM eta; dppo_robot's "
                f"DiffusionPolicy has one fixed scalar eta (supported: {', '.join(ETA_FIXED)})"
            )
        eta = float(_num(eta_cfg.get("base_eta", 0.5), source, "model.eta.base_eta"))
        eta_range = (
            float(_num(eta_cfg.get("min_eta", 0.1), source, "model.eta.min_eta")),
            float(_num(eta_cfg.get("max_eta", 1.0), source, "model.eta.max_eta")),
        )

    def std_floor(key: str) -> float:
        v = m[key]
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        notes.append(f"model.{key} is a schedule ({v!r}), not a number: recorded as the default 0.1")
        return 0.1

    diff = DiffusionConfig(
        denoising_steps=K,
        ddim_steps=ddim_steps,
        ft_denoising_steps=kp,
        denoised_clip_value=_num(m["denoised_clip_value"], source, "model.denoised_clip_value", optional=True),
        randn_clip_value=float(_num(m["randn_clip_value"], source, "model.randn_clip_value")),
        final_action_clip_value=_num(m["final_action_clip_value"], source, "model.final_action_clip_value", True),
        eps_clip_value=_num(m["eps_clip_value"], source, "model.eps_clip_value", optional=True),
        eta=eta,
        min_sampling_denoising_std=std_floor("min_sampling_denoising_std"),
        min_logprob_denoising_std=std_floor("min_logprob_denoising_std"),
    )
    pc = PolicyConfig(
        kind="diffusion",
        obs_dim=obs_dim,
        action_dim=action_dim,
        cond_steps=cond_steps,
        horizon_steps=horizon,
        act_steps=act_steps,
        denoiser=den,
        diffusion=diff,
    )
    try:
        pc.validate()
        den.validate()
        diff.validate()
    except ValueError as e:
        raise ImportDppoError(f"{source}: {e}") from None
    return ReferenceModel(pc, target, net_target, kp, eta_target, eta_range, notes)


# ----------------------------------------------------------------------------- checkpoint
def read_reference_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load(weights_only=True) of a reference checkpoint; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ImportDppoError(f"{path}: checkpoint file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for corrupt or non-weights-only files
        raise ImportDppoError(
            f"{path}: not loadable as a plain-tensor torch checkpoint (torch.load weights_only=True failed: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Reference DPPO checkpoints are dicts "
            "of tensors and ints; a file that needs arbitrary unpickling is refused"
        ) from None
    if not isinstance(raw, dict):
        raise ImportDppoError(f"{path}: expected a dict checkpoint, got {type(raw).__name__}")
    if raw.get("format") == "dppo_robot.checkpoint":
        raise ImportDppoError(f"{path}: this is a dppo_robot checkpoint; use `dppo-robot export` instead")
    for key in ("model", "ema"):
        if key in raw and not isinstance(raw[key], dict):
            raise ImportDppoError(f"{path}: '{key}' is a {type(raw[key]).__name__}, expected a state dict")
    if "model" not in raw and "ema" not in raw:
        raise ImportDppoError(
            f"{path}: no 'model' or 'ema' state dict (keys {sorted(map(str, raw))[:8]}); "
            "not a reference DPPO checkpoint"
        )
    return raw


def _strip(weights: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def _rename(key: str, kind: str, reverse: bool = False) -> str:
    for ref, ours in KEY_RENAMES[kind]:
        a, b = (ours, ref) if reverse else (ref, ours)
        if key.startswith(a):
            return b + key[len(a) :]
    return key


def _short(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_reference_weights(
    module: torch.nn.Module, weights: dict[str, Any], prefix: str, kind: str, source: str
) -> None:
    """Load reference weights (prefix already stripped) into module, strictly; errors list the keys."""
    bad = sorted(k for k, v in weights.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise ImportDppoError(f"{source}: entries {_short([prefix + k for k in bad])} are not tensors")
    renamed = {_rename(k, kind): v for k, v in weights.items()}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(renamed))
    unexpected = sorted(set(renamed) - set(expected))
    shapes = [
        f"{prefix}{_rename(k, kind, reverse=True)} {tuple(renamed[k].shape)} vs {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(renamed))
        if tuple(renamed[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {_short([prefix + _rename(k, kind, reverse=True) for k in missing])}")
        if unexpected:
            parts.append(f"unexpected keys: {_short([prefix + _rename(k, kind, reverse=True) for k in unexpected])}")
        if shapes:
            parts.append(f"shape mismatches (checkpoint vs config): {_short(shapes, 4)}")
        raise ImportDppoError(
            f"{source}: {prefix[:-1]} weights do not match the network the config describes; " + "; ".join(parts)
        )
    with torch.no_grad():
        module.load_state_dict({k: v.detach().to(torch.float32) for k, v in renamed.items()}, strict=True)


@dataclass
class ImportedPolicy:
    """A reference checkpoint rebuilt as our DiffusionPolicy, with what was used and why."""

    policy: DiffusionPolicy
    policy_config: PolicyConfig
    stage: str  # "pretrained" or "finetuned"
    weights: str  # which state dict the actor came from: "ema" or "model"
    metrics: dict[str, Any]
    notes: list[str]


def _counter(raw: dict) -> dict[str, Any]:
    out = {}
    for key in ("epoch", "itr"):
        v = raw.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[key] = int(v)
        elif isinstance(v, torch.Tensor) and v.numel() == 1:
            out[key] = int(v.item())
    return out


def build_reference_policy(raw: dict, ref: ReferenceModel, source: str) -> ImportedPolicy:
    """Our DiffusionPolicy holding the checkpoint's weights, actor/actor_ft as the reference evaluates them."""
    notes = list(ref.notes)
    kind = ref.policy_config.denoiser.kind
    model_sd = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    finetuned = any(k.startswith("actor_ft.") for k in model_sd)
    cfg = ref.policy_config
    if finetuned and "ema" not in raw:
        if ref.ft_denoising_steps < 1:
            why = (
                "its ft_denoising_steps is 0"
                if ref.model_target != DIFFUSION_MODEL
                else f"{DIFFUSION_MODEL} has no ft_denoising_steps"
            )
            raise ImportDppoError(
                f"{source}: a fine-tuned checkpoint (actor_ft.* keys) with a config whose model is "
                f"{ref.model_target} and {why}: the reference would evaluate only the frozen pre-trained copy. Pass "
                "the fine-tuning config of the run (PPODiffusion, with ft_denoising_steps) instead"
            )
        groups = sorted({k.split(".", 1)[0] for k in model_sd})
        extra = [g for g in groups if g not in FINETUNE_GROUPS]
        if extra:
            keys = sorted(k for k in model_sd if k.split(".", 1)[0] in extra)
            raise ImportDppoError(
                f"{source}: unexpected keys in the fine-tuning state dict: {_short(keys)} "
                f"(expected prefixes {', '.join(FINETUNE_GROUPS)})"
            )
        base = _strip(model_sd, "actor.")
        network = _strip(model_sd, "network.")
        if base and network:
            differ = sorted(set(base) ^ set(network)) or sorted(
                k for k in base if not torch.equal(base[k].detach().cpu(), network[k].detach().cpu())
            )
            if differ:
                raise ImportDppoError(
                    f"{source}: network.* and actor.* differ ({_short(differ)}); in the reference they are one "
                    "module, so this is not a reference fine-tuning checkpoint"
                )
        base_prefix = "actor." if base else "network."
        base = base or network
        if not base:
            raise ImportDppoError(f"{source}: fine-tuning checkpoint has actor_ft.* but no actor.* or network.* keys")
        policy = build_diffusion_policy(cfg)
        load_reference_weights(policy.actor, base, base_prefix, kind, source)
        assert policy.actor_ft is not None
        load_reference_weights(policy.actor_ft, _strip(model_sd, "actor_ft."), "actor_ft.", kind, source)
        if "eta.eta_logit" in model_sd and ref.eta_target is not None:
            logit = model_sd["eta.eta_logit"].detach().float().flatten()
            lo, hi = ref.eta_range
            etas = (0.5 * (torch.tanh(logit) + 1) * (hi - lo) + lo).tolist()
            if max(etas) - min(etas) > 1e-6:
                raise ImportDppoError(
                    f"{source}: eta.eta_logit gives per-dimension etas {etas}; one scalar is supported"
                )
            cfg.diffusion.eta = float(etas[0])
            policy.eta = float(etas[0])
        if any(k.startswith("critic.") for k in model_sd):
            notes.append("critic.* weights not imported (a bundle holds only the policy chain)")
        stage, weights = "finetuned", "model"
    else:
        if "ema" in raw:
            sd, weights = raw["ema"], "ema"
        else:
            sd, weights = model_sd, "model"
            notes.append("checkpoint has no 'ema' state dict: the 'model' weights were used")
        if any(k.startswith("actor_ft.") for k in sd):
            raise ImportDppoError(
                f"{source}: '{weights}' holds actor_ft.* keys next to an 'ema' state dict; unknown layout"
            )
        other = sorted(k for k in sd if not k.startswith("network."))
        if other:
            raise ImportDppoError(
                f"{source}: unexpected keys in the '{weights}' state dict: {_short(other)} (a pre-trained "
                "DiffusionModel holds only network.*)"
            )
        if ref.model_target == DIFFUSION_EVAL and ref.ft_denoising_steps:
            raise ImportDppoError(
                f"{source}: the config asks for {ref.ft_denoising_steps} fine-tuned steps but the checkpoint is "
                "pre-trained (no actor_ft.*)"
            )
        if ref.ft_denoising_steps:
            notes.append(
                f"pre-trained checkpoint with a fine-tuning config (K'={ref.ft_denoising_steps}): the reference "
                "initialises actor and actor_ft from these weights, so actor serves every step"
            )
        cfg.diffusion.ft_denoising_steps = 0
        policy = build_diffusion_policy(cfg)
        load_reference_weights(policy.actor, _strip(sd, "network."), "network.", kind, source)
        stage = "pretrained"
    return ImportedPolicy(policy.eval(), cfg, stage, weights, _counter(raw), notes)


# ----------------------------------------------------------------------------- normalisation
ROBOMIMIC_OBS_EPS = 1e-6
FURNITURE_OBS_CLIP = 5.0
NPZ_KEYS = ("obs_min", "obs_max", "action_min", "action_max")
PTH_KEYS = {
    "obs_min": "stats.observations.min",
    "obs_max": "stats.observations.max",
    "action_min": "stats.actions.min",
    "action_max": "stats.actions.max",
}


def load_reference_normalization(
    path: str | Path, task: TaskInfo, obs_dim: int, action_dim: int, notes: list[str] | None = None
) -> Normalization:
    """Normalization from normalization.npz (robomimic convention) or a LinearNormalizer .pth (furniture)."""
    path = Path(path)
    if not path.is_file():
        raise ImportDppoError(f"{path}: normalization file not found")
    is_npz = path.suffix == ".npz"
    if task.family == "robomimic" and not is_npz:
        raise ImportDppoError(
            f"{path}: robomimic policies use normalization.npz (obs_min, obs_max, ...), not {path.suffix}"
        )
    if task.family == "furniture" and is_npz:
        raise ImportDppoError(f"{path}: furniture policies use the LinearNormalizer normalization.pth, not .npz")
    arrays: dict[str, np.ndarray] = {}
    if is_npz:
        try:
            with np.load(path, allow_pickle=False) as data:
                for key in NPZ_KEYS:
                    if key not in data.files:
                        raise ImportDppoError(f"{path}: missing key '{key}' (has {sorted(data.files)})")
                    arrays[key] = np.asarray(data[key])
        except ImportDppoError:
            raise
        except Exception as e:
            raise ImportDppoError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
        file_keys = dict(zip(NPZ_KEYS, NPZ_KEYS))
        eps, clip = ROBOMIMIC_OBS_EPS, (1.0 if task.clamp_obs else None)
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ImportDppoError(
                f"{path}: not loadable as a LinearNormalizer state dict (torch.load weights_only=True failed: "
                f"{type(e).__name__})"
            ) from None
        if not isinstance(sd, dict):
            raise ImportDppoError(f"{path}: expected a LinearNormalizer state dict, got {type(sd).__name__}")
        for ours, key in PTH_KEYS.items():
            if key not in sd:
                raise ImportDppoError(f"{path}: missing key '{key}' (has {_short(sorted(map(str, sd)))})")
            v = sd[key]
            if not isinstance(v, torch.Tensor):
                raise ImportDppoError(f"{path}: '{key}' is a {type(v).__name__}, expected a tensor")
            arrays[ours] = v.detach().cpu().numpy()
        file_keys = PTH_KEYS
        eps, clip = 0.0, FURNITURE_OBS_CLIP
    for ours, dim in (
        ("obs_min", obs_dim),
        ("obs_max", obs_dim),
        ("action_min", action_dim),
        ("action_max", action_dim),
    ):
        a = arrays[ours]
        if a.shape != (dim,):
            raise ImportDppoError(f"{path}: '{file_keys[ours]}' has shape {a.shape}, expected ({dim},) from the config")
        if not np.all(np.isfinite(a)):
            raise ImportDppoError(f"{path}: '{file_keys[ours]}' has non-finite values")
    if task.family == "unknown" and notes is not None:
        notes.append(
            "normalisation convention taken from the file type: "
            + ("robomimic npz (eps 1e-6, no clip)" if is_npz else "LinearNormalizer (clip 5)")
        )
    try:
        return Normalization(
            arrays["obs_min"], arrays["obs_max"], arrays["action_min"], arrays["action_max"], eps, clip
        )
    except ValueError as e:
        raise ImportDppoError(f"{path}: {e}") from None


# ----------------------------------------------------------------------------- import
def _config_dict(config: str | Path, notes: list[str]) -> dict:
    try:
        return load_hydra_config(config, notes)
    except HydraConfigError as e:
        raise ImportDppoError(str(e)) from None


def import_dppo_checkpoint(
    checkpoint: str | Path,
    config: str | Path,
    normalization: str | Path,
    out_dir: str | Path,
    name: str | None = None,
    overwrite: bool = False,
    tolerance: float = 1e-4,
    control_hz: float | None = None,
) -> BundleManifest:
    """A reference DPPO checkpoint (+ its Hydra config and normalisation) -> a verified policy bundle."""
    checkpoint, config, normalization = Path(checkpoint), Path(config), Path(normalization)
    notes: list[str] = []
    cfg = _config_dict(config, notes)
    ref = reference_policy_config(cfg, str(config))
    raw = read_reference_checkpoint(checkpoint)
    try:
        imported = build_reference_policy(raw, ref, str(checkpoint))
    except ImportDppoError:
        raise
    except ValueError as e:  # network construction refused the dimensions
        raise ImportDppoError(f"{config}: {e}") from None
    notes += imported.notes
    pc = imported.policy_config
    task = identify_task(cfg)
    spec = io_spec_for(task, pc.obs_dim, pc.action_dim, control_hz, notes)
    norm = load_reference_normalization(normalization, task, pc.obs_dim, pc.action_dim, notes)
    prov = Provenance(
        source=str(checkpoint),
        source_format="dppo_reference",
        source_sha256=file_sha256(checkpoint),
        training_config=cfg,
        metrics={**imported.metrics, "stage": imported.stage, "actor_weights": imported.weights},
        notes=[
            f"config {config} (sha256 {file_sha256(config)})",
            f"normalization {normalization} (sha256 {file_sha256(normalization)})",
            f"task {task.family}/{task.task}",
            *notes,
        ],
    )
    return write_bundle(
        imported.policy, pc, spec, norm, out_dir, name or Path(out_dir).name, prov, tolerance, overwrite
    )


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="reference checkpoint state_<n>.pt ({epoch, model, ema} or {itr, model})")
    parser.add_argument("--config", required=True, help="the run's Hydra config (.hydra/config.yaml or the cfg file)")
    parser.add_argument(
        "--normalization", required=True, help="normalization.npz (robomimic) or normalization.pth (furniture)"
    )
    parser.add_argument("--out", required=True, help="bundle directory to write")
    parser.add_argument("--name", help="bundle name (default: the --out directory name)")
    parser.add_argument(
        "--control-hz",
        type=float,
        default=None,
        help=f"control rate for tasks without a known layout (default {DEFAULT_HZ:g}); must match a known task's rate",
    )
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="max ONNX-vs-torch action difference, env units (default 1e-4)"
    )


def _sampler_line(m: BundleManifest) -> str:
    s = m.sampler
    head = f"DDIM {s.ddim_steps} of {s.denoising_steps}" if s.type == "ddim" else f"DDPM {s.denoising_steps} steps"
    runs: list[str] = []
    for net in s.networks:
        if runs and runs[-1].startswith(net + " x"):
            runs[-1] = f"{net} x{int(runs[-1].rsplit('x', 1)[1]) + 1}"
        else:
            runs.append(f"{net} x1")
    return f"{head}; {', then '.join(runs)}"


def run(args: argparse.Namespace) -> int:
    if args.control_hz is not None and not (math.isfinite(args.control_hz) and args.control_hz > 0):
        raise ImportDppoError(f"--control-hz must be a positive number, got {args.control_hz}")
    m = import_dppo_checkpoint(
        args.checkpoint,
        args.config,
        args.normalization,
        args.out,
        name=args.name,
        overwrite=args.force,
        tolerance=args.tolerance,
        control_hz=args.control_hz,
    )
    v = m.provenance.verification
    diff = max(v.get("max_abs_diff", {}).values(), default=float("nan"))
    metrics = m.provenance.metrics
    counter = ", ".join(f"{k} {metrics[k]}" for k in ("epoch", "itr") if k in metrics)
    print(f"imported '{m.name}' ({metrics.get('stage')}{', ' + counter if counter else ''}, {m.denoiser})")
    print(f"  sampler:  {_sampler_line(m)}")
    shapes = f"obs {m.cond_steps}x{m.obs_dim} -> actions {m.horizon_steps}x{m.action_dim} (execute {m.act_steps})"
    print(f"  shapes:   {shapes}, {m.control_hz:g} Hz")
    print(f"  verified: ONNX vs torch max abs diff {diff:.2e} (tolerance {v.get('tolerance_env_units')})")
    for note in m.provenance.notes:
        if note.startswith("WARNING"):
            print(f"  {note}")
    print(f"  bundle:   {Path(args.out)}")
    return 0
