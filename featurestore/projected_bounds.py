"""Proven bounds on inner products from a rank-r projection: the exact search's candidate pass.

The one-post neighbour search must score a new post against every stored row (the result must
be the batch's exact top k). A float32 product with all N x D entries reads the whole matrix
(486,194 x 160 float32 = 311 MB) per call. ``ProjectedBounds`` reads N x (r + 1) floats instead:

    e = P z_e + e_res,   z_e = P^T e (r,),  e_res orthogonal to the columns of P (D, r)
    q . e = z_q . z_e + q_res . e_res,  |q_res . e_res| <= rho_q rho_e   (Cauchy-Schwarz)

so ``z_q . z_e -/+ rho_q rho_e`` bound every inner product from below and above. P holds the
leading eigenvectors of the rows' second-moment matrix (orthonormal in float64), so most of a
row's norm is in ``z`` and the residual norms are small. One float32 matrix-vector product with
the stored (N, r) ``z_e`` (the only pass over N x r floats) and the (N,) ``rho_e`` give both
bounds. ``slack``
widens them by every float32 rounding on the way (inputs, the product's summation, the exact
rescoring's final rounding), so they hold for ``exact_similarity.pair_similarities`` too.

The candidates of a query are the rows whose upper bound reaches the k-th largest lower bound:
k rows score at least that, so every row of the true top k (ties included) is a candidate.
Which basis is used changes only how many candidates there are, never the result.
"""

from __future__ import annotations

import os

import numpy as np

from featurestore.exact_similarity import U32, gemm_margin

CHUNK = 65536      # rows projected at a time (float64 work space CHUNK x D)
GEMV_QUERIES = 4   # up to this many queries, one matrix-vector product each (measured faster than one gemm)
BLOCK = 256        # rows per block maximum in ``candidates``
PREFILTER_MARGIN = 1e-6  # widens the prefilter past the float32 rounding of its threshold
PARALLEL_ROWS = 100_000  # from this many stored rows the one-query product runs on two threads (``_product``)
TINY = 1e-14       # added under square roots: covers float64 cancellation in |e|^2 - |z|^2


_HELPERS: dict = {}  # created on first use: the BLAS pools (threadpoolctl) and one product thread


def _helpers() -> dict:
    if not _HELPERS:
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import ThreadpoolController

        _HELPERS["pools"] = ThreadpoolController()
        _HELPERS["thread"] = ThreadPoolExecutor(1, thread_name_prefix="projected-product")
    return _HELPERS


