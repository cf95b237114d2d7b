"""``smpp similar``: the posts most like one post, with labels, predictions and thumbnails.

Any-time neighbours come from a persisted FAISS index over an embedding table (rebuilt when the
table's content hash changed, never used stale). ``before_only`` neighbours are the posts
published strictly earlier, found by the same time-safe search that computed the sequence
features (``featurestore.features_sequence.earlier_neighbours``), so they are the posts the model saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from featurestore.catalog import file_md5
from featurestore.embeddings import read_embeddings
from featurestore.features_sequence import SequenceConfig, earlier_neighbours
from featurestore.paths import Paths
from featurestore.retrieval import IndexConfig, LoadedIndex, build_index, load_index, search_before
from featurestore.table_specs import get_table
from pipelines.analysis import html_kit as H
from pipelines.analysis.posts import describe_posts

INDEX_DIR = "data/index"  # a cache keyed by the embedding table's md5, not a DVC output
COLUMNS = ("rank", "pid", "uid", "category", "title", "date", "split", "label", "prediction", "error", "similarity",
           "image")


def index_path(root: Path, embedding: str, kind: str) -> Path:
    return Path(root) / INDEX_DIR / f"{embedding}.{kind}.faiss"


def open_index(root: Path, embedding: str = "embed_engineered", config: IndexConfig | None = None) -> LoadedIndex:
    """The index over ``embedding`` with rows in time order (postdate, pid); (re)built when stale."""
    cfg = config or IndexConfig()
    table = Path(root) / get_table(embedding).path
    if not table.is_file():
        raise FileNotFoundError(f"{table} does not exist: run the stage that writes {embedding} first")

    def rebuild():
        pid, postdate, emb = read_embeddings(table)
        order = np.lexsort((pid, postdate))  # time order: rows [0, n) are the n earliest posts
        return build_index(emb[order], cfg.kind, config=cfg), pid[order], postdate[order], cfg

    loaded = load_index(index_path(root, embedding, cfg.kind), file_md5(table), rebuild=rebuild)
    if hasattr(loaded.index, "make_direct_map"):  # IVF: lets ``reconstruct`` fetch a stored vector
        loaded.index.make_direct_map()
    return loaded


def any_time_neighbours(loaded: LoadedIndex, pid: int, k: int) -> list[tuple[int, float]]:
    """The ``k`` posts nearest to stored post ``pid`` at any date, itself left out."""
    rows = np.flatnonzero(loaded.pids == pid)
    if len(rows) == 0:
        raise KeyError(f"post {pid} is not in the index")
    sims, found = search_before(loaded.index, loaded.index.reconstruct(int(rows[0])).reshape(1, -1), k + 1, None)
    keep = (found[0] >= 0) & (loaded.pids[np.maximum(found[0], 0)] != pid)
    return list(zip(loaded.pids[found[0][keep]][:k].tolist(), sims[0][keep][:k].astype(float).tolist()))


def similar_posts(root: Path, pid: int, k: int = 10, before_only: bool = False, *,
                  embedding: str = "embed_engineered", config: IndexConfig | None = None,
                  sequence: SequenceConfig | None = None) -> pl.DataFrame:
    """The post ``pid`` (rank 0) and its ``k`` most similar posts (rank 1..k) by cosine similarity.

    before_only: only posts published strictly earlier, by the sequence features' own search
    (``sequence``: the run's features_sequence config, its embedding replaced by ``embedding``).
    Columns: rank, pid, uid, category, title, date, split, label, prediction, error (prediction -
    label), similarity, image (path relative to the SMPD directory).
    """
    if before_only:
        if pid not in _pids(root, embedding):
            raise KeyError(f"post {pid} is not in {embedding}")
        cfg = SequenceConfig(**{**(sequence or SequenceConfig()).__dict__, "embedding": embedding})
        found = earlier_neighbours(Paths(root=Path(root)), [pid], k, cfg)[pid]
    else:
        found = any_time_neighbours(open_index(root, embedding, config), pid, k)
    order = pl.DataFrame({"pid": [pid, *[p for p, _ in found]], "rank": list(range(len(found) + 1)),
                          "similarity": [1.0, *[s for _, s in found]]},
                         schema={"pid": pl.Int64, "rank": pl.Int64, "similarity": pl.Float64})
    info = describe_posts(root, order["pid"].to_list()).select(
        "pid", "uid", "title", "split", "label", "image",
        category=pl.concat_str("category", "subcategory", "concept", separator=" / ", ignore_nulls=True),
        date=pl.from_epoch("postdate", time_unit="s"), prediction="pred", error=pl.col("pred") - pl.col("label"))
    return order.join(info, on="pid", how="left").sort("rank").select(COLUMNS)


def _pids(root: Path, embedding: str) -> set[int]:
    table = Path(root) / get_table(embedding).path
    if not table.is_file():
        raise FileNotFoundError(f"{table} does not exist: run the stage that writes {embedding} first")
    return set(pl.read_parquet(table, columns=["pid"])["pid"].to_list())


def similar_html(df: pl.DataFrame, smpd_dir: Path | None, out_file: Path, thumb_px: int = 160) -> Path:
    """Write a static page of ``df`` (from ``similar_posts``) with embedded thumbnails; returns the path."""
    query = df.filter(pl.col("rank") == 0)["pid"].to_list()
    title = f"Posts similar to {query[0]}" if query else "Similar posts"
    uris = {int(r["pid"]): H.thumbnail_uri(Path(smpd_dir) / r["image"], thumb_px) if smpd_dir and r["image"] else None
            for r in df.iter_rows(named=True)}
    body = [H.html_table(df.drop("image"), text_cols=("uid", "category", "title", "split"), images=uris,
                         highlight_first=True)]
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(H.page(title, f"{len(df) - 1} most similar posts, the query first.", body, thumb_px),
                        encoding="utf-8")
    return out_file
