"""Small real runs on reach2d: scripted demos, BC, DPPO / Gaussian PPO (real env, real torch)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from dppo_robot.data.demonstrators import collect_demos
from dppo_robot.envs.registry import default_task_config
from dppo_robot.train.job_config import FinetuneConfig, PretrainConfig
from dppo_robot.train.pretrain import pretrain
from dppo_robot.typed_config import load_yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "reach2d"


def demos(tmp: Path, seed: int = 0, n: int = 300) -> Path:
    out = tmp / "demos"
    collect_demos(default_task_config("reach2d"), n, seed, out, keep="all", progress=False)
    return out


def pretrain_cfg(tmp: Path, demo_dir: Path, kind: str = "diffusion", seed: int = 0) -> PretrainConfig:
    cfg = load_yaml(PretrainConfig, CONFIGS / f"pretrain_{kind}.yaml")
    cfg.run_dir = str(tmp / f"pre_{kind}")
    cfg.dataset = str(demo_dir / "train.npz")
    cfg.normalization = str(demo_dir / "normalization.npz")
    cfg.seed = seed
    return cfg


def finetune_cfg(tmp: Path, checkpoint: Path, algorithm: str = "dppo", seed: int = 0) -> FinetuneConfig:
    name = "finetune_dppo" if algorithm == "dppo" else "finetune_gaussian"
    cfg = load_yaml(FinetuneConfig, CONFIGS / f"{name}.yaml")
    cfg.run_dir = str(tmp / name)
    cfg.checkpoint = str(checkpoint)
    cfg.seed = seed
    return cfg


def quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def pretrained(tmp: Path, kind: str = "diffusion", seed: int = 0) -> Path:
    return quiet(pretrain, pretrain_cfg(tmp, demos(tmp, seed), kind, seed))
