"""A new post's model inputs from what it touches, with everything fitted loaded once.

``OnlineFeatures`` is opened once per run (by the ``Predictor``): the stored rows grouped by user
(``featurestore.stored_rows``), the fitted relations of the SQL groups and the running label
statistics (``featurestore.sql_online``), the TF-IDF/SVD text model, the engineered-embedding
encoder and the neighbour lookup over the stored embedding (``data/fitted/``, written by the
stages). ``rows(records)`` parses the posts as ingest does and builds, for each model-input table,
the new posts' rows:

- SQL groups: over the new posts plus their users' stored rows, the crawled rows of their
  Pathaliases, the fitted relations and the running statistics as of each post, the group's
  in-process kernel (``featurestore.sql_kernels``: the SQL's arithmetic without a query planner,
  tested equal to it), or the group's own SQL where it has no kernel;
- text and image statistics: from the new posts alone (the text model is loaded, not fitted); with
  ``image_process`` (``smpp serve``) the images are measured by one helper process while this one
  builds the other features, by the same function;
- frozen encoders (e.g. ``embed_minilm``): the new posts alone, as the stage embeds them;
- sequence features: the new posts' engineered embedding against the stored one, one search.

Nothing is fitted and no stored table is read whole per call, so the cost of a call does not grow
with the store; a stored post replayed as new gets exactly its stored features (tests).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import tempfile
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore.config import config_from_dict
from featurestore.embeddings import (
    EngineeredEmbeddingConfig,
    EngineeredEncoder,
    embedding_columns,
    embedding_prefix,
)
from featurestore.feature_groups import group_of_table
from featurestore.features_sequence import SequenceConfig
from featurestore.features_text import TextModel, text_inputs, text_rows
from featurestore.fitted import load_fitted
from featurestore.image_stats import ImageStatsConfig, posts_image_stats
from featurestore.new_posts import new_post_tables, new_split_rows, write_new_root
from featurestore.paths import Paths
from featurestore.sequence_online import NeighbourLookup
from featurestore.smpd_crawled import empty_crawled_table
from featurestore.sql_kernels import KERNELS, kernels_rows
from featurestore.sql_online import FittedLookup, sql_groups_rows
from featurestore.stored_rows import USER_TABLES, StoredRows
from featurestore.table_specs import get_table
from models.extraction import EmbedConfig, embed_posts

log = logging.getLogger(__name__)

SEQUENCE = "features_sequence"
IMAGE_STATS = "features_image_stats"


def _need(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the run predates fitted artefacts or is incomplete; "
                              "rerun `smpp run` (or `dvc repro`) to write data/fitted/")
    return path


def _in_order(rows: pa.Table, pids: pa.ChunkedArray) -> pa.Table:
    """``rows`` without postdate, one per pid of ``pids`` in that order (a pid without a row: nulls)."""
    rows = rows.drop_columns([c for c in ("postdate",) if c in rows.column_names])
    if rows["pid"].equals(pids):
        return rows
    taken = rows.take(pc.index_in(pids, value_set=rows["pid"]))
    return taken.set_column(taken.column_names.index("pid"), "pid", pids)


def _exit_with(parent: int, every_s: float = 0.5) -> None:
    """In a helper process: exit as soon as process ``parent`` is gone. A parent killed by a signal
    (uvicorn re-raises SIGTERM after its graceful shutdown; SIGKILL) runs no cleanup, and the helper
    would otherwise live on, orphaned, holding its memory."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(0)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _image_process() -> ProcessPoolExecutor:
    """One spawned process that measures a request's images while the caller builds the other features
    (in a thread the GIL would serialise the two); started and warmed up (its imports) before use, and
    gone with this process however it ends (``_exit_with``)."""
    pool = ProcessPoolExecutor(1, mp.get_context("spawn"), initializer=_exit_with, initargs=(os.getpid(),))
    posts = pa.table({"pid": pa.array([], pa.int64()), "postdate": pa.array([], pa.int64())})
    images = pa.table({"pid": pa.array([], pa.int64()), "path": pa.array([], pa.string())})
    pool.submit(posts_image_stats, posts, images, Path("."), ImageStatsConfig(workers=1, progress=False)).result()
    return pool


