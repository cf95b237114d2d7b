"""Embedding tables: ``(pid int64, postdate int64, embedding fixed_size_list<float32>[D])``, sorted by pid.

Every embedding table (this engineered one, and later learned text / image encoders) has that
shape with L2-normalised rows, so retrieval works on any of them unchanged.

``embed_engineered`` concatenates three blocks of existing features:
- text: the TF-IDF + SVD components ``text_svd_*`` of the text group,
- image: the engineered image statistics ``img_*`` (null when the image is missing),
- category: one-hot category / subcategory codes, vocabulary taken from the train split.
Numeric columns are standardised with means and SDs of the train split only, clipped, and
nulls / NaNs become 0 (the train mean) after standardising. Each block is scaled by
``weight / sqrt(columns)`` so that its expected squared norm is ``weight**2`` whatever its
width; then each row is L2-normalised (an all-zero row stays zero). What is learned on train
(each block's standardiser, each level's vocabulary) is an ``EngineeredEncoder``, which the
stage saves; a new post's vector is the loaded encoder's transform of its own inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from featurestore.standardise import Standardiser

EMBEDDING_COLUMN = "embedding"


@dataclass(frozen=True)
class EngineeredEmbeddingConfig:
    text_weight: float = 1.0
    image_weight: float = 1.0
    category_weight: float = 0.5
    text_table: str = "features_text"
    image_table: str = "features_image_stats"
    text_prefix: str = "text_svd_"
    image_prefix: str = "img_"
    category_levels: tuple[str, ...] = ("category", "subcategory")
    clip: float = 5.0             # standardised values are clipped to [-clip, clip] (heavy-tailed sizes)

    def __post_init__(self) -> None:
        if min(self.text_weight, self.image_weight, self.category_weight) < 0 or self.clip <= 0:
            raise ValueError("embed_engineered: weights must be >= 0 and clip > 0")
        if self.text_weight + self.image_weight + self.category_weight == 0:
            raise ValueError("embed_engineered: at least one block needs a positive weight")
        bad = set(self.category_levels) - {"category", "subcategory", "concept"}
        if bad:
            raise ValueError(f"embed_engineered: unknown category level(s) {sorted(bad)}")


# ---------------------------------------------------------------- shape-level helpers (any embedding)

def embedding_table(pid: np.ndarray, postdate: np.ndarray, emb: np.ndarray) -> pa.Table:
    """(N,), (N,), (N, D) -> the embedding table, sorted by pid."""
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    order = np.argsort(pid, kind="stable")
    values = pa.array(emb[order].ravel(), pa.float32())
    return pa.table({"pid": pa.array(np.asarray(pid, np.int64)[order]),
                     "postdate": pa.array(np.asarray(postdate, np.int64)[order]),
                     EMBEDDING_COLUMN: pa.FixedSizeListArray.from_arrays(values, emb.shape[1])})


def embedding_arrays(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An embedding table -> ``pid (N,) int64, postdate (N,) int64, emb (N, D) float32`` (table order)."""
    col = table[EMBEDDING_COLUMN].combine_chunks()
    dim = col.type.list_size
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return (table["pid"].to_numpy().astype(np.int64), table["postdate"].to_numpy().astype(np.int64),
            flat.reshape(len(table), dim))


def embedding_prefix(table_name: str) -> str:
    """Column prefix of an embedding table used as model input: ``embed_minilm`` -> ``emb_minilm_``."""
    return f"emb_{table_name.removeprefix('embed_')}_"


def embedding_columns(table: pa.Table, prefix: str) -> pa.Table:
    """An embedding table -> ``pid, postdate, <prefix>0 .. <prefix>{D-1}`` (float32), the same row order."""
    pid, postdate, emb = embedding_arrays(table)
    cols = {f"{prefix}{j}": pa.array(emb[:, j]) for j in range(emb.shape[1])}
    return pa.table({"pid": pa.array(pid), "postdate": pa.array(postdate), **cols})


