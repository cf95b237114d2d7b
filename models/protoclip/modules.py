"""The prototype-CLIP network: adapters, prototype summaries, cross-modal attention, two heads.

Per modality m (image, text; one or both):
    x_m (B, d_m) --Linear--> (B, D) --Adapter--> f_m (B, D)
The class prototypes of m (C, d_m) go through the same projection + adapter (so they are
"adapted" with the samples) and give the prototype summary s_m (B, D): the prototypes averaged
with softmax weights of their cosine similarity to f_m. The tokens [f_m..., s_m...] (B, N, D)
plus a learned type embedding per token go through one pre-LayerNorm attention block
(nn.MultiheadAttention, batch_first) and are mean-pooled into the fused vector q (B, D).
    penultimate  h = GELU(Linear(q)) (B, P)  -> regression head Linear(P, 1) -> (B,)
    classifier   logits = scale * cos(q, K) (B, C), K (C, D) = normalised sum of the adapted
                 prototypes of every modality (+ projected prompt features when prompts are on);
                 without prototypes K is a learned class embedding.
``scale`` = exp(logit_scale), CLIP's learnable temperature (init 1/0.07, capped at 100).
Classes without a train row are masked out of the summaries and of the logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

NEG = -1e4  # logit of a masked class (finite: a fully masked row stays NaN-free)


@dataclass(frozen=True)
class ProtoClipConfig:
    in_dims: tuple[int, ...]         # width of each modality's (standardised) input
    n_classes: int = 0               # C; 0 = no classification proxy (and no prototypes)
    dim: int = 128                   # D: shared width of features, prototypes and attention tokens
    adapter_reduction: int = 4       # adapter bottleneck D // reduction
    adapter_ratio: float = 0.2       # CLIP-Adapter's residual mixing ratio
    heads: int = 4
    penultimate: int = 32            # P: the feature table's width
    dropout: float = 0.1
    use_prototypes: bool = True
    prompt_dim: int = 0              # width of prompt text features; 0 = no prompts
    init_temperature: float = 0.07

    def __post_init__(self) -> None:
        if not self.in_dims or min(self.in_dims) < 1:
            raise ValueError("ProtoClipConfig.in_dims: one positive width per modality")
        if min(self.dim, self.penultimate, self.heads, self.adapter_reduction) < 1 or self.dim % self.heads:
            raise ValueError("ProtoClipConfig: positive widths and dim divisible by heads")
        if not 0 <= self.adapter_ratio <= 1 or not 0 <= self.dropout < 1 or self.n_classes < 0:
            raise ValueError("ProtoClipConfig: 0 <= adapter_ratio <= 1, 0 <= dropout < 1, n_classes >= 0")

    @property
    def prototypes_on(self) -> bool:
        return self.use_prototypes and self.n_classes > 0


class Adapter(nn.Module):
    """(..., D) -> (..., D): ratio * bottleneck MLP(x) + (1 - ratio) * x (CLIP-Adapter)."""

    def __init__(self, dim: int, reduction: int, ratio: float):
        super().__init__()
        hidden = max(1, dim // reduction)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.ratio = ratio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ratio * self.mlp(x) + (1.0 - self.ratio) * x


class ModalityEncoder(nn.Module):
    """(..., d_in) -> (..., D): Linear projection then Adapter; shared by samples and prototypes."""

    def __init__(self, d_in: int, cfg: ProtoClipConfig):
        super().__init__()
        self.proj = nn.Linear(d_in, cfg.dim)
        self.adapter = Adapter(cfg.dim, cfg.adapter_reduction, cfg.adapter_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.proj(x))


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, D), (C, D) -> (B, C) cosine similarities."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def prototype_summary(f: torch.Tensor, protos: torch.Tensor, present: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(B, D) features, (C, D) adapted prototypes, (C,) bool -> (B, D) similarity-weighted prototype mean."""
    w = (scale * cosine(f, protos)).masked_fill(~present, NEG).softmax(dim=-1)  # (B, C)
    return w @ F.normalize(protos, dim=-1)


