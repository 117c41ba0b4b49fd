"""The learning is real: DPPO raises the success of a BC policy on a multimodal task.

reach2d (dppo_robot/envs/toy_multimodal.py): two ways around a wall; the scripted demonstrator
picks either and succeeds about 70% of the time, so BC on its data is mediocre. Each seed runs
the whole pipeline (demos -> BC -> DPPO) and evaluates 100 seeded episodes before and after.
"""

import json

import pytest

from dppo_robot.train.finetune import finetune
from tests.train.conftest import finetune_cfg, pretrained, quiet


def eval_rows(run_dir, name="eval"):
    with open(f"{run_dir}/{name}.jsonl") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dppo_raises_success_over_bc(tmp_path, seed):
    ckpt = pretrained(tmp_path, "diffusion", seed)
    cfg = finetune_cfg(tmp_path, ckpt, "dppo", seed)
    quiet(finetune, cfg)
    rows = eval_rows(cfg.run_dir)
    before, after = rows[0]["success_rate"], rows[-1]["success_rate"]
    assert rows[0]["itr"] == 0 and rows[-1]["itr"] == cfg.n_itr
    # 100 episodes each: the standard error of the difference is about 0.07, so 0.2 is ~3 SE
    assert after >= before + 0.2, f"seed {seed}: success {before:.2f} -> {after:.2f}"


def test_gaussian_ppo_runs_through_the_same_loop(tmp_path):
    ckpt = pretrained(tmp_path, "gaussian", 0)
    cfg = finetune_cfg(tmp_path, ckpt, "gaussian_ppo", 0)
    cfg.n_itr = 4
    cfg.eval.every = 2
    quiet(finetune, cfg)
    train = eval_rows(cfg.run_dir, "train")
    assert [r["itr"] for r in train] == [1, 2, 3, 4]
    assert all(r["episodes"] >= cfg.n_envs for r in train)  # every env finishes at least one episode
    assert train[-1]["actor_updated"] == 1 and train[0]["actor_updated"] == 0  # critic warm-up first
    assert [r["itr"] for r in eval_rows(cfg.run_dir)] == [0, 2, 4]
