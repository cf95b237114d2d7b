"""PPCL losses: supervised contrastive (SupCon) and its three tasks, vectorised over the batch.

Views. Each training sample goes through the network twice in train mode (two dropout views).
The V views of a batch of B samples are stacked view-major into N = V * B rows: row r is view
r // B of sample r % B. Labels are given per sample, (B,) or (B, L), and repeated over the views.

SupCon (Khosla et al., NeurIPS 2020) of features z (N, D) and a positive mask P (N, N):

    z_r <- z_r / ||z_r||,   l_ra = z_r . z_a / tau                      (tau = 0.1)
    loss = mean over anchors r with |P(r)| > 0 of
           -(1 / |P(r)|) sum_{p in P(r)} log( exp(l_rp) / sum_{a != r} exp(l_ra) )

P(r) never contains r itself; anchors without a positive are left out of the mean.

Positive masks from labels (``label_positive_mask``): rows r != a are positives when they are
two views of the same sample, or when their samples carry the same *known* label (code >= 0).
A sample whose label is unknown (code < 0) has only its own other view as a positive, and is a
negative for everyone else.

The three tasks (PPCL, Zhang, Qiu and Xie 2024):

* CRD, content relevance discrimination: hierarchical multi-label SupCon over the category tree,
  ``paths`` (B, 3) = (category, subcategory, concept) codes. One SupCon term per level; at a
  level, two samples are positives when they share the path down to that level and every code
  on it is known. With l = the number of levels *below* a level (concept l=0, subcategory l=1,
  category l=2) the term is weighted 2^-l:

      CRD = 1 * SupCon_concept + 1/2 * SupCon_subcategory + 1/4 * SupCon_category

  so a pair that shares a longer path is pulled together by more, and heavier, terms (the
  direction of Zhang et al., "Use all the labels", CVPR 2022). ``level_weights`` overrides the
  weights, ordered (category, subcategory, concept).
* UISD, user influence similarity discrimination: SupCon with labels = K-means cluster of the
  user-influence features (clusters fitted on the train rows; see the estimator).
* UID, user identity discrimination: SupCon with labels = user id, on the predictor's
  representation of *detached* encoder outputs, so its gradient reaches only the predictor
  (``PPCLNet.uid_hidden``).

Total: ``total_loss`` = (1 - c) MSE + c (w_crd CRD + w_uisd UISD + w_uid UID), by default
c = 0.1 and (w_crd, w_uisd, w_uid) = (3, 1, 0.1): 0.9 MSE + 0.1 (3 CRD + UISD + 0.1 UID).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass

import torch
import torch.nn.functional as F

TASKS = ("crd", "uisd", "uid")
LEVELS = ("category", "subcategory", "concept")
LEVEL_WEIGHTS = (0.25, 0.5, 1.0)  # (category, subcategory, concept) = 2^-l, l = levels below


@dataclass(frozen=True)
class TaskWeights:
    """Weights of the contrastive tasks inside the contrastive part of the total loss; 0 = task off."""

    crd: float = 3.0
    uisd: float = 1.0
    uid: float = 0.1

    def __post_init__(self) -> None:
        if min(astuple(self)) < 0:
            raise ValueError(f"task weights must be >= 0, got {self}")

    @classmethod
    def parse(cls, value: "TaskWeights | Mapping[str, float] | Sequence[float] | None") -> "TaskWeights":
        """None: the defaults (3, 1, 0.1); a dict: the tasks it names (the others 0); 3 floats: (crd, uisd, uid)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - set(TASKS)
            if unknown:
                raise ValueError(f"unknown task(s) {sorted(unknown)}; tasks are {TASKS}")
            return cls(**{t: float(value.get(t, 0.0)) for t in TASKS})
        values = tuple(value)
        if len(values) != len(TASKS):
            raise ValueError(f"task_weights: 3 floats (crd, uisd, uid) or a dict, got {value!r}")
        return cls(*(float(v) for v in values))

    def active(self) -> tuple[str, ...]:
        return tuple(t for t in TASKS if getattr(self, t) > 0)


def supcon_loss(z: torch.Tensor, positive: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SupCon of features z (N, D) with a positive mask (N, N) bool (diagonal ignored); a scalar.

    Zero (with a graph) when no anchor has a positive.
    """
    N = z.shape[0]
    zn = F.normalize(z, dim=-1)
    eye = torch.eye(N, dtype=torch.bool, device=z.device)
    logits = (zn @ zn.T / temperature).masked_fill(eye, -torch.inf)  # (N, N); a != r in the denominator
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (N, N)
    pos = positive.to(torch.bool) & ~eye
    n_pos = pos.sum(dim=1)  # (N,)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_anchor = -log_prob.masked_fill(~pos, 0.0).sum(dim=1)[has] / n_pos[has]  # (A,)
    return per_anchor.mean()


def label_positive_mask(labels: torch.Tensor, views: int = 2) -> torch.Tensor:
    """(B,) integer labels (< 0 unknown) -> (V*B, V*B) bool: same sample, or same known label."""
    lab = labels.reshape(-1).repeat(views)  # (N,)
    sample = torch.arange(labels.numel(), device=labels.device).repeat(views)  # (N,)
    known = lab >= 0
    same_label = (lab[:, None] == lab[None, :]) & known[:, None] & known[None, :]
    return same_label | (sample[:, None] == sample[None, :])


def path_positive_mask(paths: torch.Tensor, level: int, views: int = 2) -> torch.Tensor:
    """(B, L) path codes (< 0 unknown) -> (V*B, V*B) bool: same sample, or same known path[: level + 1]."""
    prefix = paths[:, :level + 1].repeat(views, 1)  # (N, level + 1)
    sample = torch.arange(paths.shape[0], device=paths.device).repeat(views)  # (N,)
    known = (prefix >= 0).all(dim=1)  # (N,)
    same = (prefix[:, None, :] == prefix[None, :, :]).all(dim=-1) & known[:, None] & known[None, :]
    return same | (sample[:, None] == sample[None, :])


def hierarchical_supcon_loss(z: torch.Tensor, paths: torch.Tensor, temperature: float = 0.1,
                             level_weights: Sequence[float] = LEVEL_WEIGHTS) -> torch.Tensor:
    """CRD: sum over levels l of level_weights[l] * SupCon(z, positives sharing paths[:, :l+1]).

    z (V*B, D) view-major, paths (B, L) with L = len(level_weights), ordered coarse to fine.
    """
    if paths.shape[1] != len(level_weights):
        raise ValueError(f"{paths.shape[1]} path levels but {len(level_weights)} level weights")
    views = z.shape[0] // paths.shape[0]
    total = z.new_zeros(())
    for level, weight in enumerate(level_weights):  # 3 levels, not a loop over anchors
        if weight:
            total = total + weight * supcon_loss(z, path_positive_mask(paths, level, views), temperature)
    return total


def total_loss(mse: torch.Tensor, terms: Mapping[str, torch.Tensor], weights: TaskWeights,
               contrastive_weight: float = 0.1) -> torch.Tensor:
    """(1 - c) * mse + c * sum_t w_t * terms[t] over the tasks present in ``terms``."""
    contrastive = sum((getattr(weights, t) * v for t, v in terms.items()), mse.new_zeros(()))
    return (1.0 - contrastive_weight) * mse + contrastive_weight * contrastive
