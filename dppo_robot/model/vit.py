"""Small ViT image encoder and the pixel diffusion denoiser built on it.

Shapes: images[camera] uint8 [B, To, 3, H, W] (the last img_cond_steps frames are stacked
on channels), cond["state"] [B, To, Do] proprioception, x [B, Tp, Da] -> eps [B, Tp, Da].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dppo_robot.model.mlp import make_mlp
from dppo_robot.model.time_embedding import time_mlp


class RandomShift(nn.Module):
    """Random-shift augmentation (pad by replication, random crop back); identity in eval."""

    def __init__(self, pad: int = 4) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.pad == 0:
            return x
        b, _, h, w = x.shape
        padded = F.pad(x, (self.pad,) * 4, mode="replicate")
        dx = torch.randint(0, 2 * self.pad + 1, (b,), device=x.device)
        dy = torch.randint(0, 2 * self.pad + 1, (b,), device=x.device)
        c, p = x.shape[1], self.pad
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None]).view(b, 1, h, 1).expand(b, c, h, w + 2 * p)
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None]).view(b, 1, 1, w).expand(b, c, h, w)
        return padded.gather(2, rows).gather(3, cols)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"ViT embed_dim {dim} must be divisible by num_heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, d))


class _Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """[B, C, H, W] float in [0, 255] -> patch features [B, N, embed_dim]."""

    def __init__(
        self,
        in_channels: int,
        img_hw: tuple[int, int],
        patch: int = 8,
        embed_dim: int = 128,
        depth: int = 1,
        heads: int = 4,
    ) -> None:
        super().__init__()
        h, w = img_hw
        if h % patch or w % patch:
            raise ValueError(f"image size {h}x{w} must be divisible by patch size {patch}")
        self.num_patches = (h // patch) * (w // patch)
        self.embed_dim = embed_dim
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, kernel_size=patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.randn(1, self.num_patches, embed_dim) * 0.02)
        self.blocks = nn.Sequential(*[_Block(embed_dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(img / 255.0 - 0.5).flatten(2).transpose(1, 2)
        return self.norm(self.blocks(x + self.pos_embed))


class SpatialEmb(nn.Module):
    """Compress patch features with proprioception into one vector [B, proj_dim]."""

    def __init__(self, num_patches: int, patch_dim: int, prop_dim: int, proj_dim: int) -> None:
        super().__init__()
        self.input_proj = nn.Sequential(nn.Linear(num_patches + prop_dim, proj_dim), nn.LayerNorm(proj_dim), nn.ReLU())
        self.weight = nn.Parameter(torch.randn(1, patch_dim, proj_dim))

    def forward(self, feat: torch.Tensor, prop: torch.Tensor) -> torch.Tensor:
        feat = feat.transpose(1, 2)  # [B, embed_dim, N]
        feat = torch.cat([feat, prop.unsqueeze(1).expand(-1, feat.shape[1], -1)], dim=-1)
        return (self.weight * self.input_proj(feat)).sum(1)


class VisionDiffusionMLP(nn.Module):
    """Pixel denoiser: shared ViT over each camera, a spatial embedding per camera, MLP head."""

    def __init__(
        self,
        action_dim: int,
        horizon_steps: int,
        cond_dim: int,
        cameras: Sequence[str],
        img_hw: tuple[int, int] = (96, 96),
        img_cond_steps: int = 1,
        time_dim: int = 16,
        mlp_dims: Sequence[int] = (256, 256),
        residual_style: bool = False,
        use_layernorm: bool = False,
        activation_type: str = "Mish",
        patch: int = 8,
        embed_dim: int = 128,
        depth: int = 1,
        heads: int = 4,
        spatial_emb: int = 128,
        augment: bool = True,
    ) -> None:
        super().__init__()
        if not cameras:
            raise ValueError("VisionDiffusionMLP needs at least one camera")
        self.cameras = list(cameras)
        self.action_dim = action_dim
        self.horizon_steps = horizon_steps
        self.img_cond_steps = img_cond_steps
        self.backbone = ViTEncoder(3 * img_cond_steps, tuple(img_hw), patch, embed_dim, depth, heads)
        self.aug = RandomShift(4 if augment else 0)
        self.compress = nn.ModuleList(
            SpatialEmb(self.backbone.num_patches, embed_dim, cond_dim, spatial_emb) for _ in self.cameras
        )
        self.time_embedding = time_mlp(time_dim, 2)
        in_dim = time_dim + action_dim * horizon_steps + spatial_emb * len(self.cameras) + cond_dim
        self.mlp_mean = make_mlp(
            [in_dim, *mlp_dims, action_dim * horizon_steps],
            residual_style,
            activation_type=activation_type,
            use_layernorm=use_layernorm,
        )

    def encode(self, cond: dict) -> torch.Tensor:
        """Visual + proprio features [B, spatial_emb * n_cameras + To*Do]; reusable across steps."""
        state = cond["state"].reshape(cond["state"].shape[0], -1)
        feats = []
        for cam, compress in zip(self.cameras, self.compress):
            img = cond["images"][cam][:, -self.img_cond_steps :]
            b, t, c, h, w = img.shape
            img = self.aug(img.reshape(b, t * c, h, w).to(torch.float32))
            feats.append(compress(self.backbone(img), state))
        return torch.cat([*feats, state], dim=-1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        b = x.shape[0]
        feat = cond["features"] if "features" in cond else self.encode(cond)
        emb = self.time_embedding(t.reshape(b))
        out = self.mlp_mean(torch.cat([x.reshape(b, -1), emb, feat], dim=-1))
        return out.reshape(b, self.horizon_steps, self.action_dim)