def read_embeddings(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pid, postdate, emb)`` of an embedding Parquet file; see ``embedding_arrays``."""
    return embedding_arrays(pq.read_table(path, columns=["pid", "postdate", EMBEDDING_COLUMN]))


def align_rows(pid: np.ndarray, src_pid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows of (m, d) ``values`` keyed by ``src_pid`` (unique), in the order of ``pid``; NaN rows where absent."""
    order = np.argsort(src_pid, kind="stable")
    pos = np.clip(np.searchsorted(src_pid[order], pid), 0, max(len(src_pid) - 1, 0))
    out = np.full((len(pid), values.shape[1]), np.nan)
    if len(src_pid):
        hit = src_pid[order][pos] == pid
        out[hit] = values[order][pos[hit]]
    return out


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of (N, D) scaled to unit length; all-zero rows stay zero."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, eps)


# ---------------------------------------------------------------- the engineered embedding

def _numeric_columns(frame: pl.DataFrame, prefix: str) -> list[str]:
    cols = [c for c in frame.columns if c.startswith(prefix)]
    if not cols:
        raise ValueError(f"embed_engineered: no columns starting with {prefix!r}")
    return cols


def _numeric_values(frame: pl.DataFrame, cols: list[str]) -> np.ndarray:
    """(N, len(cols)) float64, NaN for null."""
    return frame.select(pl.col(cols).cast(pl.Float64)).to_numpy()


def _polars(frame: pl.DataFrame | pa.Table) -> pl.DataFrame:
    return pl.from_arrow(frame) if isinstance(frame, pa.Table) else frame


def _one_hot(values: list, vocab: list) -> np.ndarray:
    """(N, V) one-hot over ``vocab`` (other values, and nulls, are all-zero); at least one column."""
    code = {v: i for i, v in enumerate(vocab)}
    out = np.zeros((len(values), max(len(vocab), 1)))
    idx = np.array([code.get(v, -1) for v in values], dtype=np.int64)
    hit = idx >= 0
    out[np.flatnonzero(hit), idx[hit]] = 1.0
    return out


class EngineeredEncoder:
    """The engineered embedding as an estimator: ``fit`` on the train rows, ``transform`` any rows.

    Fitted: ``numeric_`` -- per numeric block (text, image) with a positive weight, its weight,
    columns and ``Standardiser``; ``vocab_`` -- per category level, ``(level, the sorted values
    seen in train rows)``; ``dim_`` -- the embedding width D. ``transform`` is row-wise: a row's vector
    depends on that row and the fitted state only.
    """

    def __init__(self, cfg: EngineeredEmbeddingConfig = EngineeredEmbeddingConfig()):
        self.cfg = cfg

    def fit(self, frame: pl.DataFrame | pa.Table, train: np.ndarray) -> "EngineeredEncoder":
        """frame: the blocks' input columns (``engineered_inputs``: ``text_svd_*``, ``img_*``, category
        levels), N rows; train: (N,) bool, the rows whose statistics and vocabularies are learned."""
        cfg, train, frame = self.cfg, np.asarray(train, bool), _polars(frame)
        self.numeric_ = []
        for prefix, weight in ((cfg.text_prefix, cfg.text_weight), (cfg.image_prefix, cfg.image_weight)):
            if weight > 0:
                cols = _numeric_columns(frame, prefix)
                scaler = Standardiser(cfg.clip).fit(_numeric_values(frame, cols)[train])
                self.numeric_.append((weight, cols, scaler))
        self.vocab_ = []
        if cfg.category_weight > 0:
            for level in cfg.category_levels:
                seen = frame[level].filter(pl.Series(train)).to_list()
                self.vocab_.append((level, sorted({v for v in seen if v is not None})))
        self.dim_ = (sum(len(cols) for _, cols, _ in self.numeric_)
                     + sum(max(len(v), 1) for _, v in self.vocab_))
        return self

    def transform(self, frame: pl.DataFrame | pa.Table) -> np.ndarray:
        """Inputs (N rows, the fitted columns; others are ignored) -> L2-normalised (N, D) float32 embedding."""
        frame = _polars(frame)
        return self.transform_values([_numeric_values(frame, cols) for _, cols, _ in self.numeric_],
                                     [frame[level].to_list() for level, _ in self.vocab_])

    def transform_values(self, numeric: list[np.ndarray], levels: list[list]) -> np.ndarray:
        """``transform`` of rows given as values: ``numeric[j]`` (N, len(cols)) float64 (NaN: missing) of
        the j-th fitted numeric block's columns, ``levels[j]`` the N values (None: missing) of the j-th
        category level -> L2-normalised (N, D) float32."""
        blocks = []  # each scaled to an expected squared norm of weight**2 on train rows
        for (weight, _, scaler), values in zip(self.numeric_, numeric, strict=True):
            z = scaler.transform(values)  # (N, D_block), unit variance on train
            blocks.append(z * (weight / np.sqrt(z.shape[1])))
        if self.vocab_:  # one unit vector per level
            onehot = np.hstack([_one_hot(values, vocab)
                                for (_, vocab), values in zip(self.vocab_, levels, strict=True)])
            blocks.append(onehot * (self.cfg.category_weight / np.sqrt(len(self.vocab_))))
        return l2_normalise(np.hstack(blocks)).astype(np.float32)  # (N, D)


