"""Similar-post lookup for error analysis (``smpp similar``): neighbours with labels, predictions, images.

``similar_posts`` searches a persisted FAISS index over an embedding table (rebuilt when the
table's content hash changed, never used stale) and joins what an analyst wants to see;
``similar_html`` writes a self-contained page (base64 thumbnails) that opens offline.
Labels are shown whatever their visibility: this is for looking at errors, not for features.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from featurestore.catalog import file_md5
from featurestore.embeddings import read_embeddings
from featurestore.registry import get_table
from models.retrieval import IndexConfig, LoadedIndex, build_index, load_index, search_before
from models.error_report_html import thumbnail_uri  # one thumbnail implementation

INDEX_DIR = "data/index"  # a cache keyed by the embedding table's md5, not a DVC output


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


def _row_of(loaded: LoadedIndex, pid: int) -> int:
    rows = np.flatnonzero(loaded.pids == pid)
    if len(rows) == 0:
        raise KeyError(f"post {pid} is not in the index")
    return int(rows[0])


def earlier_neighbours_fn(root: Path, embedding: str = "embed_engineered", config: IndexConfig | None = None
                          ) -> Callable[[list[int], int], dict[int, list[tuple[int, float]]]]:
    """``neighbours(pids, k) -> {pid: [(pid, similarity), ...]}`` over strictly earlier posts.

    The callable ``models.error_report`` takes; the index is opened on first use. Posts not in
    the embedding table get an empty list.
    """
    cache: list[LoadedIndex] = []

    def neighbours(query: list[int], k: int) -> dict[int, list[tuple[int, float]]]:
        if not cache:
            cache.append(open_index(root, embedding, config))
        loaded, out = cache[0], {}
        for pid in query:
            try:
                row = _row_of(loaded, pid)
            except KeyError:
                out[pid] = []
                continue
            nb, sims = neighbours_of(loaded, loaded.index.reconstruct(row).reshape(1, -1), pid, k,
                                     int(loaded.postdate[row]))
            out[pid] = list(zip(nb.tolist(), sims.astype(float).tolist()))
        return out

    return neighbours


def neighbours_of(loaded: LoadedIndex, query: np.ndarray, pid: int, k: int, before: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(pids (<=k,), sims (<=k,))`` nearest to ``query`` (1, D), ``pid`` itself left out.

    before: a post date (epoch s); only posts published strictly earlier are searched.
    """
    n_before = None if before is None else int(np.searchsorted(loaded.postdate, before, "left"))
    sims, rows = search_before(loaded.index, query, k + 1, n_before)
    keep = (rows[0] >= 0) & (loaded.pids[np.maximum(rows[0], 0)] != pid)
    return loaded.pids[rows[0][keep]][:k], sims[0][keep][:k]


def _scan(root: Path, name: str) -> pl.LazyFrame | None:
    path = Path(root) / get_table(name).path
    return pl.scan_parquet(path) if path.is_file() else None


def describe_posts(root: Path, pids: list[int]) -> pl.DataFrame:
    """pid, uid, category path, title, date (UTC), split, label, prediction, error, image for ``pids``."""
    want = pl.DataFrame({"pid": pids}, schema={"pid": pl.Int64})
    out = want.lazy().join(_scan(root, "posts").select("pid", "uid", "postdate"), on="pid", how="left")
    extra = {"categories": ["category", "subcategory", "concept"], "text": ["title"], "split": ["split"],
             "labels": ["label"], "images": ["path"]}
    for name, cols in extra.items():
        scan = _scan(root, name)
        out = out.join(scan.select("pid", *cols), on="pid", how="left") if scan is not None else \
            out.with_columns([pl.lit(None).alias(c) for c in cols])
    preds = _scan(root, "predictions_stack")
    out = out.join(preds.select("pid", prediction="pred"), on="pid", how="left") if preds is not None else \
        out.with_columns(prediction=pl.lit(None, pl.Float64))
    return out.select(
        "pid", "uid",
        category=pl.concat_str("category", "subcategory", "concept", separator=" / ", ignore_nulls=True),
        title="title", date=pl.from_epoch("postdate", time_unit="s"), split="split",
        label=pl.col("label").cast(pl.Float64), prediction=pl.col("prediction").cast(pl.Float64),
        error=(pl.col("prediction") - pl.col("label")).cast(pl.Float64), image="path",
    ).collect()


def similar_posts(root: Path, pid: int, k: int = 10, before_only: bool = False, *,
                  embedding: str = "embed_engineered", config: IndexConfig | None = None) -> pl.DataFrame:
    """The post ``pid`` (rank 0) and its ``k`` most similar posts (rank 1..k) by cosine similarity.

    before_only: only posts published strictly earlier (what the sequence features may see).
    Columns: rank, pid, uid, category, title, date, split, label, prediction, error (prediction -
    label), similarity, image (path relative to the SMPD directory).
    """
    loaded = open_index(root, embedding, config)
    row = _row_of(loaded, pid)
    query = loaded.index.reconstruct(row).reshape(1, -1)  # (1, D)
    nb, sims = neighbours_of(loaded, query, pid, k, int(loaded.postdate[row]) if before_only else None)
    order = pl.DataFrame({"pid": [pid, *nb.tolist()], "rank": list(range(len(nb) + 1)),
                          "similarity": [1.0, *sims.astype(float).tolist()]},
                         schema={"pid": pl.Int64, "rank": pl.Int64, "similarity": pl.Float64})
    info = describe_posts(root, order["pid"].to_list())
    return order.join(info, on="pid", how="left").sort("rank").select(
        "rank", "pid", "uid", "category", "title", "date", "split", "label", "prediction", "error", "similarity",
        "image")


def _cell(value: object) -> str:
    if value is None:
        return "&ndash;"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def similar_html(df: pl.DataFrame, smpd_dir: Path | None, out_file: Path, thumb_px: int = 160) -> Path:
    """Write a static page of ``df`` (from ``similar_posts``) with embedded thumbnails; returns the path."""
    cols = [c for c in df.columns if c != "image"]
    rows = []
    for rec in df.iter_rows(named=True):
        uri = thumbnail_uri(Path(smpd_dir) / rec["image"], thumb_px) if smpd_dir and rec.get("image") else None
        img = f'<img src="{uri}" alt="{rec["pid"]}">' if uri else "no image"
        cls = ' class="query"' if rec.get("rank") == 0 else ""
        rows.append(f"<tr{cls}><td>{img}</td>" + "".join(f"<td>{_cell(rec[c])}</td>" for c in cols) + "</tr>")
    query = df.filter(pl.col("rank") == 0)["pid"].to_list()
    title = f"Posts similar to {query[0]}" if query else "Similar posts"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px;"
            "vertical-align:top}tr.query{background:#fff3c4}img{max-width:" + str(thumb_px) + "px}</style></head>"
            f"<body><h1>{html.escape(title)}</h1><table><tr><th>image</th>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>" + "\n".join(rows)
            + "</table></body></html>")
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(page, encoding="utf-8")
    return out_file

