"""A checkpoint of the wrong kind is a one-line C.CheckpointError, not a load_state_dict traceback
(issue 18, finding 10). Real torch modules and files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dppo_robot import checkpoint as C  # module access: the file collects on older code too
from dppo_robot.model.policy_factory import build_policy
from tests.conftest import build_small

REPO = Path(__file__).resolve().parents[1]


def _save(tmp_path: Path, ft: int, job: str) -> tuple[Path, object]:
    policy, cfg, spec, norm = build_small("mlp", ft=ft)
    path = tmp_path / f"{job}.pt"
    C.save_checkpoint(C.PolicyCheckpoint(cfg, spec, norm, policy.state_dict(), train_config={"job": job}), path)
    return path, cfg


def test_fine_tune_checkpoint_where_pre_training_resumes(tmp_path):
    ft_path, ft_cfg = _save(tmp_path, ft=2, job="finetune")
    pre_path, pre_cfg = _save(tmp_path, ft=0, job="pretrain")
    assert C.load_checkpoint(pre_path, job="pretrain", policy_config=pre_cfg).step == 0
    with pytest.raises(C.CheckpointError, match="written by a 'finetune' job, expected a 'pretrain' checkpoint") as e:
        C.load_checkpoint(ft_path, job="pretrain")
    assert str(e.value).startswith(str(ft_path)) and "\n" not in str(e.value)
    with pytest.raises(C.CheckpointError, match="its policy_config differs from the expected one .*ft_denoising_steps"):
        C.load_checkpoint(ft_path, policy_config=pre_cfg)


def test_load_weights_of_another_kind_is_one_line(tmp_path):
    ft_path, _ = _save(tmp_path, ft=2, job="finetune")
    _, pre_cfg, spec, _ = build_small("mlp", ft=0)
    module = build_policy(pre_cfg, spec)
    ck = C.load_checkpoint(ft_path)
    with pytest.raises(
        C.CheckpointError, match="field 'model' does not fit this DiffusionPolicy \\(missing .*unexpected"
    ):
        C.load_weights(module, ck.model, ft_path)
    bigger = {k: torch.zeros(*v.shape[:-1], v.shape[-1] + 1) if v.ndim else v for k, v in module.state_dict().items()}
    with pytest.raises(C.CheckpointError, match="tensor shapes differ; size mismatch for") as e:
        C.load_weights(module, bigger, ft_path)
    assert "\n" not in str(e.value)
    with pytest.raises(C.CheckpointError, match="field 'ema' is not a state dict"):
        C.load_weights(module, [1, 2], ft_path, "ema")


def test_export_of_a_checkpoint_with_a_non_dict_model_is_one_line(tmp_path):
    policy, cfg, spec, norm = build_small("mlp")
    path = tmp_path / "odd.pt"
    C.save_checkpoint(C.PolicyCheckpoint(cfg, spec, norm, [1, 2, 3]), path)  # type: ignore[arg-type]
    r = subprocess.run(
        [sys.executable, "-m", "dppo_robot", "export", str(path), "--out", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 2 and "field 'model' is not a state dict" in r.stderr and "Traceback" not in r.stderr
