"""Contrastive regression losses over a batch: Rank-N-Contrast (RNC) and Weighted-Rank CR (WRCR).

Notation for a batch of B features ``z`` (B, D) and labels ``y`` (B,):
- logits ``l_ik = sim(z_i, z_k) / tau``; ``sim`` is ``-||z_i - z_k||_2`` ("l2", RNC's default)
  or the cosine ("cosine").
- label distances ``d_ik = |y_i - y_k|``.

RNC (Zha et al., NeurIPS 2023). For every anchor i and positive j != i, the negatives are
``N(i, j) = {k != i : d_ik >= d_ij}`` (j itself included), and

    loss = mean over the B(B-1) pairs (i, j) of  -log( exp(l_ij) / sum_{k in N(i,j)} exp(l_ik) ).

WRCR (Weighted-Rank Contrastive Regression). RNC with each term of the denominator weighted:

    w_ijk = (1 + alpha) ** g(delta_ijk),   delta_ijk = d_ik - d_ij >= 0   (label units)

i.e. a negative is weighted by how much farther from the anchor's label it is than the
positive, so far-away (rarer, tail) negatives are pushed harder. ``g`` is the variant:
``"log"``: log(1 + delta); ``"linear"``: delta; ``"quadratic"``: delta ** 2. Every variant has
g(0) = 0, so the positive's own term (and every tie) keeps weight 1, and alpha = 0 is RNC.
The weights are built in log space and shifted by their maximum per (i, j), so large distances
cannot overflow.

Nothing loops over anchors or pairs in Python. RNC and the linear weighting factorise
(w_ijk = (1+alpha)^d_ik / (1+alpha)^d_ij) and take a sorted, O(B^2 log B) path; the log and
quadratic weightings take a dense path over blocks of anchors, (anchors, B, B) label-only
weights times the (anchors, B) exponentiated logits as a batched matrix-vector product.
"""

from __future__ import annotations

import math

import torch

WEIGHTINGS = ("log", "linear", "quadratic")
SIMILARITIES = ("l2", "cosine")


def pairwise_logits(z: torch.Tensor, temperature: float, similarity: str = "l2") -> torch.Tensor:
    """(B, D) -> (B, B) logits sim(z_i, z_k) / tau."""
    if similarity == "l2":
        sq = (z * z).sum(-1)  # (B,)
        d2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)  # (B, B) squared distances, via one matmul
        # rounding can make d2 slightly negative, and sqrt has an infinite gradient at 0 (the diagonal)
        sim = -torch.sqrt(d2.clamp_min(0.0) + 1e-12)
    elif similarity == "cosine":
        zn = torch.nn.functional.normalize(z, dim=-1)
        sim = zn @ zn.T
    else:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    return sim / temperature


def distance_weight(delta: torch.Tensor, weighting: str) -> torch.Tensor:
    """g(delta) of the WRCR weight (1 + alpha) ** g(delta), for delta >= 0."""
    if weighting == "log":
        return torch.log1p(delta)
    if weighting == "linear":
        return delta
    if weighting == "quadratic":
        return delta * delta
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


