"""Feature group ``sequence``: what the most similar EARLIER posts achieved.

For every post, ``featurestore.retrieval.time_safe_neighbours`` finds its k most similar posts in an
embedding table (default ``embed_engineered``) published strictly earlier. Only labels that
are visible at prediction time (``split.label_visible``: the train split's) are read: a
neighbour with an invisible label counts for the similarity statistics, never for the label
ones. Since every neighbour is earlier and only train labels are read, changing a later label
or any val/test label leaves every row unchanged (tested).

With ``labelled`` a second exact search looks only among posts whose label is visible, and its
statistics are the ``seq_lab_*`` columns: the nearest earlier posts of a test post are mostly
val/test posts without a visible label, so the first set's label statistics thin out over time,
while the labelled set keeps k labels for every post. Off by default: on the simulated default
set it lowered LightGBM's SRC (val 0.683 -> 0.679, test 0.668 -> 0.656; BENCHMARKS.md).

Two tables come out of the (first) neighbour search:
- ``features_sequence`` (model inputs, ``seq_*``): label and similarity statistics of the k, and
  per-neighbour columns ``seq_nb<i>_<field>`` of the top l (the DSN-style sequence head's input);
- ``sequence_ids`` (NOT model inputs): the top-l neighbours' pids ``seq_nb_pid_<i>`` and
  similarities ``seq_nb_sim_<i>``, for a neural sequence head that embeds them itself.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from featurestore.embeddings import read_embeddings
from featurestore.retrieval import METHODS, IndexConfig, time_safe_neighbours

DAY_S = 86_400.0


@dataclass(frozen=True)
class SequenceConfig:
    embedding: str = "embed_engineered"  # any embedding table (pid, postdate, embedding[D])
    k: int = 16                          # neighbours summarised per post
    l: int = 8                           # neighbours listed in sequence_ids (<= k)
    index: str = "exact"                 # exact (blocked GEMM) | flat | hnsw | ivfflat | ivfpq
    block: int = 4096                    # queries per block
    nprobe: int = 32                     # ivf*: lists visited per query
    ef_search: int = 128                 # hnsw: candidate list size
    hnsw_m: int = 32
    seed: int = 42
    labelled: bool = False               # also seq_lab_*: the k most similar earlier posts WITH a visible label

    def __post_init__(self) -> None:
        if not 1 <= self.l <= self.k:
            raise ValueError(f"features_sequence: need 1 <= l <= k; got l={self.l}, k={self.k}")
        if self.index not in METHODS:
            raise ValueError(f"features_sequence.index must be one of {METHODS}; got {self.index!r}")

    def index_config(self) -> IndexConfig:
        kind = "flat" if self.index == "exact" else self.index
        return IndexConfig(kind=kind, nprobe=self.nprobe, ef_search=self.ef_search, hnsw_m=self.hnsw_m,
                           seed=self.seed, use_gpu=True)


def sequence_inputs(paths, cfg: SequenceConfig) -> tuple[pl.DataFrame, np.ndarray]:
    """Posts of the embedding table (sorted by pid) with split, visible label and user; and emb (N, D)."""
    pid, _, emb = read_embeddings(paths.table(cfg.embedding))
    order = np.argsort(pid, kind="stable")
    pid, emb = pid[order], emb[order]
    split = pl.read_parquet(paths.table("split"), columns=["pid", "postdate", "split", "label_visible"])
    labels = pl.read_parquet(paths.table("labels"), columns=["pid", "label"])
    users = pl.read_parquet(paths.table("posts"), columns=["pid", "uid"])
    frame = (pl.DataFrame({"pid": pid}).join(split, on="pid", how="left").join(labels, on="pid", how="left")
             .join(users, on="pid", how="left"))
    if frame["postdate"].null_count():
        raise ValueError(f"{cfg.embedding}: {frame['postdate'].null_count()} posts are not in the split table")
    visible = pl.when(pl.col("label_visible").fill_null(False)).then(pl.col("label")).otherwise(None)
    frame = frame.with_columns(y_visible=visible, uid_code=pl.col("uid").rank("dense").fill_null(0).cast(pl.Int64) - 1)
    return frame, emb


def _nan_mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise weighted mean of (N, k) ``x`` over positive weights ``w``; NaN for rows without any."""
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (np.nan_to_num(x) * w).sum(axis=1) / np.where(total > 0, total, 1), np.nan)


