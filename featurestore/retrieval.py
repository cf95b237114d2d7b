"""FAISS retrieval over an embedding table: cosine indexes, persistence, time-safe neighbours.

Embeddings are rows of an ``(N, D)`` float32 matrix, L2-normalised by their producer, so the
inner product is the cosine similarity. Nothing here knows where the vectors came from.

``time_safe_neighbours`` is what sequence features use: for every post, the k most similar
posts published strictly earlier (a post with the same ``postdate`` is not earlier).

Tie rule: results are ordered by similarity, descending; among exactly equal similarities the
candidate that comes first in time order ``(postdate, tiebreak)`` wins. The ``exact`` method
guarantees the rule; the faiss methods can order exactly-equal similarities differently.
The ``exact`` method's similarities are ``exact_similarity.pair_similarities`` (the GEMM only
finds candidates), so they do not depend on ``block``, ``tile`` or ``rows``. Its query blocks
(``featurestore.neighbour_blocks``) are independent tasks of the current executor
(``featurestore.executor``; on Ray the embedding matrix is shipped once), so neither do they depend
on the executor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import faiss
import numpy as np

from featurestore.exact_similarity import gemm_margin, max_row_norm, pad_columns
from featurestore.executor import current_executor
from featurestore.neighbour_blocks import exact_block_task, stream_block

KINDS = ("flat", "hnsw", "ivfflat", "ivfpq")
METHODS = ("exact",) + KINDS  # ``exact``: numpy blocked GEMM; the others stream into a faiss index


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
    if index is not None:  # the index grows in time order: one block after the other
        for s in range(0, n, block):
            e = min(s + block, n)
            sims[s:e], pos[s:e] = stream_block(index, E, t, s, e, k)
    else:  # independent query blocks: tasks of the current executor, E shipped once
        blocks = [q for s in range(0, n, block) if (q := s + np.flatnonzero(wanted[s:s + block])).size]
        shared = {"E": E, "t": t, "k": k, "tile": tile, "cand": cand, "margin": margin}
        for q, (block_sims, block_pos) in zip(blocks, current_executor().run_tasks(exact_block_task, blocks,
                                                                                     shared=shared)):
            sims[q], pos[q] = block_sims, block_pos
    pos[~wanted] = -1
    ids = np.full((n, k), -1, np.int64)
    ids[order] = np.where(pos >= 0, order[np.maximum(pos, 0)], -1)
    out_sims = np.full((n, k), np.nan, np.float32)
    out_sims[order] = np.where(pos >= 0, sims, np.nan)
    return ids, out_sims