def _weights(dist: torch.Tensor, anchors: torch.Tensor, log_base: float,
             weighting: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Label-only weights of the A ``anchors``, scaled per (i, j): (w / max_k w (A, B_j, B_k), log max_k w (A, B_j)).

    w_ijk = 0 where k is not in N(i, j). g is increasing, so the largest weight of pair (i, j) is
    that of the anchor's farthest label: log max_k w_ijk = c g(max_k d_ik - d_ij).
    """
    d = dist[anchors].clone()  # (A, B): d_ik
    d[torch.arange(len(anchors)), anchors] = -1.0  # k = i is never in N(i, j): its delta is < 0
    delta = d[:, None, :] - d[:, :, None]  # (A, B_j, B_k): d_ik - d_ij
    if not log_base:
        return (delta >= 0).double(), torch.zeros(delta.shape[:2], dtype=torch.float64, device=dist.device)
    wmax = log_base * distance_weight(d.amax(dim=1, keepdim=True) - d, weighting)  # (A, B_j)
    logw = log_base * distance_weight(delta.clamp_min(0), weighting) - wmax[:, :, None]  # (A, B_j, B_k) <= 0
    return torch.exp(logw.masked_fill_(delta < 0, -math.inf)), wmax


def _anchor_block(logits: torch.Tensor, dist: torch.Tensor, anchors: torch.Tensor, log_base: float,
                  weighting: str) -> torch.Tensor:
    """Summed -log p(j | i) over the A ``anchors`` and all their positives j != i.

    log sum_k w_ijk exp(l_ik) is computed as a batched matrix-vector product: the weights depend on
    the labels only, so the autograd graph holds (A, B) tensors, not (A, B, B) ones. Both factors
    are shifted by their maxima and kept in float64, so neither overflows nor underflows.
    """
    with torch.no_grad():
        w, wmax = _weights(dist, anchors, log_base, weighting)  # (A, B_j, B_k) in [0, 1], (A, B_j)
    l = logits[anchors].double()  # (A, B_k): l_ik
    lmax = l.detach().amax(dim=-1, keepdim=True)  # (A, 1)
    s = torch.bmm(w, torch.exp(l - lmax)[:, :, None]).squeeze(-1)  # (A, B_j)
    log_den = torch.log(s) + lmax + wmax  # (A, B_j)
    positive = torch.arange(logits.shape[0], device=logits.device)[None, :] != anchors[:, None]  # (A, B_j)
    return ((log_den - l) * positive).sum()


def _sorted_path(logits: torch.Tensor, dist: torch.Tensor, log_base: float) -> torch.Tensor:
    """Summed -log p(j | i) over all pairs j != i when log w_ijk = c (d_ik - d_ij) (RNC: c = 0).

    Then sum_k w_ijk exp(l_ik) = exp(-c d_ij) sum_{k: d_ik >= d_ij} exp(l_ik + c d_ik), and N(i, j)
    is a prefix of anchor i's candidates sorted by decreasing label distance: a cumulative
    logsumexp over that order, read at the prefix length, gives every denominator in O(B^2 log B).
    """
    B = logits.shape[0]
    eye = torch.eye(B, dtype=torch.bool, device=logits.device)
    d = dist.masked_fill(eye, -1.0)  # the anchor itself sorts last and is never counted
    a = (logits.double() + log_base * d).masked_fill(eye, -math.inf)  # (B, B_k): l_ik + c d_ik
    d_sorted, order = torch.sort(d, dim=1, descending=True)  # (B, B)
    cum = torch.logcumsumexp(torch.gather(a, 1, order), dim=1)  # (B, B): over the r+1 farthest
    # |N(i, j)| = #{k: d_ik >= d_ij}: searchsorted needs ascending rows, so negate
    n = torch.searchsorted(-d_sorted.contiguous(), -dist.contiguous(), right=True)  # (B, B_j)
    log_den = torch.gather(cum, 1, (n - 1).clamp_min(0)) - log_base * dist  # (B, B_j)
    return ((log_den - logits.double()) * ~eye).sum()


def ranked_contrastive_loss(z: torch.Tensor, y: torch.Tensor, *, temperature: float = 2.0,
                            similarity: str = "l2", alpha: float = 0.0, weighting: str = "linear",
                            method: str = "auto", chunk: int | None = None) -> torch.Tensor:
    """RNC (``alpha=0``) or WRCR (``alpha>0``) loss of features z (B, D) and labels y (B,); a scalar.

    ``method``: "sorted" (O(B^2 log B); RNC and the linear weighting only), "dense" (blocks of
    ``chunk`` anchors over (chunk, B, B) label-only weights; any weighting) or "auto" (sorted
    where it applies). ``chunk`` defaults to about 2M weights per block.
    """
    B = z.shape[0]
    if B < 2:
        raise ValueError("a contrastive loss needs at least 2 samples in the batch")
    if alpha < 0:
        raise ValueError("alpha must be >= 0")
    distance_weight(torch.zeros(1), weighting)  # validate the name even when alpha == 0
    log_base = math.log1p(alpha)
    sortable = log_base == 0 or weighting == "linear"
    if method not in ("auto", "sorted", "dense") or (method == "sorted" and not sortable):
        raise ValueError(f"method {method!r}: use auto, dense, or sorted (RNC / linear weighting only)")
    logits = pairwise_logits(z, temperature, similarity)  # (B, B)
    y = y.detach().reshape(-1).double()
    dist = (y[:, None] - y[None, :]).abs()  # (B, B) label distances
    if method == "sorted" or (method == "auto" and sortable):
        total = _sorted_path(logits, dist, log_base)
    else:
        chunk = chunk or max(1, (1 << 21) // (B * B))
        idx = torch.arange(B, device=z.device)
        total = sum(_anchor_block(logits, dist, idx[a:a + chunk], log_base, weighting) for a in range(0, B, chunk))
    return (total / (B * (B - 1))).to(z.dtype)


def rnc_loss(z: torch.Tensor, y: torch.Tensor, *, temperature: float = 2.0, similarity: str = "l2",
             method: str = "auto") -> torch.Tensor:
    """Rank-N-Contrast loss (see the module docstring); z (B, D), y (B,) -> scalar."""
    return ranked_contrastive_loss(z, y, temperature=temperature, similarity=similarity, method=method)


def wrcr_loss(z: torch.Tensor, y: torch.Tensor, *, alpha: float = 0.4, weighting: str = "linear",
              temperature: float = 2.0, similarity: str = "l2", method: str = "auto") -> torch.Tensor:
    """Weighted-Rank contrastive loss (see the module docstring); z (B, D), y (B,) -> scalar."""
    return ranked_contrastive_loss(z, y, temperature=temperature, similarity=similarity, alpha=alpha,
                                   weighting=weighting, method=method)
