"""PPCL network: post encoder, user encoder, popularity predictor and contrastive projection heads.

    text (B, Dt) --adapter--+
                            +-- fuse MLP --> post (B, H) ---+
    image (B, Di) --adapter-+                               +-- predictor MLP --> hidden (B, H) --> pred (B,)
    numeric (B, D) -> [x, x^2, sqrt x] -> 4 cross layers ---+
    codes (B, C) -> embeddings + pairwise products --------+-- user MLP --> user (B, H) --+

The image and text inputs are frozen embeddings (standardised by the estimator); the numeric user
features arrive min-max scaled to [0, 1] with train statistics. Categorical codes arrive as
vocabulary indices with 0 = unknown. Projection heads map post / user / predictor features to the
spaces where the CRD / UISD / UID SupCon losses are taken (models/ppcl/losses.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn


@dataclass(frozen=True)
class PPCLConfig:
    text_dim: int = 0                 # Dt: text-embedding width (0 = no text)
    image_dim: int = 0                # Di: image-embedding width (0 = no image)
    user_numeric_dim: int = 0         # D: user numeric features before the [x, x^2, sqrt x] expansion
    user_cardinalities: tuple[int, ...] = ()  # vocabulary size (unknown slot 0 included) per user categorical
    hidden: int = 128                 # H: width of the post, user and predictor representations
    adapter_reduction: int = 4        # adapter bottleneck = ceil(width / reduction)
    cat_dim: int = 16                 # E: embedding width of each user categorical
    cross_layers: int = 4
    proj_dim: int = 64                # width of the contrastive projection spaces
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.text_dim + self.image_dim < 1:
            raise ValueError("PPCLConfig: the post encoder needs text or image columns")
        if min(self.text_dim, self.image_dim, self.user_numeric_dim) < 0 or min(self.user_cardinalities, default=1) < 1:
            raise ValueError("PPCLConfig: widths must be >= 0 and cardinalities >= 1")
        if self.hidden < 1 or self.adapter_reduction < 1 or self.cat_dim < 1 or self.proj_dim < 1:
            raise ValueError("PPCLConfig: hidden, adapter_reduction, cat_dim, proj_dim must be >= 1")
        if self.cross_layers < 0 or not 0 <= self.dropout < 1:
            raise ValueError("PPCLConfig: cross_layers >= 0 and 0 <= dropout < 1")

    @property
    def has_user(self) -> bool:
        return self.user_numeric_dim > 0 or len(self.user_cardinalities) > 0


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """Two ReLU layers, each followed by dropout (the source of the two training views)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, out_dim), nn.ReLU(), nn.Dropout(dropout))


