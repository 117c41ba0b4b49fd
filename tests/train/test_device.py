"""`device: auto | cpu | cuda` of the training jobs: validation, cpu == auto on a CPU-only machine,
and checkpoints written on a GPU load on the CPU.

The GPU itself is the hardware boundary: on a machine without one, a GPU-written checkpoint is
made by tagging the saved storages "cuda:0" as torch.save does for CUDA tensors.
"""

import json

import pytest
import torch
import yaml

from dppo_robot.checkpoint import load_checkpoint, save_checkpoint
from dppo_robot.data.demonstrators import collect_demos
from dppo_robot.envs.registry import default_task_config
from dppo_robot.model.policy_factory import build_policy
from dppo_robot.train.device import resolve_device
from dppo_robot.train.finetune import finetune
from dppo_robot.train.job_config import FinetuneConfig, PretrainConfig
from dppo_robot.train.pretrain import pretrain
from dppo_robot.typed_config import ConfigError, load_yaml
from tests.train.conftest import CONFIGS, finetune_cfg, pretrain_cfg, quiet

NO_CUDA = not torch.cuda.is_available()


def _small_demos(tmp):
    out = tmp / "demos"
    collect_demos(default_task_config("reach2d"), 30, 0, out, keep="all", progress=False)
    return out


def _small_pretrain(tmp, demo_dir, name, device):
    cfg = pretrain_cfg(tmp, demo_dir)
    cfg.run_dir = str(tmp / name)
    cfg.train_steps, cfg.save_every, cfg.log_every, cfg.batch_size = 20, 20, 10, 64
    cfg.eval.n_episodes, cfg.eval.n_envs = 4, 4
    cfg.device = device
    return quiet(pretrain, cfg)


def _small_finetune(tmp, ckpt, name, device):
    cfg = finetune_cfg(tmp, ckpt)
    cfg.run_dir = str(tmp / name)
    cfg.n_itr, cfg.n_envs, cfg.n_steps, cfg.save_every = 2, 8, 4, 1
    cfg.ppo.batch_size, cfg.ppo.update_epochs, cfg.ppo.n_critic_warmup_itr = 40, 2, 0
    cfg.eval.every, cfg.eval.n_episodes, cfg.eval.n_envs = 2, 4, 4
    cfg.device = device
    return quiet(finetune, cfg)


@pytest.mark.parametrize("cls,name", [(PretrainConfig, "pretrain_diffusion"), (FinetuneConfig, "finetune_dppo")])
def test_device_field_validates(tmp_path, cls, name):
    base = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    for ok in ("cpu", "auto"):
        p = tmp_path / f"{ok}.yaml"
        p.write_text(yaml.safe_dump({**base, "device": ok}))
        assert load_yaml(cls, p).device == ok
    assert load_yaml(cls, CONFIGS / f"{name}.yaml").device == "cpu"  # the default
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**base, "device": "gpu"}))
    with pytest.raises(ConfigError, match=r"bad\.yaml.*device.*'gpu'") as e:
        load_yaml(cls, bad)
    assert "\n" not in str(e.value)
    if NO_CUDA:
        cuda = tmp_path / "cuda.yaml"
        cuda.write_text(yaml.safe_dump({**base, "device": "cuda"}))
        with pytest.raises(ConfigError, match=r"cuda\.yaml: device: cuda requested but torch\.cuda\.is_available"):
            load_yaml(cls, cuda)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


@pytest.mark.skipif(not NO_CUDA, reason="auto is cuda on this machine")
def test_cpu_and_auto_give_identical_runs(tmp_path):
    demo_dir = _small_demos(tmp_path)
    pre = {d: load_checkpoint(_small_pretrain(tmp_path, demo_dir, f"pre_{d}", d)) for d in ("cpu", "auto")}
    for k, v in pre["cpu"].model.items():
        assert torch.equal(v, pre["auto"].model[k]), k
    for k, v in pre["cpu"].ema.items():
        assert torch.equal(v, pre["auto"].ema[k]), k
    ckpt = tmp_path / "pre_cpu" / "checkpoints" / "last.pt"
    ft = {d: load_checkpoint(_small_finetune(tmp_path, ckpt, f"ft_{d}", d)) for d in ("cpu", "auto")}
    assert ft["cpu"].step == ft["auto"].step == 2
    for part in ("model", "critic"):
        a, b = getattr(ft["cpu"], part), getattr(ft["auto"], part)
        for k, v in a.items():
            assert torch.equal(v, b[k]), f"{part}.{k}"
    assert "eval_success_rate" in ft["cpu"].metrics
    assert json.dumps(ft["cpu"].metrics, sort_keys=True) == json.dumps(ft["auto"].metrics, sort_keys=True)  # NaN == NaN


def test_checkpoint_written_on_a_gpu_loads_on_the_cpu(tmp_path, monkeypatch):
    demo_dir = _small_demos(tmp_path)
    ck = load_checkpoint(_small_pretrain(tmp_path, demo_dir, "pre", "cpu"))
    gpu_file = tmp_path / "gpu.pt"
    with monkeypatch.context() as m:
        # what torch.save records for tensors that live on the first GPU
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        save_checkpoint(ck, gpu_file)
    if NO_CUDA:  # the file really is tagged for the GPU: a plain load fails here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(gpu_file, weights_only=True)
    back = load_checkpoint(gpu_file)
    assert all(v.device.type == "cpu" for v in back.model.values())
    policy = build_policy(back.policy_config, back.io_spec)
    policy.load_state_dict(back.ema)
    for k, v in policy.state_dict().items():
        if k in ck.ema:
            assert torch.equal(v, ck.ema[k]), k
    # and fine-tuning starts from it (optimizer and RNG state included on resume)
    cfg = finetune_cfg(tmp_path, gpu_file)
    cfg.run_dir, cfg.n_itr, cfg.n_envs, cfg.n_steps = str(tmp_path / "ft"), 1, 4, 2
    cfg.ppo.batch_size, cfg.eval.every = 20, 0
    assert load_checkpoint(quiet(finetune, cfg)).step == 1


@pytest.mark.skipif(NO_CUDA, reason="needs a GPU")
def test_gpu_pretrain_and_finetune_then_load_on_cpu(tmp_path):
    demo_dir = _small_demos(tmp_path)
    pre = _small_pretrain(tmp_path, demo_dir, "pre_cuda", "cuda")
    ft = _small_finetune(tmp_path, pre, "ft_cuda", "cuda")
    ck = load_checkpoint(ft)
    assert ck.step == 2 and all(v.device.type == "cpu" for v in ck.model.values())
    assert torch.cuda.is_available() and "torch_cuda" in ck.extra["rng"]
    # the run resumes on the GPU from its own config
    cfg = load_yaml(FinetuneConfig, tmp_path / "ft_cuda" / "config.yaml")
    cfg.n_itr = 3
    assert load_checkpoint(quiet(finetune, cfg)).step == 3
