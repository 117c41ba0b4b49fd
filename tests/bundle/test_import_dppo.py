"""`dppo-robot import-dppo`: reference-layout checkpoints -> bundles that act like the reference.

Checkpoints here are built by hand from the reference's key names (model/common/mlp.py,
model/diffusion/mlp_diffusion.py, model/diffusion/unet.py, model/diffusion/diffusion_vpg.py
of irom-princeton/dppo v0.8), never through our own modules, so a naming mismatch fails.
The expected actions come from a small reimplementation, in this file, of the reference
evaluation sampler running on the raw state-dict tensors.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dppo_robot.bundle.hydra_config import load_hydra_config
from dppo_robot.bundle.import_dppo import (
    ImportDppoError,
    build_reference_policy,
    import_dppo_checkpoint,
    read_reference_checkpoint,
    reference_policy_config,
)
from dppo_robot.bundle.manifest import read_manifest
from dppo_robot.runtime.policy_runtime import PolicyRuntime, RuntimeConfig

ATOL = 1e-4  # environment units


# ----------------------------------------------------------------------------- reference-layout weights
def _linear(sd: dict, name: str, fan_in: int, fan_out: int, g: torch.Generator) -> None:
    sd[f"{name}.weight"] = torch.randn(fan_out, fan_in, generator=g) / math.sqrt(fan_in)
    sd[f"{name}.bias"] = 0.1 * torch.randn(fan_out, generator=g)


def _norm(sd: dict, name: str, dim: int, g: torch.Generator) -> None:
    sd[f"{name}.weight"] = 1 + 0.1 * torch.randn(dim, generator=g)
    sd[f"{name}.bias"] = 0.1 * torch.randn(dim, generator=g)


def diffusion_mlp_weights(
    seed: int,
    action_dim: int,
    horizon: int,
    cond_dim: int,
    time_dim: int,
    mlp_dims: list[int],
    cond_mlp_dims: list[int] | None = None,
    residual: bool = False,
    layernorm: bool = False,
) -> dict[str, torch.Tensor]:
    """State dict of the reference DiffusionMLP (no prefix), key by key."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    _linear(sd, "time_embedding.1", time_dim, 2 * time_dim, g)  # Sequential(SinusoidalPosEmb, Linear, Mish, Linear)
    _linear(sd, "time_embedding.3", 2 * time_dim, time_dim, g)
    cond_out = cond_dim
    if cond_mlp_dims:  # MLP: moduleList.i = Sequential(linear_1, act_1), no LayerNorm
        dims = [cond_dim, *cond_mlp_dims]
        for i in range(len(dims) - 1):
            _linear(sd, f"cond_mlp.moduleList.{i}.linear_1", dims[i], dims[i + 1], g)
        cond_out = cond_mlp_dims[-1]
    dims = [time_dim + action_dim * horizon + cond_out, *mlp_dims, action_dim * horizon]
    if residual:  # ResidualMLP: layers.0 Linear, layers.1..n TwoLayerPreActivationResNetLinear, Linear, act
        h = mlp_dims[0]
        _linear(sd, "mlp_mean.layers.0", dims[0], h, g)
        n_blocks = (len(mlp_dims) - 1) // 2
        for b in range(1, n_blocks + 1):
            _linear(sd, f"mlp_mean.layers.{b}.l1", h, h, g)
            _linear(sd, f"mlp_mean.layers.{b}.l2", h, h, g)
            if layernorm:
                _norm(sd, f"mlp_mean.layers.{b}.norm1", h, g)
                _norm(sd, f"mlp_mean.layers.{b}.norm2", h, g)
        _linear(sd, f"mlp_mean.layers.{n_blocks + 1}", h, dims[-1], g)
    else:  # MLP: moduleList.i = Sequential(linear_1, [norm_1 on hidden layers], act_1)
        for i in range(len(dims) - 1):
            _linear(sd, f"mlp_mean.moduleList.{i}.linear_1", dims[i], dims[i + 1], g)
            if layernorm and i < len(dims) - 2:
                _norm(sd, f"mlp_mean.moduleList.{i}.norm_1", dims[i + 1], g)
    return sd