class Adapter(nn.Module):
    """Bottleneck adapter on a frozen embedding: x + up(dropout(gelu(down(x)))), (B, D) -> (B, D).

    ``up`` starts at zero, so the adapter starts as the identity of the frozen embedding.
    """

    def __init__(self, dim: int, reduction: int, dropout: float):
        super().__init__()
        bottleneck = max(1, -(-dim // reduction))
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.drop(self.act(self.down(x))))


class PostEncoder(nn.Module):
    """Adapters over the text and image embeddings, then an MLP fusing both: -> (B, H)."""

    def __init__(self, cfg: PPCLConfig):
        super().__init__()
        self.text = Adapter(cfg.text_dim, cfg.adapter_reduction, cfg.dropout) if cfg.text_dim else None
        self.image = Adapter(cfg.image_dim, cfg.adapter_reduction, cfg.dropout) if cfg.image_dim else None
        self.fuse = mlp(cfg.text_dim + cfg.image_dim, cfg.hidden, cfg.hidden, cfg.dropout)

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        parts = [m(x) for m, x in ((self.text, text), (self.image, image)) if m is not None]
        return self.fuse(torch.cat(parts, dim=-1))  # (B, Dt + Di) -> (B, H)


class CrossNetwork(nn.Module):
    """DCN cross layers: x_{l+1} = x_0 * (W_l x_l + b_l) + x_l, (B, D) -> (B, D).

    Each layer raises the degree of the feature crosses by one, at D^2 + D parameters.
    """

    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class UserEncoder(nn.Module):
    """Numeric features through cross layers, categoricals embedded with pairwise crosses: -> (B, H)."""

    def __init__(self, cfg: PPCLConfig):
        super().__init__()
        d = 3 * cfg.user_numeric_dim  # [x, x^2, sqrt x]
        self.cross = CrossNetwork(d, cfg.cross_layers) if d else None
        self.embeddings = nn.ModuleList(nn.Embedding(n, cfg.cat_dim) for n in cfg.user_cardinalities)
        c = len(cfg.user_cardinalities)
        pairs = torch.triu_indices(c, c, offset=1)  # (2, P): every pair i < j of categoricals
        self.register_buffer("pairs", pairs, persistent=False)
        self.mlp = mlp(d + (c + pairs.shape[1]) * cfg.cat_dim, cfg.hidden, cfg.hidden, cfg.dropout)

    def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.cross is not None:
            x0 = torch.cat([numeric, numeric * numeric, torch.sqrt(numeric)], dim=-1)  # (B, 3D), numeric in [0, 1]
            parts.append(self.cross(x0))
        if len(self.embeddings):
            e = torch.stack([emb(codes[:, k]) for k, emb in enumerate(self.embeddings)], dim=1)  # (B, C, E)
            crossed = e[:, self.pairs[0]] * e[:, self.pairs[1]]  # (B, P, E) element-wise products
            parts += [e.flatten(1), crossed.flatten(1)]
        return self.mlp(torch.cat(parts, dim=-1))


class PopularityPredictor(nn.Module):
    """MLP over [post, user] -> (hidden (B, H), prediction (B,))."""

    def __init__(self, in_dim: int, cfg: PPCLConfig):
        super().__init__()
        self.body = mlp(in_dim, cfg.hidden, cfg.hidden, cfg.dropout)
        self.out = nn.Linear(cfg.hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return h, self.out(h).squeeze(-1)


def projection_head(dim: int, out_dim: int) -> nn.Sequential:
    """SimCLR-style head: the SupCon loss is taken after it, the representation before it."""
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out_dim))


class PPCLInputs(NamedTuple):
    text: torch.Tensor      # (B, Dt) float32
    image: torch.Tensor     # (B, Di) float32
    numeric: torch.Tensor   # (B, D) float32 in [0, 1]
    codes: torch.Tensor     # (B, C) int64 vocabulary indices, 0 = unknown

    def rows(self, idx: torch.Tensor) -> "PPCLInputs":
        return PPCLInputs(*(t[idx] for t in self))


class PPCLOutputs(NamedTuple):
    post: torch.Tensor          # (B, H)
    user: torch.Tensor | None   # (B, H), None without user features
    hidden: torch.Tensor        # (B, H) predictor representation (``transform``)
    pred: torch.Tensor          # (B,) standardised label


class PPCLNet(nn.Module):
    """Post and user encoders, popularity predictor, and one projection head per contrastive task."""

    def __init__(self, cfg: PPCLConfig):
        super().__init__()
        self.cfg = cfg
        self.post = PostEncoder(cfg)
        self.user = UserEncoder(cfg) if cfg.has_user else None
        self.predictor = PopularityPredictor(cfg.hidden * (2 if cfg.has_user else 1), cfg)
        heads = {"crd": projection_head(cfg.hidden, cfg.proj_dim), "uid": projection_head(cfg.hidden, cfg.proj_dim)}
        if cfg.has_user:
            heads["uisd"] = projection_head(cfg.hidden, cfg.proj_dim)
        self.heads = nn.ModuleDict(heads)

    def _joint(self, post: torch.Tensor, user: torch.Tensor | None) -> torch.Tensor:
        return post if user is None else torch.cat([post, user], dim=-1)  # (B, H) or (B, 2H)

    def forward(self, x: PPCLInputs) -> PPCLOutputs:
        post = self.post(x.text, x.image)
        user = self.user(x.numeric, x.codes) if self.user is not None else None
        hidden, pred = self.predictor(self._joint(post, user))
        return PPCLOutputs(post, user, hidden, pred)

    def uid_hidden(self, post: torch.Tensor, user: torch.Tensor | None) -> torch.Tensor:
        """Predictor representation of the *detached* encoder outputs: the UID loss taken on it
        trains the predictor body (and the UID head) only, never the encoders. (B, H)."""
        joint = self._joint(post, user).detach()
        return self.predictor.body(joint)
