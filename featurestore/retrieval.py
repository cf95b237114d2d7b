"""FAISS retrieval over an embedding table: cosine indexes, persistence, time-safe neighbours.

Embeddings are rows of an ``(N, D)`` float32 matrix, L2-normalised by their producer, so the
inner product is the cosine similarity. Nothing here knows where the vectors came from.

``time_safe_neighbours`` is what sequence features use: for every post, the k most similar
posts published strictly earlier (a post with the same ``postdate`` is not earlier).

Tie rule: results are ordered by similarity, descending; among exactly equal similarities the
candidate that comes first in time order ``(postdate, tiebreak)`` wins. The ``exact`` method
guarantees the rule; the faiss methods can order exactly-equal similarities differently.
The ``exact`` method's similarities are ``exact_similarity.pair_similarities`` (the GEMM only
finds candidates), so they do not depend on ``block``, ``tile`` or ``rows``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import faiss
import numpy as np

from featurestore.exact_similarity import gemm_margin, max_row_norm, pad_columns, pair_similarities

KINDS = ("flat", "hnsw", "ivfflat", "ivfpq")
METHODS = ("exact",) + KINDS  # ``exact``: numpy blocked GEMM; the others stream into a faiss index
_LOWEST = np.float32(-np.finfo(np.float32).max)  # a threshold that -inf (a masked candidate) never passes


class StaleIndexError(RuntimeError):
    """A persisted index was built from a different embedding table than the one given."""


@dataclass(frozen=True)
class IndexConfig:
    kind: str = "flat"           # flat (exact) | hnsw | ivfflat | ivfpq
    hnsw_m: int = 32             # HNSW graph degree
    ef_construction: int = 80
    ef_search: int = 128
    nlist: int = 0               # IVF lists; 0: 4 * sqrt(N), at most train_size / 39
    nprobe: int = 32
    pq_m: int = 16               # IVF-PQ sub-quantizers (a divisor of D is chosen when D % pq_m != 0)
    pq_bits: int = 8
    train_size: int = 65_536     # vectors the IVF quantizers are trained on (a seeded sample)
    use_gpu: bool = True         # move to every GPU when faiss sees one (faiss-gpu builds only)
    seed: int = 42

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"index kind must be one of {KINDS}; got {self.kind!r}")


# ---------------------------------------------------------------- building and persisting indexes

def _nlist(cfg: IndexConfig, n_index: int, n_train: int) -> int:
    """IVF lists: ``cfg.nlist`` or 4 sqrt(index size), at most train / 39 (faiss's k-means minimum)."""
    want = cfg.nlist or int(4 * np.sqrt(max(n_index, 1)))
    return int(max(1, min(want, n_train // 39)))


def _pq_m(cfg: IndexConfig, dim: int) -> int:
    return max(m for m in range(1, min(cfg.pq_m, dim) + 1) if dim % m == 0)


def make_index(dim: int, config: IndexConfig | None = None, train: np.ndarray | None = None,
               n_index: int | None = None) -> faiss.Index:
    """An empty inner-product index of ``config.kind``; IVF kinds are trained on ``train`` (M, D).

    n_index: how many vectors the index will hold (sizes the IVF lists; default len(train)).
    """
    cfg = config or IndexConfig()
    if cfg.kind == "flat":
        return faiss.IndexFlatIP(dim)
    if cfg.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.ef_construction
        index.hnsw.efSearch = cfg.ef_search
        return index
    if train is None or len(train) == 0:
        raise ValueError(f"index kind {cfg.kind} needs training vectors")
    rng = np.random.default_rng(cfg.seed)
    sample = train if len(train) <= cfg.train_size else train[np.sort(rng.choice(len(train), cfg.train_size, False))]
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    nlist = _nlist(cfg, n_index or len(train), len(sample))
    quantizer = faiss.IndexFlatIP(dim)
    if cfg.kind == "ivfflat":
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        bits = min(cfg.pq_bits, max(1, int(np.log2(max(len(sample) // 39, 2)))))  # PQ needs ~39 * 2^bits points
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, _pq_m(cfg, dim), bits, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = cfg.seed
    index.train(sample)
    index.nprobe = min(cfg.nprobe, nlist)
    return index  # faiss's Python wrapper keeps ``quantizer`` alive with the index


def maybe_to_gpu(index: faiss.Index, config: IndexConfig | None = None) -> faiss.Index:
    """The index on every visible GPU when the config allows and this faiss build has GPUs (not HNSW:
    faiss has no GPU HNSW). Untested here: this machine has neither a GPU nor faiss-gpu."""
    cfg = config or IndexConfig()
    if cfg.use_gpu and cfg.kind != "hnsw" and hasattr(faiss, "index_cpu_to_all_gpus") and faiss.get_num_gpus() > 0:
        return faiss.index_cpu_to_all_gpus(index)
    return index


def build_index(emb: np.ndarray, kind: str = "flat", *, config: IndexConfig | None = None,
                train: np.ndarray | None = None) -> faiss.Index:
    """An index over ``emb`` (N, D) float32, rows L2-normalised; row i gets id i.

    ``train`` (M, D): vectors the IVF quantizers learn from (default: ``emb``; pass the train
    split's rows to keep everything learned on train only).
    """
    cfg = replace(config or IndexConfig(), kind=kind)
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    index = make_index(emb.shape[1], cfg, emb if train is None else train, n_index=len(emb))
    index = maybe_to_gpu(index, cfg)
    index.add(emb)
    return index


def _sidecar(path: Path) -> tuple[Path, Path]:
    path = Path(path)
    return path.with_suffix(".json"), path.with_suffix(".ids.npz")


def save_index(index: faiss.Index, path: Path, pids: np.ndarray, postdate: np.ndarray, content_hash: str,
               config: IndexConfig | None = None) -> Path:
    """Write ``path`` (faiss), ``path.ids.npz`` (row -> pid, postdate) and ``path.json`` (hash, shape, config).

    ``content_hash``: md5 of the embedding table file the index was built from.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu = faiss.index_gpu_to_cpu(index) if hasattr(faiss, "index_gpu_to_cpu") and faiss.get_num_gpus() > 0 else index
    faiss.write_index(cpu, str(path))
    meta_path, ids_path = _sidecar(path)
    np.savez(ids_path, pids=np.asarray(pids, np.int64), postdate=np.asarray(postdate, np.int64))
    meta = {"content_hash": content_hash, "n": int(index.ntotal), "dim": int(index.d),
            "config": asdict(config or IndexConfig()), "index_file": path.name, "ids_file": ids_path.name}
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


@dataclass(frozen=True)
class LoadedIndex:
    index: faiss.Index
    pids: np.ndarray       # (N,) int64: row -> pid
    postdate: np.ndarray   # (N,) int64: row -> post date (epoch s)
    meta: dict


def load_index(path: Path, expected_hash: str,
               rebuild: Callable[[], tuple[faiss.Index, np.ndarray, np.ndarray, IndexConfig]] | None = None,
               gpu: bool = False) -> LoadedIndex:
    """Load a persisted index, checking that it was built from the table with ``expected_hash``.

    A missing or stale index raises ``StaleIndexError``, unless ``rebuild`` is given: then
    ``rebuild() -> (index, pids, postdate, config)`` is called, saved in place and returned.
    gpu: move to the GPUs as the saved config allows (CPU by default: ``search_before``'s
    ``IDSelectorRange`` needs a CPU index, and one query at a time is fast on CPU).
    """
    meta_path, ids_path = _sidecar(path)
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    fresh = meta is not None and meta.get("content_hash") == expected_hash and Path(path).is_file() \
        and ids_path.is_file()
    if not fresh:
        if rebuild is None:
            got = meta.get("content_hash") if meta else "no index"
            raise StaleIndexError(f"{path}: built from embedding table {got}, expected {expected_hash}")
        index, pids, postdate, cfg = rebuild()
        save_index(index, path, pids, postdate, expected_hash, cfg)
        return load_index(path, expected_hash, gpu=gpu)
    ids = np.load(ids_path)
    index = faiss.read_index(str(path))
    if index.ntotal != len(ids["pids"]):
        raise StaleIndexError(f"{path}: {index.ntotal} vectors but {len(ids['pids'])} pids")
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = meta["config"]["ef_search"]
    elif hasattr(index, "nprobe"):
        index.nprobe = min(meta["config"]["nprobe"], index.nlist)
    if gpu:
        index = maybe_to_gpu(index, IndexConfig(**meta["config"]))
    return LoadedIndex(index, ids["pids"], ids["postdate"], meta)


def _flat_search(index: faiss.IndexFlat, query: np.ndarray, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A few queries (Q, D) against rows [0, n) of a flat index, by BLAS on its stored vectors.

    faiss scans for a single query on one thread; a multi-threaded GEMV over a zero-copy view
    is ~2.5x faster at 486k x 512. Returned rows are ordered by similarity, then row.
    """
    sims = np.full((len(query), k), -np.inf, np.float32)
    ids = np.full((len(query), k), -1, np.int64)
    n = min(int(n), index.ntotal)
    if n <= 0:
        return sims, ids
    xb = faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)
    S = query @ xb[:n].T                                          # (Q, n)
    top = np.argpartition(-S, k - 1, axis=1)[:, :k] if n > k else np.broadcast_to(np.arange(n), (len(S), n))
    for i in range(len(S)):
        o = top[i][np.lexsort((top[i], -S[i, top[i]]))]
        sims[i, :len(o)], ids[i, :len(o)] = S[i, o], o
    return sims, ids


def search_before(index: faiss.Index, query: np.ndarray, k: int, n_before: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Search ``query`` (Q, D); with ``n_before``, only among rows [0, n_before) (an ``IDSelectorRange``).

    Returns ``(sims (Q, k) float32, ids (Q, k) int64)``, -1 ids where fewer exist.
    """
    query = np.ascontiguousarray(query, dtype=np.float32)
    if isinstance(index, faiss.IndexFlat) and len(query) <= 16:
        return _flat_search(index, query, k, index.ntotal if n_before is None else n_before)
    if n_before is None:
        return index.search(query, k)
    if n_before <= 0:
        return np.full((len(query), k), np.nan, np.float32), np.full((len(query), k), -1, np.int64)
    sel = faiss.IDSelectorRange(0, int(n_before))
    if hasattr(index, "hnsw"):
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=index.hnsw.efSearch)
    elif hasattr(index, "nprobe"):
        params = faiss.SearchParametersIVF(sel=sel, nprobe=index.nprobe)
    else:
        params = faiss.SearchParameters(sel=sel)
    return index.search(query, k, params=params)


# ---------------------------------------------------------------- time-safe neighbours

def _merge_topk(rows: np.ndarray, sims: np.ndarray, pos: np.ndarray, n_rows: int, k: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k per row of a sparse candidate pool under the tie rule; returns (sims, pos) (n_rows, k).

    rows, sims, pos: (P,) -- query row, similarity and time-order position of each candidate.
    """
    out_s = np.full((n_rows, k), -np.inf, np.float32)
    out_p = np.full((n_rows, k), -1, np.int64)
    keep = np.isfinite(sims)
    rows, sims, pos = rows[keep], sims[keep], pos[keep]
    order = np.lexsort((pos, -sims, rows))
    rows, sims, pos = rows[order], sims[order], pos[order]
    starts = np.searchsorted(rows, np.arange(n_rows))
    rank = np.arange(len(rows)) - starts[rows]
    top = rank < k
    out_s[rows[top], rank[top]] = sims[top]
    out_p[rows[top], rank[top]] = pos[top]
    return out_s, out_p


def _mask_not_earlier(S: np.ndarray, t_query: np.ndarray, t_cols: np.ndarray) -> None:
    """Set S[i, j] = -inf where candidate j is not strictly earlier than query i (in place)."""
    S[t_cols[None, :] >= t_query[:, None]] = -np.inf


def _candidates(S: np.ndarray, thr: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries of S (B, T) at or above their row's threshold thr (B,): (rows, sims, offset + cols)."""
    flat = np.flatnonzero(S >= thr[:, None])     # 1-D nonzero: ~10x faster than the 2-D form
    r, c = np.divmod(flat, S.shape[1])
    return r, S.ravel()[flat], offset + c


def _update(best_s: np.ndarray, best_p: np.ndarray, cand: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Merge candidates into the running top-k (B, k) in place; returns the new thresholds (B,)."""
    r, sims, pos = cand
    if len(r):
        rows = np.unique(r)                      # only rows with candidates are re-ranked
        local = np.searchsorted(rows, r)
        k = best_s.shape[1]
        new_s, new_p = _merge_topk(np.concatenate([np.repeat(np.arange(len(rows)), k), local]),
                                   np.concatenate([best_s[rows].ravel(), sims]),
                                   np.concatenate([best_p[rows].ravel(), pos]), len(rows), k)
        best_s[rows], best_p[rows] = new_s, new_p
    kth = best_s[:, -1]
    return np.where(np.isfinite(kth), kth, _LOWEST).astype(np.float32)


def _near_best(cand: tuple[np.ndarray, np.ndarray, np.ndarray], floor: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates (rows, sims, pos) at or above their row's ``floor`` (B,)."""
    r, sims, pos = cand
    keep = sims >= floor[r]
    return r[keep], sims[keep], pos[keep]


def _exact_block(E: np.ndarray, t: np.ndarray, q: np.ndarray, k: int, tile: int, cand: np.ndarray | None = None,
                 margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k among strictly earlier rows for the time-sorted query positions q (B,); (sims, pos) (B, k).

    cand: (N,) bool in time order, the rows that may be returned (default: all).
    margin: ``gemm_margin``; GEMM entries within it of a row's k-th best are rescored pair by pair.
    """
    Q = E[q]                                     # (B, D)
    B, e = len(q), int(q[-1]) + 1                # no row at or after the last query is earlier than any query
    tq = t[q]
    lo = int(np.searchsorted(t, tq[0], "left"))  # rows [0, lo) are earlier than every query here
    best_s = np.full((B, k), -np.inf, np.float32)
    best_p = np.full((B, k), -1, np.int64)
    thr = np.full(B, _LOWEST, np.float32)        # (B,) lower bound of each row's k-th best
    margin = np.float32(margin)
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pool = (np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64))  # near the k-th best
    n_pending = 0
    for c0 in range(0, e, tile):
        c1 = min(c0 + tile, e)
        S = Q @ E[c0:c1].T                       # (B, T) cosine similarities, float32 rounding
        if c1 > lo:
            m0 = max(lo, c0)
            _mask_not_earlier(S[:, m0 - c0:], tq, t[m0:c1])
        if cand is not None:
            S[:, ~cand[c0:c1]] = -np.inf
        if c0 == 0 and c1 > 4 * k:               # a valid lower bound: k-th best of a subset of the row
            sub = S[:, :: max(1, c1 // 2048)]
            thr = np.maximum(thr, np.partition(sub, sub.shape[1] - k, axis=1)[:, sub.shape[1] - k])
        pending.append(_candidates(S, thr - margin, c0))
        n_pending += len(pending[-1][0])
        if n_pending > B * k or c1 == e:         # merging is costly: only when enough has piled up
            fresh = tuple(np.concatenate(x) for x in zip(*pending))
            thr = _update(best_s, best_p, fresh)
            pool = _near_best(tuple(np.concatenate(x) for x in zip(pool, fresh)), thr - margin)
            pending, n_pending = [], 0
    r, _, pos = pool
    return _merge_topk(r, pair_similarities(Q[r], E[pos]), pos, B, k)


def _stream_block(index: faiss.Index, E: np.ndarray, t: np.ndarray, s: int, e: int, k: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k for queries [s, e) from an index holding rows [0, lo) plus the local rows [lo, e)."""
    B = e - s
    lo = int(np.searchsorted(t, t[s], "left"))
    if index.ntotal < lo:
        index.add(E[index.ntotal:lo])
    best_s = np.full((B, k), -np.inf, np.float32)
    best_p = np.full((B, k), -1, np.int64)
    thr = np.full(B, _LOWEST, np.float32)
    if lo > 0:
        D, I = index.search(E[s:e], k)           # (B, k), ids = time-order positions
        r, c = np.nonzero(I >= 0)
        thr = _update(best_s, best_p, (r, D[r, c].astype(np.float32), I[r, c]))
    S = E[s:e] @ E[lo:e].T                        # (B, e - lo): the rows not yet in the index
    _mask_not_earlier(S, t[s:e], t[lo:e])
    short = np.flatnonzero(thr == _LOWEST)        # rows the index gave < k results: bound them locally
    if len(short) and S.shape[1] > k:
        kth = np.partition(S[short], S.shape[1] - k, axis=1)[:, S.shape[1] - k]
        thr[short] = np.maximum(kth, _LOWEST)
    _update(best_s, best_p, _candidates(S, thr, lo))
    return best_s, best_p


def time_safe_neighbours(emb: np.ndarray, postdate: np.ndarray, k: int, block: int = 4096, *,
                         method: str = "exact", tiebreak: np.ndarray | None = None,
                         config: IndexConfig | None = None, train_mask: np.ndarray | None = None,
                         tile: int | None = None, rows: np.ndarray | None = None,
                         candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For every row, its k most similar rows with a strictly smaller ``postdate``; never itself.

    emb: (N, D) float32, L2-normalised rows. postdate: (N,) int64 epoch seconds.
    tiebreak: (N,) int64, orders same-second posts for the tie rule (e.g. pid; default: row).
    method: ``exact`` (blocked GEMM over the earlier rows, numpy/BLAS) or a faiss kind
    (``flat`` is exact too; ``hnsw``/``ivfflat``/``ivfpq`` approximate) filled in time order.
    train_mask: (N,) bool, rows the IVF quantizers may learn from (default: all).
    rows: (N,) bool, the rows to search for (default: all); the others get padding. With
    ``exact`` only their blocks are computed (``smpp predict``: a few new posts against the store).
    candidates: (N,) bool, the rows that may be returned as neighbours (default: all; ``exact`` only),
    e.g. the posts whose label is visible.
    Returns ``ids (N, k) int64`` (row numbers of ``emb``, -1 padding) and ``sims (N, k) float32``
    (NaN padding), most similar first.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if candidates is not None and method != "exact":
        raise ValueError(f"time_safe_neighbours: candidates need method 'exact'; got {method!r}")
    n = len(emb)
    postdate = np.asarray(postdate, np.int64)
    order = np.lexsort((np.arange(n) if tiebreak is None else np.asarray(tiebreak), postdate))
    E = np.ascontiguousarray(emb[order], dtype=np.float32)  # (N, D) in time order
    if method == "exact":
        E = pad_columns(E)
    margin = gemm_margin(E.shape[1], max_row_norm(E)) if method == "exact" else 0.0
    t = postdate[order]
    tile = tile or max(1024, (1 << 24) // max(block, 1))
    index = None
    if method != "exact":
        cfg = replace(config or IndexConfig(), kind=method)
        train = E if train_mask is None else np.ascontiguousarray(emb[np.asarray(train_mask, bool)], np.float32)
        index = maybe_to_gpu(make_index(E.shape[1], cfg, train if method.startswith("ivf") else None, n), cfg)
    sims = np.full((n, k), -np.inf, np.float32)
    pos = np.full((n, k), -1, np.int64)
    wanted = np.ones(n, bool) if rows is None else np.asarray(rows, bool)[order]  # (N,) in time order
    cand = None if candidates is None else np.asarray(candidates, bool)[order]
    for s in range(0, n, block):
        e = min(s + block, n)
        if index is not None:
            sims[s:e], pos[s:e] = _stream_block(index, E, t, s, e, k)
        elif (q := s + np.flatnonzero(wanted[s:e])).size:
            sims[q], pos[q] = _exact_block(E, t, q, k, tile, cand, margin)
    pos[~wanted] = -1
    ids = np.full((n, k), -1, np.int64)
    ids[order] = np.where(pos >= 0, order[np.maximum(pos, 0)], -1)
    out_sims = np.full((n, k), np.nan, np.float32)
    out_sims[order] = np.where(pos >= 0, sims, np.nan)
    return ids, out_sims
