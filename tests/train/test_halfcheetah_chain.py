"""The HalfCheetah chain, end to end on real MuJoCo: PPO from scratch -> rollouts as a BC dataset
-> diffusion (and Gaussian) BC -> DPPO (and Gaussian PPO) -> evaluation and curves.

The smoke test runs every stage at a CI size (seconds) from configs/halfcheetah/*.yaml with the
sizes shrunk; the slow test runs the chain at a fixed small budget and checks that DPPO raises
the BC policy's average return (see test_dppo_raises_halfcheetah_return_over_bc).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dppo_robot.data.dataset import load_dataset, load_normalization_npz
from dppo_robot.data.halfcheetah_medium import MediumPPOConfig, collect, train
from dppo_robot.train import ppo_curves
from dppo_robot.train.evaluate import evaluate
from dppo_robot.train.finetune import finetune
from dppo_robot.train.job_config import EvaluateConfig, FinetuneConfig, PretrainConfig
from dppo_robot.train.pretrain import pretrain
from dppo_robot.typed_config import load_yaml
from tests.train.conftest import quiet

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "halfcheetah"


def make_data(tmp: Path, ppo_steps: int, episodes: int, seed: int = 0) -> tuple[Path, dict, dict]:
    """PPO from scratch for ppo_steps env steps, then `episodes` rollouts as train.npz."""
    summary = train(
        MediumPPOConfig(seed=seed, total_steps=ppo_steps, target_return=1e9), tmp / "medium", log=lambda s: None
    )
    report = collect(tmp / "medium" / "policy.pt", episodes, seed, tmp / "demos")
    return tmp / "demos", summary, report


def pretrain_cfg(tmp: Path, demo_dir: Path, kind: str, steps: int, seed: int = 0) -> PretrainConfig:
    cfg = load_yaml(PretrainConfig, CONFIGS / f"pretrain_{kind}.yaml")
    cfg.run_dir = str(tmp / f"pre_{kind}")
    cfg.dataset = str(demo_dir / "train.npz")
    cfg.normalization = str(demo_dir / "normalization.npz")
    cfg.seed = seed
    cfg.train_steps = steps
    cfg.ema_start_step = min(cfg.ema_start_step, steps // 2)
    cfg.save_every = cfg.log_every = max(1, steps // 2)
    return cfg


def finetune_cfg(tmp: Path, ckpt: Path, algorithm: str, seed: int, name: str | None = None) -> FinetuneConfig:
    file = "finetune_dppo" if algorithm == "dppo" else "finetune_gaussian"
    cfg = load_yaml(FinetuneConfig, CONFIGS / f"{file}.yaml")
    cfg.run_dir = str(tmp / (name or file))
    cfg.checkpoint = str(ckpt)
    cfg.seed = seed
    return cfg


def evaluate_cfg(ckpt: Path, out: Path, episodes: int) -> EvaluateConfig:
    cfg = load_yaml(EvaluateConfig, CONFIGS / "evaluate.yaml")
    cfg.policy = str(ckpt)
    cfg.out = str(out)
    cfg.eval.n_episodes = episodes
    cfg.eval.n_envs = min(cfg.eval.n_envs, episodes)
    return cfg


def test_halfcheetah_chain_smoke(tmp_path):
    """Every stage at CI size: the files, keys and curves the full campaign relies on."""
    demo_dir, summary, report = make_data(tmp_path, ppo_steps=2048, episodes=2)
    assert summary["env_steps"] == 2048 and report["episodes"] == 2
    ds = load_dataset(demo_dir / "train.npz")
    assert ds.traj_lengths.tolist() == [1000, 1000]
    assert ds.states.shape == (2000, 17) and ds.actions.shape == (2000, 6)
    # the reference layout: states/actions stored normalised to [-1, 1] with normalization.npz beside
    assert ds.states.min() >= -1 - 1e-4 and ds.states.max() <= 1 + 1e-4
    assert ds.actions.min() >= -1 - 1e-4 and ds.actions.max() <= 1 + 1e-4
    load_normalization_npz(demo_dir / "normalization.npz")

    runs = {}
    for kind, algorithm in (("diffusion", "dppo"), ("gaussian", "gaussian_ppo")):
        pcfg = pretrain_cfg(tmp_path, demo_dir, kind, steps=4)
        pcfg.task.max_episode_steps = 40  # its closing evaluation: one short episode
        pcfg.eval.n_episodes = pcfg.eval.n_envs = 1
        ckpt = quiet(pretrain, pcfg)
        cfg = finetune_cfg(tmp_path, ckpt, algorithm, 0)
        cfg.task.max_episode_steps = 40  # 10 chunks: episodes end inside the 2 iterations
        cfg.n_itr, cfg.n_envs, cfg.n_steps = 2, 2, 10
        cfg.ppo.batch_size = 50
        cfg.ppo.update_epochs = 1
        cfg.eval.every, cfg.eval.n_episodes, cfg.eval.n_envs = 2, 2, 2
        last = quiet(finetune, cfg)
        assert last.is_file()
        runs[algorithm] = ppo_curves.run_rows(cfg.run_dir)
        ecfg = evaluate_cfg(last, tmp_path / f"eval_{algorithm}", 2)
        ecfg.task.max_episode_steps = 40
        out = quiet(evaluate, ecfg)
        assert out["episodes"] == 2 and np.isfinite(out["mean_return"])
    for rows in runs.values():
        assert [r["itr"] for r in rows] == [0, 1, 2]  # the evaluation before training, then 2 iterations
        assert rows[-1]["env_steps"] == 2 * 2 * 10 * 4
        for key, _ in ppo_curves.PANELS:
            assert np.isfinite(rows[-1][key]), key
    png = ppo_curves.plot(runs, tmp_path / "curves.png")
    csv_path = ppo_curves.write_csv(runs, tmp_path / "curves.csv")
    assert png.stat().st_size > 0
    header = csv_path.read_text().splitlines()[0].split(",")
    assert header == ["algorithm", *ppo_curves.CSV_KEYS]


# The slow test's fixed budget (about 12 min on one shared core); the full campaign is
# scripts/halfcheetah_campaign.sh with configs/halfcheetah/ (docs/halfcheetah/README.md).
SLOW = {
    "ppo_steps": 100_000,  # PPO from scratch: a weak-but-running policy (return ~300), not the medium one
    "episodes": 10,  # its rollouts -> 10,000 BC transitions
    "bc_steps": 2000,
    "dppo_itr": 16,  # 16 x 5 envs x 1000 env steps = 80,000 env steps of DPPO per seed
    "eval_episodes": 10,
}
SEEDS = (0, 1, 2)  # DPPO seeds, all from the same BC start
# The gain the test asserts: the mean return over the seeds' 3 x 10 deterministic evaluation
# episodes must exceed the BC policy's (10 episodes, same start states) by at least MARGIN, with
# the 95% Welch interval of the difference above 0, and every seed's mean must rise. Pooled
# because a HalfCheetah policy occasionally flips onto its back (returns near 0 or below), which
# makes one seed's 10-episode interval wide: the first full run gained +173 [+108, +237],
# +123 [+34, +213] and +100 [-80, +279] (two flipped episodes) per seed.
MARGIN = 50.0


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_dppo_raises_halfcheetah_return_over_bc(tmp_path):
    demo_dir, _, _ = make_data(tmp_path, SLOW["ppo_steps"], SLOW["episodes"])
    ckpt = quiet(pretrain, pretrain_cfg(tmp_path, demo_dir, "diffusion", SLOW["bc_steps"]))
    quiet(evaluate, evaluate_cfg(ckpt, tmp_path / "eval_bc", SLOW["eval_episodes"]))
    before = ppo_curves.episode_returns(tmp_path / "eval_bc" / "evaluate.json")
    afters, lines = [], []
    for seed in SEEDS:
        cfg = finetune_cfg(tmp_path, ckpt, "dppo", seed, name=f"dppo_seed{seed}")
        cfg.n_itr, cfg.n_envs = SLOW["dppo_itr"], 5
        cfg.ppo.batch_size = 3125  # 5 envs x 250 chunks x K' 10 in 4 minibatches, as the config's 4
        cfg.eval.every = 0  # evaluated below by the evaluate job, on the same start states as the BC policy
        last = quiet(finetune, cfg)
        quiet(evaluate, evaluate_cfg(last, tmp_path / f"eval_dppo_seed{seed}", SLOW["eval_episodes"]))
        after = ppo_curves.episode_returns(tmp_path / f"eval_dppo_seed{seed}" / "evaluate.json")
        gain, lo, hi = ppo_curves.diff_ci(after, before)
        lines.append(
            f"seed {seed}: return {before.mean():.0f} -> {after.mean():.0f}, gain {gain:+.0f} [{lo:+.0f}, {hi:+.0f}]"
        )
        afters.append(after)
    pooled = np.concatenate(afters)
    gain, lo, hi = ppo_curves.diff_ci(pooled, before)
    lines.append(f"pooled: {before.mean():.0f} -> {pooled.mean():.0f}, gain {gain:+.0f} [{lo:+.0f}, {hi:+.0f}]")
    msg = "\n".join(lines)
    (tmp_path / "gains.txt").write_text(msg + "\n")
    assert gain >= MARGIN and lo > 0, msg
    assert all(a.mean() > before.mean() for a in afters), msg