class CrossModalFusion(nn.Module):
    """(B, N, D) tokens -> (B, D): type embeddings, pre-LN self-attention + MLP block, mean pool."""

    def __init__(self, n_tokens: int, cfg: ProtoClipConfig):
        super().__init__()
        self.type_embed = nn.Parameter(torch.zeros(n_tokens, cfg.dim))
        self.ln1, self.ln2, self.ln_out = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.attn = nn.MultiheadAttention(cfg.dim, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, 2 * cfg.dim), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(2 * cfg.dim, cfg.dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens + self.type_embed  # (B, N, D)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.ln2(x))
        return self.ln_out(x).mean(dim=1)  # (B, D)


class ProtoClipNet(nn.Module):
    """Modalities [(B, d_m)] -> (penultimate h (B, P), prediction (B,), logits (B, C) or None).

    ``set_prototypes`` loads the fixed class prototypes (C, d_m) per modality (train rows only,
    see ``models.protoclip.prototypes``); ``prompts`` is an optional ``PromptLearner``.
    """

    def __init__(self, cfg: ProtoClipConfig, prompts: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        M, C, D = len(cfg.in_dims), cfg.n_classes, cfg.dim
        self.encoders = nn.ModuleList(ModalityEncoder(d, cfg) for d in cfg.in_dims)
        self.fusion = CrossModalFusion(2 * M if cfg.prototypes_on else M, cfg)
        self.penultimate = nn.Sequential(nn.Linear(D, cfg.penultimate), nn.GELU())
        self.regressor = nn.Linear(cfg.penultimate, 1)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))
        for m, d in enumerate(cfg.in_dims):
            self.register_buffer(f"proto_{m}", torch.zeros(C, d))
        self.register_buffer("present", torch.ones(C, dtype=torch.bool))
        self.class_embed = nn.Parameter(torch.randn(C, D) * D ** -0.5) if C and not cfg.prototypes_on else None
        self.prompts = prompts if C and cfg.prompt_dim else None
        self.prompt_proj = nn.Linear(cfg.prompt_dim, D) if self.prompts is not None else None

    def set_prototypes(self, protos: list[torch.Tensor], present: torch.Tensor) -> None:
        """[(C, d_m)] prototype inputs (already at sample scale) and (C,) bool classes with train rows."""
        for m, p in enumerate(protos):
            getattr(self, f"proto_{m}").copy_(p)
        self.present.copy_(present)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(100.0)).exp()

    def class_keys(self, adapted: list[torch.Tensor]) -> torch.Tensor:
        """(C, D) class keys for the logits."""
        keys = sum(F.normalize(p, dim=-1) for p in adapted) if adapted else self.class_embed
        if self.prompts is not None:
            keys = keys + F.normalize(self.prompt_proj(self.prompts()), dim=-1)  # (C, E) -> (C, D)
        return keys

    def forward(self, blocks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if len(blocks) != len(self.encoders):
            raise ValueError(f"expected {len(self.encoders)} modality blocks, got {len(blocks)}")
        feats = [enc(x) for enc, x in zip(self.encoders, blocks)]  # M x (B, D)
        adapted = [enc(getattr(self, f"proto_{m}")) for m, enc in enumerate(self.encoders)] \
            if self.cfg.prototypes_on else []  # M x (C, D)
        scale = self.scale()
        summaries = [prototype_summary(f, p, self.present, scale) for f, p in zip(feats, adapted)]
        q = self.fusion(torch.stack(feats + summaries, dim=1))  # (B, N, D) -> (B, D)
        h = self.penultimate(q)  # (B, P)
        pred = self.regressor(h).squeeze(-1)  # (B,)
        logits = None
        if self.cfg.n_classes:
            logits = (scale * cosine(q, self.class_keys(adapted))).masked_fill(~self.present, NEG)  # (B, C)
        return h, pred, logits
