"""A run directory belongs to one config; a rerun with nothing checkpointed starts a clean log;
divergence stops a job with an error instead of a NaN checkpoint (issue 18, findings 5 and 6)."""

import json

import pytest

from dppo_robot.train.divergence import TrainingDivergedError
from dppo_robot.train.finetune import finetune
from dppo_robot.train.run_dir import RunDir
from dppo_robot.typed_config import ConfigError
from tests.train.conftest import finetune_cfg, pretrained, quiet


def test_rerun_without_checkpoint_starts_a_clean_log_and_another_config_is_refused(tmp_path):
    ckpt = pretrained(tmp_path, "diffusion", 0)
    cfg = finetune_cfg(tmp_path, ckpt, "dppo", 0)
    cfg.n_itr, cfg.n_envs, cfg.save_every = 2, 4, 50
    cfg.eval.every = 0
    cfg.ppo.batch_size = 100
    quiet(finetune, cfg)
    run = RunDir(cfg.run_dir)
    assert run.last.is_file()
    run.last.unlink()  # as if killed before any checkpoint
    for p in run.ckpt_dir.glob("*.pt"):
        p.unlink()
    quiet(finetune, cfg)
    rows = [json.loads(line) for line in (run.path / "train.jsonl").read_text().splitlines()]
    assert [r["itr"] for r in rows] == [1, 2]  # not 1, 2, 1, 2
    for p in run.ckpt_dir.glob("*.pt"):
        p.unlink()
    cfg.ppo.actor_lr *= 2  # a different job in the same folder, nothing checkpointed
    with pytest.raises(ConfigError, match="another config"):
        quiet(finetune, cfg)


def test_first_iteration_is_checkpointed_whatever_save_every_says(tmp_path, monkeypatch):
    import dppo_robot.train.finetune as ft

    ckpt = pretrained(tmp_path, "diffusion", 0)
    cfg = finetune_cfg(tmp_path, ckpt, "dppo", 0)
    cfg.n_itr, cfg.n_envs, cfg.save_every = 3, 4, 5
    cfg.eval.every = 0
    cfg.ppo.batch_size = 100
    written = []
    real = ft.save_checkpoint

    def recording(ck, path):  # the real save, with a note of which iteration it was
        written.append((ck.step, path.name))
        return real(ck, path)

    monkeypatch.setattr(ft, "save_checkpoint", recording)
    quiet(finetune, cfg)
    assert ("last.pt" in [n for s, n in written if s == 1]) and written[-1][0] == 3  # a kill at itr 2 keeps itr 1


def test_diverged_pretraining_stops_with_an_error_and_no_nan_checkpoint(tmp_path):
    from dppo_robot.train.pretrain import pretrain
    from tests.train.conftest import demos, pretrain_cfg

    cfg = pretrain_cfg(tmp_path, demos(tmp_path, 0), "diffusion", 0)
    cfg.lr, cfg.min_lr = 1e12, 1e-5
    with pytest.raises(TrainingDivergedError, match="diverged"):
        quiet(pretrain, cfg)
    assert not RunDir(cfg.run_dir).last.is_file() or _finite(RunDir(cfg.run_dir).last)


def _finite(path) -> bool:
    import torch

    ck = torch.load(path, weights_only=True)
    return all(bool(torch.isfinite(v).all()) for v in ck["model"].values() if v.is_floating_point())


def test_resume_from_a_wrong_kind_last_pt_is_a_one_line_error(tmp_path):
    import shutil

    from dppo_robot.checkpoint import CheckpointError

    ckpt = pretrained(tmp_path, "diffusion", 0)
    cfg = finetune_cfg(tmp_path, ckpt, "dppo", 0)
    cfg.n_itr, cfg.n_envs = 1, 4
    cfg.eval.every = 0
    cfg.ppo.batch_size = 100
    quiet(finetune, cfg)
    shutil.copy(ckpt, RunDir(cfg.run_dir).last)  # a pre-training checkpoint where the fine-tune's belongs
    cfg.n_itr = 2
    with pytest.raises(CheckpointError) as e:
        quiet(finetune, cfg)
    assert "\n" not in str(e.value) and "last.pt" in str(e.value)
