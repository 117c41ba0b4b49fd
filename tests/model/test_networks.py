import pytest
import torch

from dppo_robot.model.critic import CriticObs
from dppo_robot.model.diffusion_mlp import DiffusionMLP
from dppo_robot.model.gaussian_mlp import GaussianMLP
from dppo_robot.model.time_embedding import time_mlp
from tests.conftest import build_small


@pytest.mark.parametrize("kind", ["mlp", "residual_ln", "unet1d", "vit"])
def test_denoiser_shapes(kind):
    policy, cfg, spec, _ = build_small(kind)
    b = 3
    c = {"state": torch.randn(b, cfg.cond_steps, cfg.obs_dim)}
    if spec.cameras:
        cam = spec.cameras[0]
        c["images"] = {
            cam.name: torch.randint(0, 256, (b, cfg.cond_steps, 3, cam.height, cam.width), dtype=torch.uint8)
        }
    x = torch.randn(b, cfg.horizon_steps, cfg.action_dim)
    eps = policy.actor(x, torch.full((b,), 3.0), c)
    assert eps.shape == x.shape
    assert torch.isfinite(eps).all()


def test_reference_state_dict_names():
    """Key names follow the reference implementation so its checkpoints load unchanged."""
    net = DiffusionMLP(7, 4, 23, time_dim=32, mlp_dims=[64, 64, 64], cond_mlp_dims=[32, 16])
    keys = set(net.state_dict())
    for k in (
        "time_embedding.1.weight",
        "time_embedding.3.bias",
        "cond_mlp.moduleList.0.linear_1.weight",
        "mlp_mean.moduleList.0.linear_1.weight",
        "mlp_mean.moduleList.3.linear_1.bias",
    ):
        assert k in keys, k
    res = DiffusionMLP(10, 8, 58, mlp_dims=[64] * 7, residual_style=True, use_layernorm=True)
    keys = set(res.state_dict())
    for k in (
        "mlp_mean.layers.0.weight",
        "mlp_mean.layers.1.l1.weight",
        "mlp_mean.layers.1.norm1.weight",
        "mlp_mean.layers.3.l2.bias",
        "mlp_mean.layers.4.weight",
    ):
        assert k in keys, k


def test_time_embedding_is_sinusoidal():
    emb = time_mlp(8, 2)
    sin = emb[0](torch.tensor([0.0, 5.0]))
    half = 4
    freqs = torch.exp(torch.arange(half) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
    want = torch.cat([torch.sin(5.0 * freqs), torch.cos(5.0 * freqs)])
    assert torch.allclose(sin[1], want, atol=1e-6)
    assert torch.allclose(sin[0], torch.cat([torch.zeros(4), torch.ones(4)]))


def test_gaussian_policy_and_critic():
    g = GaussianMLP(7, 4, 23, mlp_dims=[32, 32], fixed_std=0.1, learn_fixed_std=True)
    c = {"state": torch.randn(5, 1, 23)}
    mean, std = g(c)
    assert mean.shape == std.shape == (5, 4, 7)
    assert torch.all(mean.abs() <= 1)
    assert torch.allclose(std, torch.full_like(std, 0.1))
    lp = g.log_prob(c, mean.detach())
    assert lp.shape[0] == 5
    v = CriticObs(23, [32, 32])(c)
    assert v.shape == (5, 1)