def unet_weights(
    seed: int, action_dim: int, cond_dim: int, dsed: int, dim: int, dim_mults: list[int], kernel: int, n_groups: int
) -> dict[str, torch.Tensor]:
    """State dict of the reference Unet1D (cond_predict_scale, larger cond encoder), key by key."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    dims = [action_dim, *(dim * m for m in dim_mults)]
    in_out = list(itertools.pairwise(dims))
    cond_block = dsed + cond_dim
    _linear(sd, "time_mlp.1", dsed, 4 * dsed, g)
    _linear(sd, "time_mlp.3", 4 * dsed, dsed, g)

    def conv(name: str, ci: int, co: int, k: int, transpose: bool = False) -> None:
        shape = (ci, co, k) if transpose else (co, ci, k)
        sd[f"{name}.weight"] = torch.randn(*shape, generator=g) / math.sqrt(ci * k)
        sd[f"{name}.bias"] = 0.1 * torch.randn(co, generator=g)

    def conv_block(name: str, ci: int, co: int) -> None:  # block.0 Conv1d, .1 Rearrange, .2 GroupNorm, .3, .4 act
        conv(f"{name}.block.0", ci, co, kernel)
        _norm(sd, f"{name}.block.2", co, g)

    def res_block(name: str, ci: int, co: int) -> None:
        conv_block(f"{name}.blocks.0", ci, co)
        conv_block(f"{name}.blocks.1", co, co)
        cc = 2 * co
        _linear(sd, f"{name}.cond_encoder.0", cond_block, cc, g)
        _linear(sd, f"{name}.cond_encoder.2", cc, cc, g)
        _linear(sd, f"{name}.cond_encoder.4", cc, cc, g)
        if ci != co:
            conv(f"{name}.residual_conv", ci, co, 1)

    res_block("mid_modules.0", dims[-1], dims[-1])
    res_block("mid_modules.1", dims[-1], dims[-1])
    for i, (ci, co) in enumerate(in_out):
        res_block(f"down_modules.{i}.0", ci, co)
        res_block(f"down_modules.{i}.1", co, co)
        if i < len(in_out) - 1:
            conv(f"down_modules.{i}.2.conv", co, co, 3)
    for i, (ci, co) in enumerate(reversed(in_out[1:])):
        res_block(f"up_modules.{i}.0", 2 * co, ci)
        res_block(f"up_modules.{i}.1", ci, ci)
        if i < len(in_out) - 1:
            conv(f"up_modules.{i}.2.conv", ci, ci, 4, transpose=True)
    conv_block("final_conv.0", dim, dim)
    conv("final_conv.1", dim, action_dim, 1)
    return sd


def prefixed(prefix: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in sd.items()}


def finetune_state(base: dict, ft: dict, eta_logit: float | None = None) -> dict[str, torch.Tensor]:
    """PPODiffusion.state_dict(): network and actor are one module (same tensors), actor_ft, critic, eta."""
    g = torch.Generator().manual_seed(99)
    sd = {**prefixed("network.", base), **prefixed("actor.", base), **prefixed("actor_ft.", ft)}
    sd["critic.Q1.layers.0.weight"] = torch.randn(8, 4, generator=g)
    sd["critic.Q1.layers.0.bias"] = torch.randn(8, generator=g)
    if eta_logit is not None:
        sd["eta.eta_logit"] = torch.tensor([eta_logit])
    return sd


# ----------------------------------------------------------------------------- the reference sampler, restated
def ref_time_embedding(sd: dict, t: torch.Tensor, dim: int, prefix: str) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(torch.arange(half) * -(math.log(10000) / (half - 1)))
    arg = t.float()[:, None] * freqs[None]
    emb = torch.cat([arg.sin(), arg.cos()], dim=-1)
    emb = F.mish(F.linear(emb, sd[f"{prefix}.1.weight"], sd[f"{prefix}.1.bias"]))
    return F.linear(emb, sd[f"{prefix}.3.weight"], sd[f"{prefix}.3.bias"])


def ref_diffusion_mlp(sd: dict, net: dict, x: torch.Tensor, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """eps of the reference DiffusionMLP from raw tensors. net: the config's actor/network section."""
    b, tp, da = x.shape
    s = state.reshape(b, -1)
    cond_mlp = net.get("cond_mlp_dims")
    if cond_mlp:
        for i in range(len(cond_mlp)):
            s = F.linear(
                s, sd[f"cond_mlp.moduleList.{i}.linear_1.weight"], sd[f"cond_mlp.moduleList.{i}.linear_1.bias"]
            )
            if i < len(cond_mlp) - 1:
                s = F.mish(s)
    h = torch.cat([x.reshape(b, -1), ref_time_embedding(sd, t, net["time_dim"], "time_embedding"), s], dim=-1)
    dims = net["mlp_dims"]
    ln = net.get("use_layernorm", False)
    if net.get("residual_style"):
        h = F.linear(h, sd["mlp_mean.layers.0.weight"], sd["mlp_mean.layers.0.bias"])
        n_blocks = (len(dims) - 1) // 2
        for k in range(1, n_blocks + 1):
            p = f"mlp_mean.layers.{k}"
            r = F.layer_norm(h, (dims[0],), sd[f"{p}.norm1.weight"], sd[f"{p}.norm1.bias"], 1e-6) if ln else h
            r = F.linear(F.mish(r), sd[f"{p}.l1.weight"], sd[f"{p}.l1.bias"])
            r = F.layer_norm(r, (dims[0],), sd[f"{p}.norm2.weight"], sd[f"{p}.norm2.bias"], 1e-6) if ln else r
            r = F.linear(F.mish(r), sd[f"{p}.l2.weight"], sd[f"{p}.l2.bias"])
            h = h + r
        h = F.linear(h, sd[f"mlp_mean.layers.{n_blocks + 1}.weight"], sd[f"mlp_mean.layers.{n_blocks + 1}.bias"])
    else:
        n = len(dims) + 1
        for i in range(n):
            p = f"mlp_mean.moduleList.{i}"
            h = F.linear(h, sd[f"{p}.linear_1.weight"], sd[f"{p}.linear_1.bias"])
            if i < n - 1:
                if ln:
                    h = F.layer_norm(h, (dims[i],), sd[f"{p}.norm_1.weight"], sd[f"{p}.norm_1.bias"])
                h = F.mish(h)
    return h.view(b, tp, da)