def engineered_inputs(keys: pl.DataFrame, text: pl.DataFrame | None, image: pl.DataFrame | None,
                      categories: pl.DataFrame | None, cfg: EngineeredEmbeddingConfig) -> pl.DataFrame:
    """What the encoder reads: ``keys`` (pid, ...) left-joined with the text rows' ``text_svd_*``, the
    image-statistics rows' ``img_*`` and the categories' levels (each keyed by pid), sorted by pid.

    A source whose block has weight 0 is not read (may be None); a post missing from a source
    gets nulls there, which the encoder treats as missing values / unseen categories.
    """
    frame = keys.sort("pid")
    for src, prefix, weight in ((text, cfg.text_prefix, cfg.text_weight), (image, cfg.image_prefix, cfg.image_weight)):
        if weight > 0:
            frame = _left_join(frame, src.select("pid", *[c for c in src.columns if c.startswith(prefix)]))
    if cfg.category_weight > 0:
        frame = _left_join(frame, categories.select("pid", *cfg.category_levels))
    return frame


def _left_join(frame: pl.DataFrame, src: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (distinct pids, sorted) left-joined with ``src`` on pid, keeping frame's order. Where src
    holds exactly frame's pids in frame's order (a served post's own rows), its columns are appended
    without a join: the same frame, without planning a query (a millisecond per call)."""
    if src.height == frame.height and src["pid"].equals(frame["pid"]):
        return frame.hstack(src.drop("pid"))
    return frame.join(src, on="pid", how="left", maintain_order="left")


def _read_inputs(paths, cfg: EngineeredEmbeddingConfig) -> pl.DataFrame:
    """split (pid, postdate, split) with the encoder's inputs (``engineered_inputs``), sorted by pid."""
    def read(table: str, weight: float, columns: list[str] | None = None) -> pl.DataFrame | None:
        return pl.read_parquet(paths.table(table), columns=columns) if weight > 0 else None

    keys = pl.read_parquet(paths.table("split"), columns=["pid", "postdate", "split"])
    return engineered_inputs(keys, read(cfg.text_table, cfg.text_weight), read(cfg.image_table, cfg.image_weight),
                             read("categories", cfg.category_weight, ["pid", *cfg.category_levels]), cfg)


def engineered_matrix(frame: pl.DataFrame, train: np.ndarray, cfg: EngineeredEmbeddingConfig) -> np.ndarray:
    """Inputs (N rows) and a train mask (N,) -> L2-normalised (N, D) float32 embedding."""
    return EngineeredEncoder(cfg).fit(frame, train).transform(frame)


def build_engineered(paths, cfg: EngineeredEmbeddingConfig) -> tuple[pa.Table, EngineeredEncoder]:
    """The ``embed_engineered`` table for every post of the split and the encoder fitted on its train rows."""
    frame = _read_inputs(paths, cfg)
    encoder = EngineeredEncoder(cfg).fit(frame, (frame["split"] == "train").to_numpy())
    emb = encoder.transform(frame)
    return embedding_table(frame["pid"].to_numpy(), frame["postdate"].to_numpy(), emb), encoder


def engineered_embeddings(paths, cfg: EngineeredEmbeddingConfig) -> pa.Table:
    """The ``embed_engineered`` table for every post of the split (``paths``: ``featurestore.paths.Paths``)."""
    return build_engineered(paths, cfg)[0]
