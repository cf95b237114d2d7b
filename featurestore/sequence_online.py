"""Sequence features of new posts, against the stored posts, without rebuilding anything.

``NeighbourLookup`` is built once from the stored tables: the embedding matrix in time order
``(postdate, pid)``, each post's user and visible label, and a rank-r projection of the rows
with residual norms (``projected_bounds``). A call with M new posts bounds their similarity to
every stored row strictly earlier than each of them from the projection (one pass over the
(n, r) projected rows and their (n,) residual norms: 2.5x fewer bytes than the full rows at
r = 64, D = 160), scores the few
rows whose upper bound reaches the k-th best lower bound exactly, and scores the new posts
against each other.

The result is the batch's exact search (``retrieval.time_safe_neighbours``): a proven superset
of the top k is rescored by ``pair_similarities`` and ranked by similarity and then by
``(postdate, pid)``. A stored post replayed as new (same pid, postdate,
user and embedding) therefore gets exactly its ``sequence_tables`` rows: its stored row is
replaced by the new one, and the other new posts of the call are candidates without a label.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from featurestore.exact_similarity import pad_columns, pair_similarities
from featurestore.features_sequence import (
    SequenceConfig,
    neighbour_tables,
    sequence_inputs,
)
from featurestore.projected_bounds import GEMV_QUERIES, ProjectedBounds

_LOWEST = np.float32(-np.finfo(np.float32).max)
QUERY_BLOCK = 16   # new posts bounded at a time: (QUERY_BLOCK, n) float32 bounds per block


def _kth_largest(lower: np.ndarray, k: int) -> np.ndarray:
    """(M,) float32: each row's k-th largest entry of ``lower`` (M, n); the lowest float where a row has
    fewer than k finite entries (then every allowed row is a candidate)."""
    if lower.shape[1] <= k:
        return np.full(len(lower), _LOWEST, np.float32)
    kth = np.partition(lower, lower.shape[1] - k, axis=1)[:, lower.shape[1] - k]
    return np.where(np.isfinite(kth), kth, _LOWEST).astype(np.float32)


def _candidates(lower: np.ndarray, upper: np.ndarray, k: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows + offset, columns) whose upper bound reaches their row's k-th largest lower bound: a superset
    of each row's exact top k, ties included (``projected_bounds``)."""
    r, c = np.nonzero(upper >= _kth_largest(lower, k)[:, None])
    return r + offset, c