def ref_schedule(K: int) -> dict[str, torch.Tensor]:
    steps = K + 1
    x = np.linspace(0, steps, steps)
    ac = np.cos(((x / steps) + 0.008) / 1.008 * np.pi * 0.5) ** 2
    ac = ac / ac[0]
    betas = torch.tensor(np.clip(1 - ac[1:] / ac[:-1], 0, 0.999), dtype=torch.float32)
    alphas = 1.0 - betas
    acp = torch.cumprod(alphas, 0)
    acp_prev = torch.cat([torch.ones(1), acp[:-1]])
    return {
        "acp": acp,
        "sqrt_recip": torch.sqrt(1.0 / acp),
        "sqrt_recipm1": torch.sqrt(1.0 / acp - 1),
        "logvar": torch.log(torch.clamp(betas * (1.0 - acp_prev) / (1.0 - acp), min=1e-20)),
        "c1": betas * torch.sqrt(acp_prev) / (1.0 - acp),
        "c2": (1.0 - acp_prev) * torch.sqrt(alphas) / (1.0 - acp),
    }


def ref_ddpm_eval(eps_for, x_T, noise, K, randn_clip, clip=1.0):
    """DiffusionModel/VPGDiffusion forward(deterministic=True) under DDPM; noise[:, i] is step i's draw."""
    s = ref_schedule(K)
    x = x_T
    for i, t in enumerate(reversed(range(K))):
        eps = eps_for(t)(x, torch.full((x.shape[0],), t, dtype=torch.long))
        x0 = (s["sqrt_recip"][t] * x - s["sqrt_recipm1"][t] * eps).clamp(-clip, clip)
        mu = s["c1"][t] * x0 + s["c2"][t] * x
        std = torch.zeros(()) if t == 0 else torch.exp(0.5 * s["logvar"][t]).clamp(min=1e-3)
        x = mu + std * noise[:, i].clamp(-randn_clip, randn_clip)
    return x