def _product(z: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(n,) float32 ``z @ q``. From ``PARALLEL_ROWS`` rows (memory-bound; a served request runs one
    thread and leaves the second core idle) the two halves of the rows go to two threads, each a
    one-thread BLAS call (numpy releases the GIL), not to a two-thread BLAS: OpenBLAS's own workers
    spin for about 0.1 s after each call, and between a service's requests they took the second core
    from everything else (polars, the image helper process). The bounds hold for any summation order."""
    n = len(z)
    if n < PARALLEL_ROWS or (os.cpu_count() or 1) < 2:
        return z @ q
    h, half, out = _helpers(), n // 2, np.empty(n, np.float32)
    with h["pools"].limit(limits=1, user_api="blas"):
        second = h["thread"].submit(np.matmul, z[half:], q, out=out[half:])
        np.matmul(z[:half], q, out=out[:half])
        second.result()
    return out


def _residual_norms(X: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """(n,) float64 upper bounds of |x - P z| for rows x of (n, D) ``X`` and their (n, r) ``Z``
    (float64, P orthonormal): sqrt(|x|^2 - |z|^2), clipped at 0, plus ``TINY`` under the root."""
    sq = np.einsum("ij,ij->i", X, X) - np.einsum("ij,ij->i", Z, Z)
    return np.sqrt(np.maximum(sq, 0.0) + TINY)


def _round_up(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 values that are not smaller than ``x``."""
    y = x.astype(np.float32)
    return np.where(y < x, np.nextafter(y, np.float32(np.inf)), y).astype(np.float32)


class ProjectedBounds:
    """Lower and upper bounds of ``Q @ E.T`` from a rank-``rank`` projection of the rows of ``E``.

    ``fit(E)``: E (N, D) float32 rows, kept in their order (the caller's time order). Fitted:
    ``basis_`` (D, r) float64 orthonormal, ``z_`` (N, r) float32 projections, ``rho_`` (N,) float32
    residual norms (rounded up), ``norm_`` the largest norm of a row ``[z_e, rho_e]``.
    """

    def __init__(self, *, rank: int = 64, sample: int = 20_000, seed: int = 0):
        self.rank, self.sample, self.seed = rank, sample, seed

    def fit(self, E: np.ndarray) -> ProjectedBounds:
        E = np.asarray(E, np.float32)
        n, d = E.shape
        rows = E if n <= self.sample else E[np.random.default_rng(self.seed).choice(n, self.sample, replace=False)]
        second = rows.T.astype(np.float64) @ rows.astype(np.float64)       # (D, D)
        _, vecs = np.linalg.eigh(second)                                   # ascending eigenvalues
        self.basis_ = np.ascontiguousarray(vecs[:, ::-1][:, :min(self.rank, d)])  # (D, r), orthonormal
        self.z_ = np.empty((n, self.basis_.shape[1]), np.float32)
        self.rho_ = np.empty(n, np.float32)
        for s in range(0, n, CHUNK):
            X = E[s:s + CHUNK].astype(np.float64)
            Z = X @ self.basis_
            self.z_[s:s + CHUNK] = Z
            self.rho_[s:s + CHUNK] = _round_up(_residual_norms(X, Z))
        sq = np.einsum("ij,ij->i", self.z_, self.z_, dtype=np.float64) + self.rho_.astype(np.float64) ** 2
        self.norm_ = float(np.sqrt(sq.max(initial=0.0)))
        self.rho_max_ = np.float32(self.rho_.max(initial=0.0))
        return self

    def slack(self, query_norm: float) -> float:
        """How much the float32 bounds may be off, for query rows whose ``[z_q, rho_q]`` norm is at most
        ``query_norm``: the product's summation (``gemm_margin``), the float32 rounding of both operands
        (2 u |a| |b|), and the rescoring's own float32 rounding of a similarity up to |a| |b| (2 u)."""
        scale = max(self.norm_, query_norm, 1.0) ** 2
        return gemm_margin(self.z_.shape[1] + 1, max(self.norm_, query_norm)) + 4.0 * U32 * scale + 1e-12

    def bounds(self, Q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` (M, n) float32 bounds of the inner products of Q (M, D) with the first n
        stored rows, each valid for ``pair_similarities`` of the same float32 rows."""
        Zq, rho, slack = self.project(Q)
        Zq32 = Zq.astype(np.float32)
        if len(Zq32) <= GEMV_QUERIES:   # BLAS's gemv streams z_ at memory speed; a gemm this thin packs it first
            P = np.stack([self.z_[:n] @ zq for zq in Zq32])                # (M, n)
        else:
            P = (self.z_[:n] @ Zq32.T).T                                   # (M, n): the one pass over z_
        spread = rho.astype(np.float32)[:, None] * self.rho_[None, :n]     # (M, n) rho_q rho_e
        spread += np.float32(slack)
        return P - spread, P + spread

    def project(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``(Z_q, rho_q, slack)`` of query rows Q (M, D): (M, r) float64 projections, (M,) float64
        residual norms, and the ``slack`` of all of them."""
        Q64 = np.asarray(Q, np.float64)
        Zq = Q64 @ self.basis_                                             # (M, r)
        rho = _residual_norms(Q64, Zq)                                     # (M,)
        q_norm = float(np.sqrt((np.einsum("ij,ij->i", Zq, Zq) + rho ** 2).max(initial=0.0)))
        return Zq, rho, self.slack(q_norm)

    def candidates(self, q: np.ndarray, n: int, k: int, hidden: np.ndarray | None = None) -> np.ndarray:
        """Rows among the first ``n`` stored ones, less the ``hidden`` rows, that may be in the top k of
        query row ``q`` (D,): those whose upper bound reaches the k-th largest lower bound (as
        ``bounds``), found with one pass over the projected rows and two over their n products.

        With ``spread_max`` the largest row spread (``rho_q max rho_e + slack``): the k largest of the
        block maxima of the products ``p`` (blocks of ``BLOCK`` rows) are k distinct rows, so
        ``t = kth block maximum - spread_max`` is at most the k-th largest lower bound; every row whose
        upper bound reaches it has ``p >= t - spread_max`` (the prefilter). Among the prefiltered rows
        (which hold those k) the k-th largest exact lower bound ``t2 >= t`` is computed, and the rows
        whose upper bound reaches ``t2`` are returned: a superset of ``bounds``' candidates.
        Returns ascending row numbers; every allowed row where fewer than k are allowed.
        """
        return self.candidates_of(self.products(q, n), k, hidden)

    def products(self, q: np.ndarray, n: int) -> tuple[np.ndarray, np.float32, np.float32]:
        """``(p, rho_q, slack)`` of query row ``q`` (D,): (n,) float32 products with the first n projected
        rows (the one pass over them), its float32 residual norm and slack: ``candidates_of``'s input."""
        zq, rho, slack = self.project(q[None, :])
        p = _product(self.z_[:n], zq[0].astype(np.float32))                # (n,): the one pass over z_
        return p, np.float32(rho[0]), np.float32(slack)

    def candidates_of(self, products: tuple[np.ndarray, np.float32, np.float32], k: int,
                      hidden: np.ndarray | None = None, allowed: np.ndarray | None = None) -> np.ndarray:
        """``candidates`` from a query's ``products`` (not changed: several searches may share them);
        ``allowed``: (>= n,) bool, only its true rows may be candidates (one pass where a long ``hidden``
        list would be a scattered write)."""
        p, rho_q, slack32 = products
        n = len(p)
        if allowed is not None:
            p = np.where(allowed[:n], p, np.float32(-np.inf))
        if hidden is not None and len(hidden):
            p = p.copy() if allowed is None else p
            p[hidden[hidden < n]] = -np.inf
        spread_max = rho_q * self.rho_max_ + slack32
        pad = -len(p) % BLOCK
        block_max = np.concatenate([p, np.full(pad, -np.inf, np.float32)]).reshape(-1, BLOCK).max(axis=1)
        finite = int(np.isfinite(block_max).sum())
        if finite < k:  # fewer than k blocks hold an allowed row: no bound from the blocks
            rows = np.flatnonzero(np.isfinite(p))
        else:
            t = np.partition(block_max, len(block_max) - k)[len(block_max) - k] - spread_max
            rows = np.flatnonzero(p >= t - spread_max - np.float32(PREFILTER_MARGIN))
        spread = rho_q * self.rho_[rows] + slack32
        lower, upper = p[rows] - spread, p[rows] + spread
        if len(rows) <= k:
            return rows
        t2 = np.partition(lower, len(lower) - k)[len(lower) - k]
        return rows[upper >= t2]