def neighbour_features(ids: np.ndarray, sims: np.ndarray, postdate: np.ndarray, uid_code: np.ndarray,
                       y_visible: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of each post's neighbours; every output is (N,) float64, NaN where undefined.

    ids (N, k) int64 rows (-1: none), sims (N, k) float32 (NaN: none), most similar first;
    postdate (N,) epoch s; uid_code (N,) int64 (-1: unknown user); y_visible (N,) NaN when hidden.
    """
    valid = ids >= 0                                           # (N, k)
    safe = np.where(valid, ids, 0)
    y = np.where(valid, y_visible[safe], np.nan)               # (N, k) neighbours' visible labels
    has = np.isfinite(y)
    s = np.where(valid, sims.astype(np.float64), np.nan)
    same = valid & (uid_code[safe] == uid_code[:, None]) & (uid_code[:, None] >= 0)
    gap = np.where(valid, (postdate[:, None] - postdate[safe]) / DAY_S, np.nan)  # (N, k) days, > 0
    first_label = np.argmax(has, axis=1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: posts without neighbours
        out = {
            "seq_label_wmean": _nan_mean(y, np.where(has, np.clip(s, 0, None) + 1e-6, 0.0)),
            "seq_label_mean": _nan_mean(y, has.astype(np.float64)),
            "seq_label_max": np.nanmax(np.where(has, y, -np.inf), axis=1),
            "seq_label_std": np.nanstd(y, axis=1),
            "seq_label_top1": np.where(has.any(axis=1), y[np.arange(len(y)), first_label], np.nan),
            "seq_label_count": has.sum(axis=1).astype(np.float64),
            "seq_n_found": valid.sum(axis=1).astype(np.float64),
            "seq_sim_mean": np.nanmean(s, axis=1),
            "seq_sim_max": s[:, 0] if s.shape[1] else np.full(len(s), np.nan),
            "seq_same_user_share": np.where(valid.any(axis=1), same.sum(axis=1) / np.maximum(valid.sum(axis=1), 1),
                                            np.nan),
            "seq_same_user_label_mean": _nan_mean(y, (same & has).astype(np.float64)),
            "seq_gap_recent_days": np.nanmin(gap, axis=1),
            "seq_gap_top1_days": gap[:, 0] if gap.shape[1] else np.full(len(s), np.nan),
        }
    out["seq_label_max"][~has.any(axis=1)] = np.nan
    return out


def neighbour_columns(ids: np.ndarray, sims: np.ndarray, postdate: np.ndarray, uid_code: np.ndarray,
                      y_visible: np.ndarray, l: int) -> dict[str, np.ndarray]:
    """Per-neighbour inputs of a sequence head for the top ``l``: ``seq_nb<i>_<field>`` (N,) float64.

    Fields: ``label`` (visible label, NaN otherwise), ``has_label`` (0/1), ``sim``, ``gap_days``
    (log1p of the gap in days), ``same_user`` (0/1); all NaN where there is no i-th neighbour.
    Same inputs as ``neighbour_features``.
    """
    ids, sims = ids[:, :l], sims[:, :l]
    valid = ids >= 0                                           # (N, l)
    safe = np.where(valid, ids, 0)
    y = np.where(valid, y_visible[safe], np.nan)
    fields = {
        "label": y,
        "has_label": np.where(valid, np.isfinite(y), np.nan),
        "sim": np.where(valid, sims.astype(np.float64), np.nan),
        "gap_days": np.where(valid, np.log1p(np.maximum(postdate[:, None] - postdate[safe], 0) / DAY_S), np.nan),
        "same_user": np.where(valid, (uid_code[safe] == uid_code[:, None]) & (uid_code[:, None] >= 0), np.nan),
    }
    return {f"seq_nb{i}_{name}": v[:, i].astype(np.float64) for i in range(ids.shape[1]) for name, v in fields.items()}


def neighbour_id_columns(ids: np.ndarray, sims: np.ndarray, pids: np.ndarray, l: int) -> dict[str, pa.Array]:
    """``seq_nb_pid_<i>`` (int64, null: none) and ``seq_nb_sim_<i>`` (float32) for the top ``l``."""
    cols = {}
    for i in range(l):
        valid = ids[:, i] >= 0
        cols[f"seq_nb_pid_{i}"] = pa.array(np.where(valid, pids[np.maximum(ids[:, i], 0)], 0), pa.int64(),
                                          mask=~valid)
    for i in range(l):
        valid = ids[:, i] >= 0
        cols[f"seq_nb_sim_{i}"] = pa.array(np.where(valid, sims[:, i], 0).astype(np.float32), pa.float32(),
                                          mask=~valid)
    return cols


def neighbour_tables(pid: np.ndarray, postdate: np.ndarray, uid_code: np.ndarray, y_visible: np.ndarray,
                     found: tuple[np.ndarray, np.ndarray], labelled: tuple[np.ndarray, np.ndarray] | None, l: int
                     ) -> tuple[pa.Table, pa.Table]:
    """``(features_sequence, sequence_ids)`` rows, one per row of the arrays, in their order.

    pid, postdate, uid_code, y_visible: (N,) as in ``neighbour_features``; found: ``(ids, sims)``
    (N, k) of the neighbour search, row numbers of these arrays; labelled: the same of the
    search among visible labels (``seq_lab_*`` columns), or None.
    """
    ids, sims = found
    feats = (neighbour_features(ids, sims, postdate, uid_code, y_visible)
             | neighbour_columns(ids, sims, postdate, uid_code, y_visible, l))
    if labelled is not None:
        lab = neighbour_features(*labelled, postdate, uid_code, y_visible)
        feats |= {"seq_lab_" + n.removeprefix("seq_"): v for n, v in lab.items() if n != "seq_label_count"}
    key = {"pid": pa.array(pid, pa.int64()), "postdate": pa.array(postdate, pa.int64())}
    features = pa.table({**key, **{n: pa.array(v, pa.float64(), from_pandas=True) for n, v in feats.items()}})
    return features, pa.table({**key, **neighbour_id_columns(ids, sims, pid, l)})


def sequence_tables(paths, cfg: SequenceConfig) -> tuple[pa.Table, pa.Table]:
    """``(features_sequence, sequence_ids)`` for every post of the embedding table, sorted by pid
    (new posts: ``featurestore.sequence_online.NeighbourLookup``)."""
    frame, emb = sequence_inputs(paths, cfg)
    pids = frame["pid"].to_numpy()
    postdate = frame["postdate"].to_numpy().astype(np.int64)
    found = time_safe_neighbours(emb, postdate, cfg.k, cfg.block, method=cfg.index, tiebreak=pids,
                                 config=cfg.index_config(), train_mask=(frame["split"] == "train").to_numpy())
    y_visible = frame["y_visible"].fill_null(np.nan).to_numpy().astype(np.float64)
    labelled = None
    if cfg.labelled:
        if cfg.index != "exact":
            raise ValueError("features_sequence.labelled needs index: exact (set labelled: false for approximate indexes)")
        labelled = time_safe_neighbours(emb, postdate, cfg.k, cfg.block, method="exact", tiebreak=pids,
                                        candidates=np.isfinite(y_visible))
    return neighbour_tables(pids, postdate, frame["uid_code"].to_numpy(), y_visible, found, labelled, cfg.l)


def sequence_features(paths, cfg: SequenceConfig) -> pa.Table:
    """The ``features_sequence`` table alone (the ``FeatureGroup.build`` of group ``sequence``)."""
    return sequence_tables(paths, cfg)[0]


# ---------------------------------------------------------------- the one neighbour source for analysis

def stored_neighbours(paths, pids: list[int], k: int) -> dict[int, list[tuple[int, float]]]:
    """``{pid: [(neighbour pid, similarity), ...]}``: the top ``k`` earlier neighbours each post's sequence
    features were computed from, read back from the ``sequence_ids`` table (``k`` <= the stored ``l``).

    A pid that is not in the table gets an empty list.
    """
    table = pl.read_parquet(paths.table("sequence_ids"))
    l = sum(c.startswith("seq_nb_pid_") for c in table.columns)
    if k > l:
        raise ValueError(f"{k} neighbours asked for, but the sequence features stored {l} per post "
                         f"(features_sequence.l); ask for at most {l}")
    rows = {int(r["pid"]): r for r in table.filter(pl.col("pid").is_in(list(pids))).iter_rows(named=True)}
    out = {}
    for pid in pids:
        r = rows.get(int(pid))
        out[int(pid)] = [] if r is None else [(int(r[f"seq_nb_pid_{i}"]), float(r[f"seq_nb_sim_{i}"]))
                                               for i in range(k) if r[f"seq_nb_pid_{i}"] is not None]
    return out


def earlier_neighbours(paths, pids: list[int], k: int, cfg: SequenceConfig = SequenceConfig()
                       ) -> dict[int, list[tuple[int, float]]]:
    """``{pid: [(neighbour pid, similarity), ...]}``: the ``k`` most similar posts published strictly
    earlier, by the same search the sequence features use (``cfg``'s embedding and method); any ``k``.
    """
    frame, emb = sequence_inputs(paths, cfg)
    all_pids = frame["pid"].to_numpy()
    rows = np.isin(all_pids, np.asarray(pids, np.int64))
    ids, sims = time_safe_neighbours(emb, frame["postdate"].to_numpy().astype(np.int64), k, cfg.block,
                                     method=cfg.index, tiebreak=all_pids, config=cfg.index_config(),
                                     train_mask=(frame["split"] == "train").to_numpy(), rows=rows)
    found = {int(all_pids[r]): [(int(all_pids[j]), float(s)) for j, s in zip(ids[r], sims[r]) if j >= 0]
             for r in np.flatnonzero(rows)}
    return {int(p): found.get(int(p), []) for p in pids}
