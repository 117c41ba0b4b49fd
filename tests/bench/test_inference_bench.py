"""`dppo-robot bench inference`: quick runs on tiny configurations, and the FLOP counter against hand counts."""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import pytest
import torch
from torch import nn

from dppo_robot.bench import inference
from dppo_robot.bench.configs import CONFIG_NAMES, BenchConfig, get_config, synthetic_normalization
from dppo_robot.bench.flops import chain_cost, count_flops
from dppo_robot.bench.machine_floor import floor_ms
from dppo_robot.io_spec import CameraSpec, IOSpec
from dppo_robot.model.policy_config import DenoiserConfig, DiffusionConfig, PolicyConfig

ROW_KEYS = {
    "config",
    "method",
    "threads",
    "batch",
    "p50_ms",
    "p99_ms",
    "mean_ms",
    "flops",
    "weight_bytes",
    "floor_ms",
    "n_iters",
    "max_abs_diff_vs_torch",
}


def tiny_ddpm_mlp() -> BenchConfig:
    """DDPM K=6 with K'=3: actor serves the first 3 steps, actor_ft the last 3, with noise."""
    cfg = PolicyConfig(
        obs_dim=5,
        action_dim=3,
        cond_steps=2,
        horizon_steps=4,
        act_steps=2,
        denoiser=DenoiserConfig(
            kind="mlp", mlp_dims=[32, 32, 32], time_dim=8, cond_mlp_dims=[16, 8], residual_style=True
        ),
        diffusion=DiffusionConfig(denoising_steps=6, ft_denoising_steps=3, randn_clip_value=3.0),
    )
    spec = IOSpec.generic(5, 3, 10.0)
    return BenchConfig("tiny_ddpm_mlp", "tiny", cfg, spec, synthetic_normalization(5, 3, seed=0, obs_eps=1e-6), seed=0)


def tiny_ddim_vit() -> BenchConfig:
    cfg = PolicyConfig(
        obs_dim=4,
        action_dim=2,
        cond_steps=1,
        horizon_steps=4,
        act_steps=4,
        denoiser=DenoiserConfig(
            kind="vit_mlp",
            mlp_dims=[32, 32, 32],
            time_dim=8,
            residual_style=True,
            embed_dim=16,
            spatial_emb=8,
            vit_heads=2,
            patch_size=8,
            augment=False,
        ),
        diffusion=DiffusionConfig(denoising_steps=10, ddim_steps=5, ft_denoising_steps=2),
    )
    spec = IOSpec.generic(4, 2, 10.0)
    spec.cameras = [CameraSpec("cam", 16, 16)]
    return BenchConfig("tiny_ddim_vit", "tiny", cfg, spec, synthetic_normalization(4, 2, seed=1, obs_clip=5.0), seed=1)


MACHINE = {
    "gemm_gflops": {"1": 50.0, "2": 90.0},
    "gemv_gflops": {"1": 10.0, "2": 10.0},
    "bandwidth_gbps": {"1": 20.0, "2": 30.0},
}


def test_quick_benchmark_rows_agree_and_are_consistent():
    configs = [tiny_ddpm_mlp(), tiny_ddim_vit()]
    rows = inference.run_benchmark(configs, threads=[1, 2], iters=3, warmup=1, machine=MACHINE, quick=True)
    assert len(rows) == 2 * 2 * 3
    assert {(r["config"], r["threads"], r["method"]) for r in rows} == {
        (c.name, n, m) for c in configs for n in (1, 2) for m in inference.METHODS
    }
    for r in rows:
        assert set(r) >= ROW_KEYS, ROW_KEYS - set(r)
        assert r["batch"] == 1
        assert r["flops"] > 0 and r["weight_bytes"] > 0 and r["floor_ms"] > 0
        assert 0 < r["p50_ms"] <= r["p99_ms"]
        assert r["n_iters"] == 3
        assert r["max_abs_diff_vs_torch"] < 1e-4, r
    ddpm = [r for r in rows if r["config"] == "tiny_ddpm_mlp"]
    assert {r["network_evals"] for r in ddpm} == {6}
    # both copies serve steps, so both count
    policy = configs[0].build()
    both = sum(p.numel() * 4 for p in policy.parameters())
    assert ddpm[0]["weight_bytes"] == both
    table = inference.format_table(rows).splitlines()
    assert len(table) == 2 + len(rows) and len(inference._cells(rows[0])) == len(inference.TABLE_COLUMNS)
    assert inference.notes_for(rows) == [] or all("not faster" in n for n in inference.notes_for(rows))


