"""CoOp-style learnable prompts for a frozen open_clip text tower: global + local context.

The prompt of class c is ``[SOS] g_1 .. g_G l_c1 .. l_cL <tokens of class name c> . [EOS]``:
G global context vectors shared by every class and L local context vectors of class c (the
seed method's "global + local" prompts; CoOp's unified context is G > 0, L = 0, its
class-specific context G = 0, L > 0). Context vectors live in the token-embedding space
(width W) and are the only trainable tensors; the tower (token embedding, positional
embedding, transformer, final LayerNorm, projection) is a frozen deep copy, so the model
passed in is never modified. The output is one text feature per class, (C, E).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

PLACEHOLDER = "X"  # one BPE token; its embeddings are replaced by the context vectors


@dataclass(frozen=True)
class PromptConfig:
    n_ctx_global: int = 4     # G: context vectors shared by all classes
    n_ctx_local: int = 4      # L: context vectors per class
    init_std: float = 0.02    # CoOp's random initialisation
    seed: int = 0             # the context initialisation is drawn from this seed only

    def __post_init__(self) -> None:
        if min(self.n_ctx_global, self.n_ctx_local) < 0 or self.n_ctx_global + self.n_ctx_local < 1:
            raise ValueError("PromptConfig: n_ctx_global, n_ctx_local >= 0 and at least one context vector")


class FrozenTextTower(nn.Module):
    """The text half of an open_clip ``CLIP`` (or a ``TextTransformer``), frozen, taking token embeddings.

    forward(x (C, T, W) token embeddings, ids (C, T) token ids) -> (C, E) text features.
    """

    def __init__(self, clip: nn.Module):
        super().__init__()
        src = copy.deepcopy(clip)
        if getattr(src, "cls_emb", None) is not None:
            raise ValueError("text towers with a CLS embedding are not supported")
        self.token_embedding = src.token_embedding
        self.positional_embedding = src.positional_embedding
        self.transformer = src.transformer
        self.ln_final = src.ln_final
        self.text_projection = src.text_projection
        self.register_buffer("attn_mask", src.attn_mask, persistent=False)
        self.pool_type = getattr(src, "text_pool_type", getattr(src, "pool_type", "argmax"))
        self.eos_id = getattr(src, "text_eos_id", getattr(src, "eos_id", None))
        self.context_length = int(src.positional_embedding.shape[0])
        self.width = int(src.token_embedding.weight.shape[1])
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FrozenTextTower":
        return super().train(False)  # frozen: dropout and friends stay off

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        from open_clip.transformer import text_global_pool

        x = x + self.positional_embedding  # (C, T, W)
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        x = text_global_pool(x, ids, self.pool_type, eos_token_id=self.eos_id)  # (C, W)
        if self.text_projection is None:
            return x
        return self.text_projection(x) if isinstance(self.text_projection, nn.Linear) else x @ self.text_projection


class PromptLearner(nn.Module):
    """Learnable global + local context around class-name tokens -> per-class text features (C, E).

    ``clip``: an open_clip CLIP model (frozen copy taken); ``class_names``: C strings, index =
    class code. Only ``ctx_global`` (G, W) and ``ctx_local`` (C, L, W) receive gradients.
    """

    def __init__(self, clip: nn.Module, class_names: list[str] | tuple[str, ...], cfg: PromptConfig = PromptConfig()):
        super().__init__()
        import open_clip

        if not class_names:
            raise ValueError("PromptLearner needs at least one class name")
        self.cfg = cfg
        self.tower = FrozenTextTower(clip)
        n_ctx, width = cfg.n_ctx_global + cfg.n_ctx_local, self.tower.width
        prefix = " ".join([PLACEHOLDER] * n_ctx)
        texts = [f"{prefix} {name.replace('_', ' ').strip()}." for name in class_names]
        ids = open_clip.tokenize(texts, context_length=self.tower.context_length)  # (C, T)
        with torch.no_grad():
            emb = self.tower.token_embedding(ids)  # (C, T, W)
        self.register_buffer("ids", ids, persistent=True)
        self.register_buffer("prefix", emb[:, :1].clone())            # (C, 1, W): SOS
        self.register_buffer("suffix", emb[:, 1 + n_ctx:].clone())    # (C, T - 1 - n_ctx, W): name . EOS pad
        gen = torch.Generator().manual_seed(cfg.seed)
        C = len(class_names)
        self.ctx_global = nn.Parameter(torch.randn(cfg.n_ctx_global, width, generator=gen) * cfg.init_std)
        self.ctx_local = nn.Parameter(torch.randn(C, cfg.n_ctx_local, width, generator=gen) * cfg.init_std)

    @property
    def n_classes(self) -> int:
        return int(self.ids.shape[0])

    def prompts(self) -> torch.Tensor:
        """(C, T, W) prompt token embeddings."""
        C = self.n_classes
        ctx_g = self.ctx_global.unsqueeze(0).expand(C, -1, -1)  # (C, G, W)
        return torch.cat([self.prefix, ctx_g, self.ctx_local, self.suffix], dim=1)

    def forward(self) -> torch.Tensor:
        """(C, E) class text features (not normalised)."""
        return self.tower(self.prompts(), self.ids)
