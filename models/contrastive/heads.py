"""The contrastive-regression network: one projection head per modality, a fusion layer, a regressor.

As in the WRCR seed: each modality (e.g. MiniLM text 384, image statistics) goes through
``Linear(d, 1536) -> LeakyReLU -> Dropout -> Linear(1536, 128)``; the projections are
concatenated (2 modalities: 256) and fused by ``Linear(256, 64) -> LeakyReLU`` into the
fine-tuned embedding that the contrastive loss shapes; ``Linear(64, 1)`` regresses the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class HeadConfig:
    in_dims: tuple[int, ...]       # input width of each modality
    proj_hidden: int = 1536
    proj_dim: int = 128
    embed_dim: int = 64            # the fine-tuned embedding (penultimate layer)
    dropout: float = 0.1
    negative_slope: float = 0.01   # LeakyReLU

    def __post_init__(self) -> None:
        if not self.in_dims or min(self.in_dims) < 1:
            raise ValueError("HeadConfig.in_dims: one positive width per modality")
        if min(self.proj_hidden, self.proj_dim, self.embed_dim) < 1 or not 0 <= self.dropout < 1:
            raise ValueError("HeadConfig: widths must be >= 1 and 0 <= dropout < 1")


class ProjectionHead(nn.Module):
    """(B, d) -> (B, proj_dim): Linear -> LeakyReLU -> Dropout -> Linear."""

    def __init__(self, d_in: int, cfg: HeadConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, cfg.proj_hidden), nn.LeakyReLU(cfg.negative_slope),
                                 nn.Dropout(cfg.dropout), nn.Linear(cfg.proj_hidden, cfg.proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ContrastiveRegressionNet(nn.Module):
    """Modalities [(B, d_m)] -> (embedding (B, embed_dim), prediction (B,))."""

    def __init__(self, cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg
        self.projections = nn.ModuleList(ProjectionHead(d, cfg) for d in cfg.in_dims)
        self.fuse = nn.Sequential(nn.Linear(cfg.proj_dim * len(cfg.in_dims), cfg.embed_dim),
                                  nn.LeakyReLU(cfg.negative_slope))
        self.regressor = nn.Linear(cfg.embed_dim, 1)

    def embed(self, blocks: list[torch.Tensor]) -> torch.Tensor:
        if len(blocks) != len(self.projections):
            raise ValueError(f"expected {len(self.projections)} modality blocks, got {len(blocks)}")
        h = torch.cat([p(x) for p, x in zip(self.projections, blocks)], dim=-1)  # (B, M * proj_dim)
        return self.fuse(h)  # (B, embed_dim)

    def forward(self, blocks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.embed(blocks)  # (B, embed_dim)
        return z, self.regressor(z).squeeze(-1)  # (B, E), (B,)
