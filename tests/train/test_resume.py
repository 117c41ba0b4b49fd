"""Killing a fine-tuning job (SIGKILL, no chance to clean up) and resuming it continues from the
last checkpoint, and the resumed run is the run that was never interrupted."""

import json
import signal
import subprocess
import sys
import time

import yaml

from dppo_robot.train.finetune import finetune
from dppo_robot.typed_config import to_dict
from tests.train.conftest import finetune_cfg, pretrained, quiet

COMPARED = ("itr", "env_steps", "episodes", "train_success_rate", "train_return", "approx_kl", "explained_variance")


def rows(run_dir):
    with open(f"{run_dir}/train.jsonl") as f:
        return [json.loads(line) for line in f]


def test_kill_and_resume_continues_from_last_checkpoint(tmp_path):
    ckpt = pretrained(tmp_path, "diffusion", 0)
    cfg = finetune_cfg(tmp_path, ckpt, "dppo", 0)
    cfg.n_itr, cfg.n_envs, cfg.save_every = 6, 10, 1
    cfg.eval.every = 0
    cfg.ppo.batch_size = 200

    # the reference: the same job, uninterrupted, in this process
    ref_cfg = finetune_cfg(tmp_path, ckpt, "dppo", 0)
    for k in to_dict(cfg):
        setattr(ref_cfg, k, getattr(cfg, k))
    ref_cfg.run_dir = str(tmp_path / "uninterrupted")
    quiet(finetune, ref_cfg)

    cfg_path = tmp_path / "ft.yaml"
    cfg_path.write_text(yaml.safe_dump(to_dict(cfg)))
    cmd = [sys.executable, "-m", "dppo_robot", "finetune", str(cfg_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    jsonl = tmp_path / "finetune_dppo" / "train.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        # a row is logged before its checkpoint is saved: 4 rows mean iteration 3 was saved
        if jsonl.is_file() and len(jsonl.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the job finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    import torch

    saved = torch.load(tmp_path / "finetune_dppo" / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert 3 <= saved < cfg.n_itr
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"starting at itr {saved}/{cfg.n_itr}" in out.stdout

    got, want = rows(cfg.run_dir), rows(ref_cfg.run_dir)
    assert [r["itr"] for r in got] == list(range(1, cfg.n_itr + 1))  # nothing lost, nothing repeated
    for g, w in zip(got, want):
        assert {k: g[k] for k in COMPARED} == {k: w[k] for k in COMPARED}