def _rank_top_k(row: np.ndarray, sim: np.ndarray, date: np.ndarray, pid: np.ndarray, n_rows: int, k: int
                ) -> np.ndarray:
    """(n_rows, k) indices into the candidate arrays (P,), -1 padding: per row by similarity, then
    (postdate, pid) -- the batch's tie rule."""
    order = np.lexsort((pid, date, -sim, row))
    row = row[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row)
    top = rank < k
    out = np.full((n_rows, k), -1, np.int64)
    out[row[top], rank[top]] = order[top]
    return out


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, stored rows) of every part, concatenated."""
    return tuple(np.concatenate(x) for x in zip(*parts)) if parts else (np.zeros(0, np.int64),) * 2


class NeighbourLookup:
    """The k most similar strictly-earlier posts of new posts, and their sequence feature rows.

    pid, postdate (epoch s), uid (str, None: unknown), y_visible (NaN: label not visible): (N,)
    of the stored posts; emb (N, D) their embedding rows (L2-normalised float32), any order.
    ``projection_rank``: the rank of the candidate pass (speed only: any rank gives the same result).
    """

    def __init__(self, cfg: SequenceConfig, pid: np.ndarray, postdate: np.ndarray, uid: np.ndarray,
                 y_visible: np.ndarray, emb: np.ndarray, *, projection_rank: int = 64):
        if cfg.index != "exact":
            raise ValueError(f"features_sequence.index: the new-post lookup supports index: exact only; "
                             f"got {cfg.index!r}")
        self.cfg = cfg
        order = np.lexsort((np.asarray(pid), np.asarray(postdate)))
        self.pid_ = np.asarray(pid, np.int64)[order]
        self.postdate_ = np.asarray(postdate, np.int64)[order]
        self.uid_ = np.asarray(uid, object)[order]
        self.y_visible_ = np.asarray(y_visible, np.float64)[order]
        self.dim_ = emb.shape[1]
        self.emb_ = pad_columns(np.ascontiguousarray(np.asarray(emb, np.float32)[order]))  # (N, D16) time order
        self.bounds_ = ProjectedBounds(rank=projection_rank).fit(self.emb_)  # the candidate pass
        self.labelled_ = np.isfinite(self.y_visible_)  # (N,) time-order rows with a visible label
        self.by_pid_ = np.argsort(self.pid_, kind="stable")  # (N,) time-order rows in pid order
        self.sorted_pid_ = self.pid_[self.by_pid_]

    @classmethod
    def load(cls, paths, cfg: SequenceConfig, **kwargs) -> NeighbourLookup:
        """From the stored embedding table ``cfg.embedding``, split, labels and posts (``Paths``)."""
        frame, emb = sequence_inputs(paths, cfg)
        return cls(cfg, frame["pid"].to_numpy(), frame["postdate"].to_numpy(), frame["uid"].to_numpy(),
                   frame["y_visible"].fill_null(np.nan).to_numpy(), emb, **kwargs)

    def _stored_rows_of(self, pid: np.ndarray) -> np.ndarray:
        """Time-order rows of the stored posts among ``pid`` (the new posts that replace them)."""
        if not len(self.pid_):
            return np.zeros(0, np.int64)
        pos = np.minimum(np.searchsorted(self.sorted_pid_, pid), len(self.pid_) - 1)
        return self.by_pid_[pos[self.sorted_pid_[pos] == pid]]

    def _stored_candidates(self, Q: np.ndarray, n_before: np.ndarray, replaced: np.ndarray
                           ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
        """(query rows, stored time-order rows) that may be in each query's top k among the stored rows
        it may see (the first ``n_before[i]``, less ``replaced``), and among those with a visible label."""
        if len(Q) <= GEMV_QUERIES:  # a request's few posts: one product each and a few passes over n
            return self._few_candidates(Q, n_before, replaced)
        found, labelled = [], []
        for s in range(0, len(Q), QUERY_BLOCK):
            nb = n_before[s:s + QUERY_BLOCK]
            n = int(nb.max(initial=0))
            lower, upper = self.bounds_.bounds(Q[s:s + QUERY_BLOCK], n)    # (m, n) each
            for i, b in enumerate(nb):                                     # rows not strictly earlier: slices
                lower[i, b:] = upper[i, b:] = -np.inf
            cols = replaced[replaced < n]                                  # replayed posts replace their rows
            lower[:, cols] = upper[:, cols] = -np.inf
            found.append(_candidates(lower, upper, self.cfg.k, s))
            if self.cfg.labelled:
                unlabelled = ~np.isfinite(self.y_visible_[:n])
                lower[:, unlabelled] = upper[:, unlabelled] = -np.inf
                labelled.append(_candidates(lower, upper, self.cfg.k, s))

        return _joined(found), (_joined(labelled) if self.cfg.labelled else None)

    def _few_candidates(self, Q: np.ndarray, n_before: np.ndarray, replaced: np.ndarray
                        ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
        """``_stored_candidates`` of a few queries through ``ProjectedBounds.candidates`` (a superset of
        the block pass's candidates: the same top k after the exact rescoring)."""
        found, labelled = [], []
        for i, (q, n) in enumerate(zip(Q, n_before)):
            products = self.bounds_.products(q, int(n))  # one pass over the stored rows for both searches
            cols = self.bounds_.candidates_of(products, self.cfg.k, replaced)
            found.append((np.full(len(cols), i, np.int64), cols))
            if self.cfg.labelled:
                cols = self.bounds_.candidates_of(products, self.cfg.k, replaced, allowed=self.labelled_)
                labelled.append((np.full(len(cols), i, np.int64), cols))
        return _joined(found), (_joined(labelled) if self.cfg.labelled else None)

    def _search(self, Q: np.ndarray, stored: tuple[np.ndarray, np.ndarray], S_new: np.ndarray, pid: np.ndarray,
                postdate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top k among the ``stored`` candidates (query row, stored row) and the new posts (S_new (M, M),
        -inf: not earlier): ``(src, sims)`` (M, k), src = stored time-order row, or ``-2 - i`` for new
        post i, -1 padding. Every candidate is scored exactly (``pair_similarities``) and ranked."""
        r, c = stored
        rn, cn = np.nonzero(np.isfinite(S_new))
        rows = np.concatenate([r, rn])
        sim = pair_similarities(np.concatenate([Q[r], Q[rn]]), np.concatenate([self.emb_[c], Q[cn]]))
        top = _rank_top_k(rows, sim, np.concatenate([self.postdate_[c], postdate[cn]]),
                          np.concatenate([self.pid_[c], pid[cn]]), len(Q), self.cfg.k)
        src = np.concatenate([c, -2 - cn, [-1]])   # a last entry that padding (top == -1) picks
        return src[top], np.append(sim, np.float32(np.nan))[top]

    def neighbours(self, pid: np.ndarray, postdate: np.ndarray, emb: np.ndarray
                   ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
        """``(src, sims)`` (M, k) of the search, and of the search among visible labels (``labelled``)."""
        Q = pad_columns(np.ascontiguousarray(emb, np.float32))             # (M, D16)
        n_before = np.searchsorted(self.postdate_, postdate, "left")       # (M,) stored rows strictly earlier
        found, labelled = self._stored_candidates(Q, n_before, self._stored_rows_of(pid))
        S_new = Q @ Q.T                                                    # (M, M): every finite entry rescored
        S_new[postdate[None, :] >= postdate[:, None]] = -np.inf
        result = self._search(Q, found, S_new, pid, postdate)
        if labelled is None:
            return result, None
        return result, self._search(Q, labelled, np.full_like(S_new, -np.inf), pid, postdate)  # new: no label

    def rows(self, pid: np.ndarray, postdate: np.ndarray, uid: np.ndarray, emb: np.ndarray
             ) -> tuple[pa.Table, pa.Table]:
        """``(features_sequence, sequence_ids)`` rows of M new posts, in input order; the same columns
        as ``sequence_tables``. pid (M,) int64 (distinct), postdate (M,) epoch s, uid (M,) str or None,
        emb (M, D) float32 rows of the same embedding as the store's.
        """
        pid, postdate = np.asarray(pid, np.int64), np.asarray(postdate, np.int64)
        emb = np.asarray(emb, np.float32).reshape(len(pid), -1) if len(pid) else np.zeros((0, self.dim_), np.float32)
        if emb.shape[1] != self.dim_ or len(np.unique(pid)) != len(pid):
            raise ValueError(f"NeighbourLookup.rows: need distinct pids and {self.dim_}-d embeddings; "
                             f"got {len(pid)} pids ({len(np.unique(pid))} distinct), {emb.shape[1]}-d")
        found, labelled = self.neighbours(pid, postdate, emb)
        m = len(pid)
        stored = np.unique(np.concatenate([s[s >= 0] for s, _ in filter(None, (found, labelled))]))

        def local(search):  # (M + L, k) ids into [new posts, stored neighbours], sims
            src, sims = search
            ids = np.where(src >= 0, m + np.searchsorted(stored, src), np.where(src <= -2, -2 - src, -1))
            pad = np.full((len(stored), ids.shape[1]), -1, np.int64)
            return np.vstack([ids, pad]), np.vstack([sims, np.full(pad.shape, np.nan, np.float32)])

        codes: dict[str, int] = {}  # each user's code (order of appearance; only equality counts), -1: unknown
        uid_code = np.array([-1 if u is None else codes.setdefault(u, len(codes))
                             for u in np.concatenate([np.asarray(uid, object), self.uid_[stored]])], np.int64)
        y = np.concatenate([np.full(m, np.nan), self.y_visible_[stored]])
        tables = neighbour_tables(np.concatenate([pid, self.pid_[stored]]),
                                  np.concatenate([postdate, self.postdate_[stored]]), uid_code, y, local(found),
                                  None if labelled is None else local(labelled), self.cfg.l)
        return tables[0].slice(0, m), tables[1].slice(0, m)
