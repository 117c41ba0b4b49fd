"""Fine-tuning waits for the critic: the actor starts once its explained variance reaches the threshold,
or at the cap, and the log says what the gate saw."""

import json

from dppo_robot.train.finetune import finetune
from tests.train.conftest import finetune_cfg, pretrained, quiet


def test_actor_waits_for_the_critic_then_starts_at_the_cap(tmp_path):
    ckpt = pretrained(tmp_path, "diffusion", 0)
    cfg = finetune_cfg(tmp_path, ckpt, "dppo", 0)
    cfg.n_itr, cfg.n_envs, cfg.save_every = 4, 6, 4
    cfg.eval.every = 0
    cfg.ppo.batch_size = 200
    cfg.ppo.n_critic_warmup_itr = 1
    cfg.ppo.critic_warmup_ev_threshold = 0.999  # out of reach of a fresh critic in a few iterations
    cfg.ppo.max_critic_warmup_itr = 3
    quiet(finetune, cfg)
    with open(f"{cfg.run_dir}/train.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert [r["actor_updated"] for r in rows] == [0.0, 0.0, 0.0, 1.0]
    assert all(r["critic_ev_before_update"] < 0.999 for r in rows[:3])
    lrs = [r["actor_lr"] for r in rows]
    assert lrs[0] == lrs[1] == lrs[2]  # the actor's schedule waits with it