def test_per_step_runner_selects_actor_and_actor_ft():
    """actor_ft differs from actor, so a loop that used one network throughout would disagree."""
    bc = tiny_ddpm_mlp()
    policy = bc.build()
    assert any(not torch.equal(a, b) for a, b in zip(policy.actor.parameters(), policy.actor_ft.parameters()))
    graphs = inference.export_step_graphs(bc, policy)
    assert graphs["nets"] == ["actor"] * 3 + ["actor_ft"] * 3
    runner = inference.PerStepRunner(graphs, policy, bc.norm, threads=1)
    from dppo_robot.bundle.onnx_chain import example_inputs
    from dppo_robot.model.env_units import sample_env_units

    obs, noise, images = example_inputs(policy, bc.norm, bc.spec, bc.policy.cond_steps, batch=3, seed=5)
    np.testing.assert_allclose(
        runner(obs, noise, images), sample_env_units(policy, bc.norm, obs, noise, images), atol=1e-4
    )


def test_cli_writes_json(tmp_path):
    parser = argparse.ArgumentParser()
    inference.add_arguments(parser)
    out = tmp_path / "sub" / "inference.json"
    args = parser.parse_args(["--quick", "--configs", "square_vit", "--threads", "1", "--out", str(out)])
    assert args.configs == ["square_vit"]
    assert inference.run(args) == 0
    doc = json.loads(out.read_text())
    assert set(doc) >= {"machine", "rows", "created_utc", "notes"}
    m = doc["machine"]
    assert m["cpu_model"] and m["torch"] and m["onnxruntime"]
    assert m["gemm_gflops"]["1"] > 0 and m["bandwidth_gbps"]["1"] > 0
    assert [r["method"] for r in doc["rows"]] == list(inference.METHODS)
    for r in doc["rows"]:
        assert r["config"] == "square_vit" and r["threads"] == 1
        assert r["max_abs_diff_vs_torch"] < 1e-4
        assert r["p50_ms"] <= r["p99_ms"] and r["floor_ms"] > 0 and r["flops"] > 0
    assert not list(out.parent.glob(".*tmp*"))


def test_defaults():
    parser = argparse.ArgumentParser()
    inference.add_arguments(parser)
    args = parser.parse_args([])
    assert args.configs == list(CONFIG_NAMES) and len(CONFIG_NAMES) == 4
    assert args.threads == [1, 2] and str(args.out) == "reports/bench/inference.json"
    with pytest.raises(SystemExit):
        parser.parse_args(["--configs", "nope"])


def test_flop_count_of_linear_mlp_matches_hand_formula():
    dims = [7, 64, 33, 5]
    mlp = nn.Sequential(*[nn.Linear(a, b) for a, b in itertools.pairwise(dims)])
    for batch in (1, 4):
        with torch.inference_mode():
            flops = count_flops(mlp, torch.randn(batch, dims[0]))
        assert flops == sum(2 * a * b * batch for a, b in itertools.pairwise(dims))


def test_chain_cost_of_reference_mlp_matches_hand_formula():
    """square_mlp: 20 DDPM steps of the same-sized network, 2 x params-in-linears FLOPs per step."""
    bc = get_config("square_mlp")
    policy = bc.build()
    cost = chain_cost(policy, bc.norm, bc.spec, bc.policy.cond_steps)
    linears = [m for m in policy.actor.modules() if isinstance(m, nn.Linear)]
    per_eval = sum(2 * m.in_features * m.out_features for m in linears)
    assert cost.network_evals == 20
    assert cost.flops == 20 * per_eval
    actor_bytes = sum(p.numel() * 4 for p in policy.actor.parameters())
    assert cost.weight_bytes == 2 * actor_bytes  # actor (10 steps) + actor_ft (10 steps)
    assert cost.weight_bytes_read == 20 * actor_bytes


def test_floor_is_the_slower_bound():
    assert floor_ms(2e9, 0, 100.0, 10.0) == pytest.approx(20.0)
    assert floor_ms(0, 1e9, 100.0, 10.0) == pytest.approx(100.0)
    assert floor_ms(2e9, 1e9, 100.0, 10.0) == pytest.approx(100.0)