def ref_ddim_eval(eps_for, x_T, K, S, clip=1.0):
    """forward(deterministic=True) under DDIM ("uniform", eta 0)."""
    s = ref_schedule(K)
    ddim_t = torch.arange(S) * (K // S)
    a_all = s["acp"][ddim_t]
    a_prev_all = torch.cat([torch.ones(1), s["acp"][ddim_t[:-1]]])
    ddim_t, a_all, a_prev_all = ddim_t.flip(0), a_all.flip(0), a_prev_all.flip(0)
    x = x_T
    for i in range(S):
        t = int(ddim_t[i])
        eps = eps_for(i)(x, torch.full((x.shape[0],), t, dtype=torch.long))
        a, ap = a_all[i], a_prev_all[i]
        x0 = ((x - (1 - a) ** 0.5 * eps) / a**0.5).clamp(-clip, clip)
        eps = (x - a**0.5 * x0) / (1 - a) ** 0.5
        x = ap**0.5 * x0 + (1.0 - ap).sqrt() * eps
    return x


def run_bundle(out: Path, obs: np.ndarray, noise: np.ndarray) -> np.ndarray:
    rt = PolicyRuntime(out, RuntimeConfig(warmup_iters=0))
    return rt.predict(obs, noise=noise)


# ----------------------------------------------------------------------------- configs and files
FURNITURE_FT = """\
defaults:
  - _self_
hydra:
  run:
    dir: ${logdir}
_target_: agent.finetune.train_ppo_diffusion_agent.TrainPPODiffusionAgent
name: ${env_name}_ft_diffusion_mlp_ta${horizon_steps}_td${denoising_steps}_tdf${ft_denoising_steps}
logdir: ${oc.env:DPPO_LOG_DIR}/furniture-finetune/${name}/${now:%Y-%m-%d}_${now:%H-%M-%S}_${seed}
normalization_path: ${oc.env:DPPO_DATA_DIR}/furniture/${env.specific.furniture}_${env.specific.randomness}/norm.pth
seed: 42
device: cuda:0
env_name: ${env.specific.furniture}_${env.specific.randomness}_dim
obs_dim: 58
action_dim: 10
transition_dim: ${action_dim}
denoising_steps: 100
ft_denoising_steps: 5
cond_steps: 1
horizon_steps: 4
act_steps: 4
use_ddim: True
env:
  n_envs: 1000
  name: ${env_name}
  env_type: furniture
  max_episode_steps: 700
  specific:
    furniture: one_leg
    randomness: low
    normalization_path: ${normalization_path}
    act_steps: ${act_steps}
    sparse_reward: True
train:
  n_steps: ${eval:'round(${env.max_episode_steps} / ${act_steps})'}
  actor_lr: 1e-5
model:
  _target_: model.diffusion.diffusion_ppo.PPODiffusion
  gamma_denoising: 0.9
  clip_ploss_coef: 0.001
  randn_clip_value: 3
  min_sampling_denoising_std: 0.04
  use_ddim: ${use_ddim}
  ddim_steps: ${ft_denoising_steps}
  learn_eta: False
  eta:
    base_eta: 1
    input_dim: ${obs_dim}
    mlp_dims: [256, 256]
    action_dim: ${action_dim}
    min_eta: 0.1
    max_eta: 1.0
    _target_: model.diffusion.eta.EtaFixed
  network_path: ${oc.env:DPPO_LOG_DIR}/state_8000.pt
  actor:
    _target_: model.diffusion.mlp_diffusion.DiffusionMLP
    time_dim: 8
    mlp_dims: [32, 32, 32]
    cond_mlp_dims: [16, 8]
    use_layernorm: True
    residual_style: True
    cond_dim: ${eval:'${obs_dim} * ${cond_steps}'}
    horizon_steps: ${horizon_steps}
    transition_dim: ${transition_dim}
  critic:
    _target_: model.common.critic.CriticObs
    cond_dim: ${eval:'${obs_dim} * ${cond_steps}'}
    mlp_dims: [8, 8, 8]
    residual_style: True
  ft_denoising_steps: ${ft_denoising_steps}
  horizon_steps: ${horizon_steps}
  obs_dim: ${obs_dim}
  action_dim: ${action_dim}
  denoising_steps: ${denoising_steps}
  device: ${device}
"""

# cfg/furniture/eval/one_leg_low/eval_diffusion_mlp.yaml, shortened: the pre-trained policy under DDIM-5
FURNITURE_EVAL = """\
defaults:
  - _self_
_target_: agent.eval.eval_diffusion_agent.EvalDiffusionAgent
logdir: ${oc.env:DPPO_LOG_DIR}/furniture-eval/${now:%Y-%m-%d}_${seed}
seed: 42
env_name: ${env.specific.furniture}_${env.specific.randomness}_dim
obs_dim: 58
action_dim: 10
transition_dim: ${action_dim}
denoising_steps: 100
cond_steps: 1
horizon_steps: 4
act_steps: 4
use_ddim: True
ddim_steps: 5
n_steps: ${eval:'round(${env.max_episode_steps} / ${act_steps})'}
env:
  env_type: furniture
  max_episode_steps: 700
  specific:
    furniture: one_leg
    randomness: low
model:
  _target_: model.diffusion.diffusion.DiffusionModel
  predict_epsilon: True
  denoised_clip_value: 1.0
  randn_clip_value: 3
  use_ddim: ${use_ddim}
  ddim_steps: ${ddim_steps}
  network_path: ${oc.env:DPPO_LOG_DIR}/state_8000.pt
  network:
    _target_: model.diffusion.mlp_diffusion.DiffusionMLP
    time_dim: 8
    mlp_dims: [32, 32, 32]
    cond_mlp_dims: [16, 8]
    use_layernorm: True
    residual_style: True
    cond_dim: ${eval:'${obs_dim} * ${cond_steps}'}
    horizon_steps: ${horizon_steps}
    transition_dim: ${transition_dim}
  horizon_steps: ${horizon_steps}
  obs_dim: ${obs_dim}
  action_dim: ${action_dim}
  denoising_steps: ${denoising_steps}
  device: ${device}
device: cuda:0
"""

LIFT_FT = """\
defaults:
  - _self_
hydra:
  run:
    dir: ${logdir}
_target_: agent.finetune.train_ppo_diffusion_agent.TrainPPODiffusionAgent
name: ${env_name}_ft_diffusion_mlp_ta${horizon_steps}_td${denoising_steps}_tdf${ft_denoising_steps}
logdir: ${oc.env:DPPO_LOG_DIR}/robomimic-finetune/${name}/${now:%Y-%m-%d}_${now:%H-%M-%S}_${seed}
robomimic_env_cfg_path: cfg/robomimic/env_meta/${env_name}.json
normalization_path: ${oc.env:DPPO_DATA_DIR}/robomimic/${env_name}/normalization.npz
seed: 42
device: cuda:0
env_name: lift
obs_dim: 19
action_dim: 7
transition_dim: ${action_dim}
denoising_steps: 20
ft_denoising_steps: 10
cond_steps: 2
horizon_steps: 4
act_steps: 4
env:
  n_envs: 50
  name: ${env_name}
  max_episode_steps: 300
  wrappers:
    robomimic_lowdim:
      normalization_path: ${normalization_path}
      low_dim_keys: ['robot0_eef_pos',
                    'robot0_eef_quat',
                    'robot0_gripper_qpos',
                    'object']
    multi_step:
      n_obs_steps: ${cond_steps}
      n_action_steps: ${act_steps}
      max_episode_steps: ${env.max_episode_steps}
model:
  _target_: model.diffusion.diffusion_ppo.PPODiffusion
  gamma_denoising: 0.99
  clip_ploss_coef: 0.01
  randn_clip_value: 3
  min_sampling_denoising_std: 0.1
  min_logprob_denoising_std: 0.1
  network_path: ${oc.env:DPPO_LOG_DIR}/state_5000.pt
  actor:
    _target_: model.diffusion.mlp_diffusion.DiffusionMLP
    time_dim: 8
    mlp_dims: [32, 32, 32]
    residual_style: False
    cond_dim: ${eval:'${obs_dim} * ${cond_steps}'}
    horizon_steps: ${horizon_steps}
    transition_dim: ${transition_dim}
  critic:
    _target_: model.common.critic.CriticObs
    cond_dim: ${eval:'${obs_dim} * ${cond_steps}'}
    mlp_dims: [8, 8, 8]
  ft_denoising_steps: ${ft_denoising_steps}
  horizon_steps: ${horizon_steps}
  obs_dim: ${obs_dim}
  action_dim: ${action_dim}
  denoising_steps: ${denoising_steps}
  device: ${device}
"""

FURN_NET = {
    "time_dim": 8,
    "mlp_dims": [32, 32, 32],
    "cond_mlp_dims": [16, 8],
    "use_layernorm": True,
    "residual_style": True,
}
LIFT_NET = {"time_dim": 8, "mlp_dims": [32, 32, 32], "residual_style": False}


def furniture_weights(seed: int) -> dict[str, torch.Tensor]:
    return diffusion_mlp_weights(seed, 10, 4, 58, 8, [32, 32, 32], [16, 8], residual=True, layernorm=True)


def lift_weights(seed: int) -> dict[str, torch.Tensor]:
    return diffusion_mlp_weights(seed, 7, 4, 38, 8, [32, 32, 32])


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def furniture_normalizer(path: Path) -> dict[str, np.ndarray]:
    """LinearNormalizer().state_dict() layout: stats.<key>.min / max."""
    rng = np.random.default_rng(3)
    omin = rng.uniform(-1, 0, 58).astype(np.float32)
    amin = rng.uniform(-1, 0, 10).astype(np.float32)
    stats = {
        "obs_min": omin,
        "obs_max": omin + rng.uniform(0.5, 2, 58).astype(np.float32),
        "action_min": amin,
        "action_max": amin + rng.uniform(0.2, 1, 10).astype(np.float32),
    }
    torch.save(
        {
            "stats.observations.min": torch.from_numpy(stats["obs_min"]),
            "stats.observations.max": torch.from_numpy(stats["obs_max"]),
            "stats.actions.min": torch.from_numpy(stats["action_min"]),
            "stats.actions.max": torch.from_numpy(stats["action_max"]),
        },
        path,
    )
    return stats


def robomimic_normalization(path: Path, drop: str | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    omin = rng.uniform(-1, 0, 19)
    amin = rng.uniform(-1, 0, 7)
    stats = {
        "obs_min": omin,
        "obs_max": omin + rng.uniform(0.5, 2, 19),
        "action_min": amin,
        "action_max": amin + rng.uniform(0.2, 1, 7),
    }
    np.savez(path, **{k: v for k, v in stats.items() if k != drop})
    return stats


def furniture_obs_n(obs: np.ndarray, st: dict) -> torch.Tensor:
    """FurnitureRLSimEnvMultiStepWrapper.process_obs: LinearNormalizer then clamp +-5."""
    n = 2 * (torch.from_numpy(obs) - torch.from_numpy(st["obs_min"])) / torch.from_numpy(st["obs_max"] - st["obs_min"])
    return (n - 1).clamp(-5, 5).float()


def robomimic_obs_n(obs: np.ndarray, st: dict) -> torch.Tensor:
    """RobomimicLowdimWrapper.normalize_obs (clamp_obs off)."""
    return torch.from_numpy(2 * ((obs - st["obs_min"]) / (st["obs_max"] - st["obs_min"] + 1e-6) - 0.5)).float()


def denorm_action(a: torch.Tensor, st: dict) -> np.ndarray:
    return ((a.double().numpy() + 1) / 2) * (st["action_max"] - st["action_min"]) + st["action_min"]


# ----------------------------------------------------------------------------- (a) furniture DDIM fine-tuned
def test_furniture_ddim_finetuned_uses_actor_ft_for_every_step(tmp_path):
    base, ft = furniture_weights(1), furniture_weights(2)
    ckpt = tmp_path / "state_50.pt"
    torch.save({"itr": 50, "model": finetune_state(base, ft, eta_logit=math.inf)}, ckpt)  # atanh(1): base_eta 1
    cfg = write_text(tmp_path / "run" / ".hydra" / "config.yaml", FURNITURE_FT)
    st = furniture_normalizer(tmp_path / "normalization.pth")
    out = tmp_path / "one_leg_ft"

    m = import_dppo_checkpoint(ckpt, cfg, tmp_path / "normalization.pth", out)

    assert m.sampler.type == "ddim" and m.sampler.timesteps == [80, 60, 40, 20, 0]
    assert m.sampler.networks == ["actor_ft"] * 5
    assert m.sampler.noise_steps == 1
    assert m.normalization.obs_clip == 5.0 and m.normalization.obs_eps == 0.0
    assert (m.obs_dim, m.action_dim, m.horizon_steps, m.act_steps, m.control_hz) == (58, 10, 4, 4, 10.0)
    names = [s.name for s in m.obs_spec]
    assert names[:5] == ["ee_pos", "ee_rot_6d", "ee_lin_vel", "ee_ang_vel", "gripper_width"]
    assert "square_table_leg4_quat" in names and names[-1] == "obstacle_front_quat"
    assert sum(s.size for s in m.obs_spec) == 58 and all(s.frame == "base_tag" for s in m.obs_spec[5:])
    assert [s.name for s in m.action_spec] == ["ee_pos", "ee_rot_6d", "gripper"]
    assert m.provenance.source_format == "dppo_reference" and m.provenance.metrics["itr"] == 50
    assert m.provenance.training_config["model"]["actor"]["cond_dim"] == 58
    assert any("critic" in n for n in m.provenance.notes)

    rng = np.random.default_rng(0)
    span = st["obs_max"] - st["obs_min"]
    obs = (st["obs_min"] + rng.uniform(-0.2, 1.2, (6, 1, 58)) * span).astype(np.float32)
    obs[0, 0, :5] = st["obs_max"][:5] + 10 * span[:5]  # far outside: the +-5 clamp must act
    noise = rng.standard_normal((6, 1, 4, 10)).astype(np.float32)
    got = run_bundle(out, obs, noise)

    state = furniture_obs_n(obs, st)

    def expect(weights: dict) -> np.ndarray:
        net = lambda x, t: ref_diffusion_mlp(weights, FURN_NET, x, t, state)  # noqa: E731
        return denorm_action(ref_ddim_eval(lambda i: net, torch.from_numpy(noise[:, 0]), 100, 5), st)

    with torch.no_grad():
        np.testing.assert_allclose(got, expect(ft), atol=ATOL, rtol=0)
        assert np.abs(got - expect(base)).max() > 1e-2  # the frozen copy would act differently


# ----------------------------------------------------------------------------- (b) furniture pre-trained, EMA
def test_furniture_pretrained_uses_ema_weights(tmp_path):
    model_w, ema_w = furniture_weights(5), furniture_weights(6)
    ckpt = tmp_path / "state_8000.pt"
    torch.save({"epoch": 8000, "model": prefixed("network.", model_w), "ema": prefixed("network.", ema_w)}, ckpt)
    cfg = write_text(tmp_path / "eval.yaml", FURNITURE_EVAL)
    st = furniture_normalizer(tmp_path / "normalization.pth")
    out = tmp_path / "one_leg_pre"

    m = import_dppo_checkpoint(ckpt, cfg, tmp_path / "normalization.pth", out, name="one-leg-pretrained")

    assert m.name == "one-leg-pretrained"
    assert m.sampler.networks == ["actor"] * 5 and m.sampler.ft_denoising_steps == 0
    assert m.provenance.metrics["epoch"] == 8000 and m.provenance.metrics["actor_weights"] == "ema"

    rng = np.random.default_rng(1)
    obs = (st["obs_min"] + rng.uniform(0, 1, (4, 1, 58)) * (st["obs_max"] - st["obs_min"])).astype(np.float32)
    noise = rng.standard_normal((4, 1, 4, 10)).astype(np.float32)
    got = run_bundle(out, obs, noise)
    state = furniture_obs_n(obs, st)

    def expect(weights: dict) -> np.ndarray:
        net = lambda x, t: ref_diffusion_mlp(weights, FURN_NET, x, t, state)  # noqa: E731
        return denorm_action(ref_ddim_eval(lambda i: net, torch.from_numpy(noise[:, 0]), 100, 5), st)

    with torch.no_grad():
        np.testing.assert_allclose(got, expect(ema_w), atol=ATOL, rtol=0)
        assert np.abs(got - expect(model_w)).max() > 1e-2


# ----------------------------------------------------------------------------- (c) robomimic DDPM, K' < K, via the CLI
def test_robomimic_ddpm_finetuned_splits_actor_and_actor_ft(tmp_path, capsys):
    from dppo_robot.cli import main

    base, ft = lift_weights(11), lift_weights(12)
    ckpt = tmp_path / "state_300.pt"
    torch.save({"itr": 300, "model": finetune_state(base, ft)}, ckpt)
    cfg = write_text(tmp_path / "lift_ft.yaml", LIFT_FT)
    st = robomimic_normalization(tmp_path / "normalization.npz")
    out = tmp_path / "lift_ft"

    rc = main(["import-dppo", str(ckpt), "--config", str(cfg), "--normalization", str(tmp_path / "normalization.npz"),
               "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0
    assert (
        "DDPM 20 steps; actor x10, then actor_ft x10" in printed and str(out) in printed and "max abs diff" in printed
    )

    m = read_manifest(out)
    assert m.sampler.type == "ddpm" and m.sampler.networks == ["actor"] * 10 + ["actor_ft"] * 10
    assert m.sampler.noise_steps == 21 and m.sampler.randn_clip_value == 3.0
    assert m.normalization.obs_eps == pytest.approx(1e-6) and m.normalization.obs_clip is None
    # the same slice names as our simulated lift task, so the bundle passes check_compatible against it
    from dppo_robot.envs.registry import default_task_config, task_io_spec

    assert [s.name for s in m.obs_spec] == [s.name for s in task_io_spec(default_task_config("lift")).obs]
    assert [s.name for s in m.obs_spec][:3] == ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
    assert sum(s.size for s in m.obs_spec) == 19 and m.control_hz == 20.0 and m.cond_steps == 2
    assert [s.name for s in m.action_spec] == ["delta_pos", "delta_rot", "gripper"]

    rng = np.random.default_rng(2)
    obs = (st["obs_min"] + rng.uniform(-0.1, 1.1, (5, 2, 19)) * (st["obs_max"] - st["obs_min"])).astype(np.float32)
    noise = (1.6 * rng.standard_normal((5, 21, 4, 7))).astype(np.float32)  # some draws beyond the +-3 clip
    got = run_bundle(out, obs, noise)
    state = robomimic_obs_n(obs.astype(np.float64), st)

    def expect(early: dict, late: dict) -> np.ndarray:
        def net_of(weights: dict):
            return lambda x, t: ref_diffusion_mlp(weights, LIFT_NET, x, t, state)

        early_net, late_net = net_of(early), net_of(late)

        def eps_for(t: int):  # VPGDiffusion.p_mean_var: actor_ft where t < K' (the last K' steps)
            return late_net if t < 10 else early_net

        x_T, steps = torch.from_numpy(noise[:, 0]), torch.from_numpy(noise[:, 1:])
        return denorm_action(ref_ddpm_eval(eps_for, x_T, steps, 20, randn_clip=3.0), st)

    with torch.no_grad():
        np.testing.assert_allclose(got, expect(base, ft), atol=ATOL, rtol=0)
        assert np.abs(got - expect(ft, base)).max() > 1e-2  # swapping which copy serves which steps matters
        assert np.abs(got - expect(base, base)).max() > 1e-2


# ----------------------------------------------------------------------------- UNet: reference down/up module keys
def test_unet_reference_keys_load(tmp_path):
    text = (
        FURNITURE_FT.replace("horizon_steps: 4\n", "horizon_steps: 8\n", 1)
        .replace("act_steps: 4\n", "act_steps: 8\n", 1)
        .replace(
            """    _target_: model.diffusion.mlp_diffusion.DiffusionMLP
    time_dim: 8
    mlp_dims: [32, 32, 32]
    cond_mlp_dims: [16, 8]
    use_layernorm: True
    residual_style: True
    cond_dim: ${eval:'${obs_dim} * ${cond_steps}'}
    horizon_steps: ${horizon_steps}
""",
            """    _target_: model.diffusion.unet.Unet1D
    diffusion_step_embed_dim: 8
    dim: 8
    dim_mults: [1, 2]
    kernel_size: 5
    n_groups: 4
    smaller_encoder: False
    cond_predict_scale: True
    groupnorm_eps: 1e-4
    cond_dim: ${eval:'${obs_dim} * ${cond_steps}'}
""",
        )
    )
    assert "Unet1D" in text
    cfg_path = write_text(tmp_path / "unet.yaml", text)
    base, ft = (unet_weights(s, 10, 58, 8, 8, [1, 2], 5, 4) for s in (21, 22))
    assert any(k.startswith("down_modules.0.0.blocks.0.block.0") for k in base)
    ckpt = tmp_path / "state_1.pt"
    torch.save({"itr": 1, "model": finetune_state(base, ft, eta_logit=math.inf)}, ckpt)
    furniture_normalizer(tmp_path / "normalization.pth")

    ref = reference_policy_config(load_hydra_config(cfg_path), str(cfg_path))
    imported = build_reference_policy(read_reference_checkpoint(ckpt), ref, str(ckpt))
    net = imported.policy.actor_ft
    assert torch.equal(net.down_modules[0][0].blocks[0].block[0].weight, ft["down_modules.0.0.blocks.0.block.0.weight"])
    assert torch.equal(net.up_modules[0][2].conv.weight, ft["up_modules.0.2.conv.weight"])
    assert torch.equal(imported.policy.actor.final_conv[1].weight, base["final_conv.1.weight"])
    assert {m.eps for m in net.modules() if isinstance(m, torch.nn.GroupNorm)} == {1e-4}

    m = import_dppo_checkpoint(ckpt, cfg_path, tmp_path / "normalization.pth", tmp_path / "unet_bundle")
    assert m.denoiser == "unet1d" and m.sampler.networks == ["actor_ft"] * 5 and m.horizon_steps == 8


# ----------------------------------------------------------------------------- refusals
@pytest.fixture
def lift_files(tmp_path):
    ckpt = tmp_path / "state_300.pt"
    torch.save({"itr": 300, "model": finetune_state(lift_weights(11), lift_weights(12))}, ckpt)
    robomimic_normalization(tmp_path / "normalization.npz")
    return ckpt, tmp_path / "normalization.npz"


def _import_with(tmp_path, ckpt, norm, config_text):
    cfg = write_text(tmp_path / "cfg.yaml", config_text)
    return cfg, lambda: import_dppo_checkpoint(ckpt, cfg, norm, tmp_path / "out")


def test_refuses_vision_network(tmp_path, lift_files):
    text = LIFT_FT.replace(
        "model.diffusion.mlp_diffusion.DiffusionMLP", "model.diffusion.mlp_diffusion.VisionDiffusionMLP"
    )
    cfg, go = _import_with(tmp_path, *lift_files, text)
    with pytest.raises(ImportDppoError) as e:
        go()
    assert str(cfg) in str(e.value) and "VisionDiffusionMLP" in str(e.value) and "pixel policies" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_refuses_learned_eta(tmp_path, lift_files):
    text = LIFT_FT.replace("  gamma_denoising: 0.99\n", "  gamma_denoising: 0.99\n  learn_eta: True\n")
    _, go = _import_with(tmp_path, *lift_files, text)
    with pytest.raises(ImportDppoError, match="learn_eta is true"):
        go()


def test_refuses_unknown_model_target(tmp_path, lift_files):
    text = LIFT_FT.replace(
        "model.diffusion.diffusion_ppo.PPODiffusion", "model.diffusion.diffusion_fancy.FancyDiffusion"
    )
    _, go = _import_with(tmp_path, *lift_files, text)
    with pytest.raises(ImportDppoError, match=r"FancyDiffusion' is not a reference diffusion policy class"):
        go()


def test_refuses_code_in_eval_and_does_not_run_it(tmp_path, lift_files):
    marker = tmp_path / "PWNED"
    text = LIFT_FT.replace(
        "cond_dim: ${eval:'${obs_dim} * ${cond_steps}'}\n    horizon_steps",
        f"cond_dim: ${{eval:\"__import__('os').system('touch {marker}')\"}}\n    horizon_steps",
    )
    cfg, go = _import_with(tmp_path, *lift_files, text)
    with pytest.raises(ImportDppoError) as e:
        go()
    assert str(cfg) in str(e.value) and "__import__" in str(e.value) and "not allowed" in str(e.value)
    assert not marker.exists()


def test_refuses_missing_normalization_key(tmp_path, lift_files):
    ckpt, _ = lift_files
    bad = tmp_path / "bad" / "normalization.npz"
    bad.parent.mkdir()
    robomimic_normalization(bad, drop="action_max")
    cfg = write_text(tmp_path / "cfg.yaml", LIFT_FT)
    with pytest.raises(ImportDppoError) as e:
        import_dppo_checkpoint(ckpt, cfg, bad, tmp_path / "out")
    assert str(bad) in str(e.value) and "missing key 'action_max'" in str(e.value)


def test_refuses_normalization_of_the_wrong_shape(tmp_path, lift_files):
    ckpt, _ = lift_files
    pth = tmp_path / "normalization.pth"
    furniture_normalizer(pth)  # 58 obs dims, a furniture file
    cfg = write_text(tmp_path / "cfg.yaml", LIFT_FT)
    with pytest.raises(ImportDppoError, match="robomimic policies use normalization.npz"):
        import_dppo_checkpoint(ckpt, cfg, pth, tmp_path / "out")
    furn_cfg = write_text(tmp_path / "furn.yaml", FURNITURE_FT)
    torch.save({"itr": 1, "model": finetune_state(furniture_weights(1), furniture_weights(2))}, tmp_path / "f.pt")
    sd = torch.load(pth, weights_only=True)
    sd["stats.actions.max"] = sd["stats.actions.max"][:7]
    torch.save(sd, pth)
    with pytest.raises(ImportDppoError) as e:
        import_dppo_checkpoint(tmp_path / "f.pt", furn_cfg, pth, tmp_path / "out")
    assert str(pth) in str(e.value) and "'stats.actions.max' has shape (7,), expected (10,)" in str(e.value)


def test_refuses_state_dict_key_mismatch(tmp_path, lift_files):
    _, norm = lift_files
    ft = lift_weights(12)
    ft["mlp_mean.moduleList.9.linear_1.weight"] = ft.pop("mlp_mean.moduleList.3.linear_1.weight")
    ckpt = tmp_path / "renamed.pt"
    torch.save({"itr": 1, "model": finetune_state(lift_weights(11), ft)}, ckpt)
    cfg = write_text(tmp_path / "cfg.yaml", LIFT_FT)
    with pytest.raises(ImportDppoError) as e:
        import_dppo_checkpoint(ckpt, cfg, norm, tmp_path / "out")
    msg = str(e.value)
    assert str(ckpt) in msg and "actor_ft weights do not match" in msg
    assert "missing keys: actor_ft.mlp_mean.moduleList.3.linear_1.weight" in msg
    assert "unexpected keys: actor_ft.mlp_mean.moduleList.9.linear_1.weight" in msg


def test_refuses_weights_of_another_shape(tmp_path, lift_files):
    ckpt, norm = lift_files
    cfg = write_text(
        tmp_path / "cfg.yaml",
        LIFT_FT.replace("mlp_dims: [32, 32, 32]\n    residual", "mlp_dims: [32, 16, 32]\n    residual"),
    )
    with pytest.raises(
        ImportDppoError,
        match=r"shape mismatches .*actor.mlp_mean.moduleList.1.linear_1.weight \(32, 32\) vs \(16, 32\)",
    ):
        import_dppo_checkpoint(ckpt, cfg, norm, tmp_path / "out")


def test_refuses_finetuned_checkpoint_with_a_pretraining_config(tmp_path, lift_files):
    ckpt, norm = lift_files
    text = LIFT_FT.replace(
        "model.diffusion.diffusion_ppo.PPODiffusion", "model.diffusion.diffusion.DiffusionModel"
    ).replace("  actor:\n", "  network:\n")
    _, go = _import_with(tmp_path, ckpt, norm, text)
    with pytest.raises(ImportDppoError, match="fine-tuned checkpoint .* only the frozen pre-trained copy"):
        go()


def test_cli_reports_refusals_as_errors(tmp_path, lift_files, capsys):
    from dppo_robot.cli import main

    ckpt, norm = lift_files
    cfg = write_text(tmp_path / "cfg.yaml", LIFT_FT.replace("  gamma_denoising: 0.99\n", "  learn_eta: True\n"))
    rc = main(
        ["import-dppo", str(ckpt), "--config", str(cfg), "--normalization", str(norm), "--out", str(tmp_path / "o")]
    )
    assert rc == 2 and "learn_eta" in capsys.readouterr().err


# ----------------------------------------------------------------------------- task identification
def test_unknown_task_gets_a_generic_spec_with_a_warning(tmp_path):
    text = (
        FURNITURE_FT.replace("  env_type: furniture\n", "")
        .replace("    furniture: one_leg\n", "    robot: custom\n")
        .replace("${env.specific.furniture}_${env.specific.randomness}", "custom")
    )
    cfg = write_text(tmp_path / "custom.yaml", text)
    torch.save({"itr": 7, "model": finetune_state(furniture_weights(1), furniture_weights(2))}, tmp_path / "c.pt")
    furniture_normalizer(tmp_path / "normalization.pth")
    m = import_dppo_checkpoint(tmp_path / "c.pt", cfg, tmp_path / "normalization.pth", tmp_path / "b", control_hz=15)
    assert [s.name for s in m.obs_spec] == ["obs"] and [s.name for s in m.action_spec] == ["action"]
    assert m.control_hz == 15.0
    assert any(n.startswith("WARNING") and "generic IO spec" in n for n in m.provenance.notes)
    assert m.normalization.obs_clip == 5.0  # convention from the .pth file type


def test_control_rate_must_match_a_known_task(tmp_path, lift_files):
    ckpt, norm = lift_files
    cfg = write_text(tmp_path / "cfg.yaml", LIFT_FT)
    with pytest.raises(ImportDppoError, match="runs at 20 Hz; --control-hz 10 disagrees"):
        import_dppo_checkpoint(ckpt, cfg, norm, tmp_path / "out", control_hz=10)