class OnlineFeatures:
    """Model-input rows of new posts for the run under ``paths`` (``tables``: the model's input tables)."""

    def __init__(self, paths: Paths, params: dict, tables: tuple[str, ...], *, image_process: bool = False) -> None:
        self.paths, self.params, self.tables = paths, params, tuple(tables)
        self._images: ProcessPoolExecutor | None = None
        needed = self._closure(tables)
        self.stored = StoredRows.load(paths)
        self.groups = {t: group_of_table(t) for t in needed if get_table(t).kind != "embedding"}
        self.configs = {t: g.make_config(params) for t, g in self.groups.items()}
        self.sql_tables = {t for t, g in self.groups.items() if g.sql}
        if IMAGE_STATS in self.configs:  # a request's few images: no process pool, no progress bar
            self.configs[IMAGE_STATS] = replace(self.configs[IMAGE_STATS], workers=1, progress=False)
        relations = {rel for g in self.groups.values() for rel in g.fitted}
        self.fitted = FittedLookup({rel: pq.read_table(_need(paths.fitted(f"{rel}.parquet"))) for rel in relations})
        self.text_model = (load_fitted(paths.fitted("text_model.joblib"), TextModel) if "features_text" in needed
                           else None)
        self.encoder = self.lookup = None
        if SEQUENCE in needed:
            self.encoder = load_fitted(paths.fitted("engineered_encoder.joblib"), EngineeredEncoder)
            self.lookup = NeighbourLookup.load(paths, self.configs[SEQUENCE])
        if image_process and IMAGE_STATS in self.configs:
            self._images = _image_process()

    def _closure(self, tables: tuple[str, ...]) -> set[str]:
        """``tables`` plus the tables their new-post rows are computed from (the sequence embedding's inputs)."""
        needed = set(tables)
        if SEQUENCE in needed:
            cfg = config_from_dict(SequenceConfig, SEQUENCE, self.params.get(SEQUENCE))
            if cfg.embedding != "embed_engineered":
                raise ValueError(f"serving: sequence features over {cfg.embedding!r} need that encoder for new posts; "
                                 "only embed_engineered is supported (features_sequence.embedding)")
            ecfg = self.embedding_config
            needed |= {t for t, w in ((ecfg.text_table, ecfg.text_weight), (ecfg.image_table, ecfg.image_weight)) if w}
        return needed

    @property
    def embedding_config(self) -> EngineeredEmbeddingConfig:
        return config_from_dict(EngineeredEmbeddingConfig, "embed_engineered", self.params.get("embed_engineered"))

    @property
    def next_pid(self) -> int:
        return self.stored.max_pid + 1

    def rows(self, records: list[dict]) -> list[pa.Table]:
        """For each table of ``self.tables``, the new posts' rows: pid + its model-input columns, in input order."""
        new = new_post_tables(records, self.paths.smpd_dir, self.next_pid)
        new_pids = new["posts"]["pid"]
        built: dict[str, pa.Table | Future] = {}
        if self._images is not None:  # the images are measured meanwhile in the helper process
            built[IMAGE_STATS] = self._submit_images(new)
        scratch: list[tempfile.TemporaryDirectory] = []  # frozen encoders' scratch roots, made where needed

        def rows_of(table: str) -> pa.Table:
            if table in self.sql_tables and table not in built:
                built.update(self._sql_rows(new))
            elif table not in built:
                built[table] = self._build(table, new, scratch, rows_of)
            elif isinstance(built[table], Future):
                built[table] = self._image_result(built[table], new)
            return built[table]

        try:
            for t in sorted(self.tables, key=lambda t: t in (IMAGE_STATS, SEQUENCE)):  # the image rows last
                rows_of(t)
            return [_in_order(rows_of(t), new_pids) for t in self.tables]
        finally:
            for tmp in scratch:
                tmp.cleanup()

    def _image_args(self, new: dict[str, pa.Table]) -> tuple:
        return new["posts"].select(["pid", "postdate"]), new["images"], self.paths.smpd_dir, self.configs[IMAGE_STATS]

    def _submit_images(self, new: dict[str, pa.Table]) -> Future:
        try:
            return self._images.submit(posts_image_stats, *self._image_args(new))
        except BrokenProcessPool:  # it died between requests
            self._restart_images()
            return self._images.submit(posts_image_stats, *self._image_args(new))

    def _image_result(self, pending: Future, new: dict[str, pa.Table]) -> pa.Table:
        """The helper process's image rows; if it died on them, these rows are measured here (the same
        function: the same rows) and a new helper serves the next calls."""
        try:
            return pending.result()[0]
        except BrokenProcessPool:
            self._restart_images()
            return posts_image_stats(*self._image_args(new))[0]

    def _restart_images(self) -> None:
        log.error("serving: the image-statistics process died; starting a new one")
        self._images.shutdown(wait=False, cancel_futures=True)
        self._images = _image_process()

    def close(self) -> None:
        """Stop the image-statistics helper process, if one runs."""
        if self._images is not None:
            self._images.shutdown(cancel_futures=True)
            self._images = None

    def _build(self, table: str, new: dict[str, pa.Table], scratch: list, rows_of) -> pa.Table:
        if get_table(table).kind == "embedding":
            scratch.append(tempfile.TemporaryDirectory(prefix="smpp-predict-"))
            return self._encoder_rows(table, new, Path(scratch[-1].name))
        if table == "features_text":
            return text_rows(text_inputs(new["text"], new["posts"]), self.text_model)
        if table == IMAGE_STATS:
            return posts_image_stats(*self._image_args(new))[0]
        if table == SEQUENCE:
            return self._sequence_rows(new, rows_of)
        raise ValueError(f"serving: feature group {self.groups[table].name!r} has no online builder")

    def _sql_rows(self, new: dict[str, pa.Table]) -> dict[str, pa.Table]:
        """Every needed SQL group's rows of the new posts (table -> rows) from them and their users'
        stored rows: the group's in-process kernel (``featurestore.sql_kernels``, equal to its SQL),
        or its SQL where it has none."""
        new_pids = new["posts"]["pid"]
        stored = self.stored.of_users(new["posts"]["uid"].to_pylist(), exclude_pids=new_pids.to_numpy())
        split = new_split_rows(new["posts"])
        tables = {name: pa.concat_tables([stored[name], (split if name == "split" else new[name])],
                                         promote_options="default")
                  for name in USER_TABLES if name != "labels"}
        tables["labels"] = stored["labels"]
        crawled = self.stored.crawled_of(new["additional"]["pathalias"].to_pylist())
        tables["crawled_users"] = empty_crawled_table() if crawled is None else crawled
        pids = new_pids.to_pylist()
        by_kernel = {t: self.groups[t].name for t in self.sql_tables if self.groups[t].name in KERNELS}
        rows = kernels_rows({g: self.configs[t] for t, g in by_kernel.items()}, pids, tables, self.fitted)
        out = {t: rows[g] for t, g in by_kernel.items()}
        by_sql = {self.groups[t].name: self.configs[t] for t in self.sql_tables if t not in out}
        if by_sql:  # a group without a kernel: its SQL over the same rows and the fitted relations cut to them
            keys = new["posts"].select(["pid", "uid", "postdate"]).join(
                new["categories"].select(["pid", "category", "subcategory", "concept"]), "pid")
            rows = sql_groups_rows(by_sql, tables, self.fitted.rows_for(keys))
            out |= {t: (r := rows[self.groups[t].name]).filter(pc.is_in(r["pid"], value_set=new_pids))
                    for t in self.sql_tables if t not in out}  # a kernel gives the rows of ``pids`` alone
        return out

    def _encoder_rows(self, name: str, new: dict[str, pa.Table], scratch: Path) -> pa.Table:
        """Model-input columns of embedding table ``name`` for the new posts (its encoder, the stage's params)."""
        encoder = get_table(name).encoder
        if encoder is None:
            raise ValueError(f"serving: {name} is not the output of a frozen per-post encoder; only encoder tables "
                             "(e.g. embed_minilm) can be model inputs of new posts")
        alone = Paths(root=write_new_root(scratch / "alone", new), smpd=self.paths.smpd_dir)
        cfg = config_from_dict(EmbedConfig, name, {**(self.params.get(name) or {}), "progress": False, "processes": 1})
        table, _ = embed_posts(alone, encoder, cfg, shard_dir=scratch / f"{name}-shards", reuse_encoder=True)
        return embedding_columns(table, embedding_prefix(name))

    def _sequence_rows(self, new: dict[str, pa.Table], rows_of) -> pa.Table:
        """Sequence features of the new posts: their engineered embedding searched against the stored one.

        The encoder's inputs are ``engineered_inputs``'s columns (the text and image rows' numeric
        columns, the category levels; a source's missing post: nulls), taken straight from the new
        posts' tables in pid order: the same values without building a frame."""
        ecfg = self.embedding_config
        keys = new["posts"].select(["pid", "postdate", "uid"]).sort_by("pid")
        sources = [rows_of(t) for t, w in ((ecfg.text_table, ecfg.text_weight), (ecfg.image_table, ecfg.image_weight))
                   if w > 0]
        aligned = [_in_order(src, keys["pid"]) for src in sources]
        columns = {name: col for t in aligned for name, col in zip(t.column_names, t.columns)}
        numeric = [np.column_stack([pc.cast(columns[c], pa.float64()).to_numpy(zero_copy_only=False) for c in cols])
                   for _, cols, _ in self.encoder.numeric_]
        categories = _in_order(new["categories"], keys["pid"])
        levels = [categories[level].to_pylist() for level, _ in self.encoder.vocab_]
        emb = self.encoder.transform_values(numeric, levels)
        features, _ = self.lookup.rows(keys["pid"].to_numpy(), keys["postdate"].to_numpy(),
                                       np.asarray(keys["uid"].to_pylist(), object), emb)
        return features
