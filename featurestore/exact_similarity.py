"""Inner products whose value does not depend on what else is computed with them.

A float32 matrix product rounds each entry in an order OpenBLAS picks from the matrix shapes
(kernel, blocking, vector width): the same pair of rows scored inside a 4096-query block and
alone can differ in the last bit, and so could a post's neighbours and their statistics. The
exact neighbour search therefore uses the GEMM only to find candidates: every entry within
``gemm_margin`` of a row's k-th best is scored again here, pair by pair, and only these scores
rank and are returned. The batch (``retrieval.time_safe_neighbours``) and the one-post lookup
(``sequence_online.NeighbourLookup``) thus give bit-identical similarities.
"""

from __future__ import annotations

import numpy as np

U32 = 2.0 ** -24    # unit roundoff of float32
CHUNK_PAIRS = 8192  # pairs scored at a time: float64 work space ~ CHUNK_PAIRS x D


def pair_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise inner products of (P, D) ``a`` and ``b`` (float32) -> (P,) float32.

    Products of float32 values are exact in float64; their sum (numpy's pairwise summation
    along one contiguous row, which depends on D only) is rounded once to float32.
    """
    out = np.empty(len(a), np.float32)
    for s in range(0, len(a), CHUNK_PAIRS):
        prod = np.multiply(a[s:s + CHUNK_PAIRS], b[s:s + CHUNK_PAIRS], dtype=np.float64)  # (p, D)
        out[s:s + CHUNK_PAIRS] = prod.sum(axis=1)
    return out


def pad_columns(E: np.ndarray) -> np.ndarray:
    """(N, D) float32 with zero columns appended up to a multiple of 16: BLAS prefers that width, and
    every product (GEMM or ``pair_similarities``) keeps its value."""
    return np.pad(E, ((0, 0), (0, -E.shape[1] % 16))) if E.shape[1] % 16 else E


def max_row_norm(x: np.ndarray) -> float:
    """Largest L2 norm of the rows of (N, D) ``x`` (0 for no rows)."""
    if not len(x):
        return 0.0
    return float(np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64).max()))


def gemm_margin(dim: int, norm: float) -> float:
    """How far below a row's k-th best float32-GEMM similarity a candidate may lie and still be
    in the row's top k by ``pair_similarities``; rows of width ``dim`` with norms <= ``norm``.

    Any order of float32 summation is within gamma_D * |q| |e| of the exact product (twice:
    the candidate and the k-th best), plus the float32 roundings of the exact scores and of
    the threshold itself.
    """
    gamma = dim * U32 / max(1.0 - dim * U32, 0.5)
    return (2.0 * gamma + 8.0 * U32) * max(norm, 1.0) ** 2
