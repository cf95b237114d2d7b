"""Feature rows of posts that are not in the store yet, by the pipeline's own feature code.

The new posts' records become two scratch work roots (``featurestore.new_posts``); every feature
group the model reads is built there for the new posts only (``build_group(..., only=)``):
per-post groups (image statistics) and frozen encoders (e.g. ``embed_minilm``, named by the
embedding table's spec) from the new posts alone, the others from the stored tables plus the
new posts, so a stored post replayed as new gets exactly its stored features.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore.config import config_from_dict
from featurestore.embeddings import (EngineeredEmbeddingConfig, embedding_columns, embedding_prefix,
                                     engineered_embeddings)
from featurestore.feature_groups import build_group, group_of_table
from featurestore.features_sequence import SequenceConfig, sequence_tables
from featurestore.new_posts import write_scratch_roots
from featurestore.paths import Paths
from featurestore.table_specs import get_table
from models.extraction import EmbedConfig, embed_posts


def new_post_features(paths: Paths, records: list[dict], tables: tuple[str, ...], params: dict) -> list[pa.Table]:
    """For each model input table in ``tables`` (feature groups and embedding tables), the new posts'
    rows: pid + its model-input columns, in input order."""
    with tempfile.TemporaryDirectory(prefix="smpp-predict-") as tmp:
        scratch = Path(tmp)
        roots = write_scratch_roots(paths, records, scratch)
        full, alone = Paths(root=roots.full, smpd=paths.smpd_dir), Paths(root=roots.alone, smpd=paths.smpd_dir)
        built: dict[str, pa.Table] = {}

        def rows_of(table: str) -> pa.Table:
            """The new posts' rows of ``table`` (pid, postdate, model inputs), built once."""
            if table not in built:
                if get_table(table).kind == "embedding":
                    built[table] = _embedding_rows(table, alone, params, scratch)
                elif table == "features_sequence":
                    built[table] = _sequence_rows(paths, full, roots.new_pids, params, rows_of)
                else:
                    group = group_of_table(table)
                    built[table] = build_group(group.name, alone if group.per_post else full, params,
                                               only=roots.new_pids.to_numpy())
            return built[table]

        order = pa.table({"pid": roots.new_pids})
        out = []
        for t in tables:
            rows = rows_of(t).drop_columns([c for c in ("postdate",) if c in rows_of(t).column_names])
            joined = order.join(rows, "pid", join_type="left outer")
            out.append(joined.take(pc.index_in(roots.new_pids, value_set=joined["pid"])))
        return out


def _embedding_rows(name: str, alone: Paths, params: dict, scratch: Path) -> pa.Table:
    """Model-input columns of embedding table ``name`` for the new posts (its encoder, the stage's params)."""
    encoder = get_table(name).encoder
    if encoder is None:
        raise ValueError(f"smpp predict: {name} is not the output of a frozen per-post encoder; only encoder tables "
                         "(e.g. embed_minilm) can be model inputs of new posts")
    cfg = config_from_dict(EmbedConfig, name, {**(params.get(name) or {}), "progress": False, "processes": 1})
    table, _ = embed_posts(alone, encoder, cfg, shard_dir=scratch / f"{name}-shards", reuse_encoder=True)
    return embedding_columns(table, embedding_prefix(name))


def _sequence_rows(stored: Paths, full: Paths, new_pids: pa.Array, params: dict, rows_of) -> pa.Table:
    """Sequence features of the new posts: their neighbours among every stored and new post.

    The embedding's input groups (text, image statistics) get the new posts' rows added to the
    stored tables under the scratch root ``full``; the embedding is rebuilt there (its scaler
    sees the same train rows, so stored posts keep their vectors) and only the new posts are
    searched for, with the same exact search as the pipeline.
    """
    cfg = config_from_dict(SequenceConfig, "features_sequence", params.get("features_sequence"))
    if cfg.embedding != "embed_engineered":
        raise ValueError(f"smpp predict: sequence features over {cfg.embedding!r} need that encoder for new posts; "
                         "only embed_engineered is supported")
    ecfg = config_from_dict(EngineeredEmbeddingConfig, "embed_engineered", params.get("embed_engineered"))
    for table in (ecfg.text_table, ecfg.image_table):
        old = pq.read_table(stored.table(table))
        new = rows_of(table).select(old.column_names)
        keep = old.filter(pc.invert(pc.is_in(old["pid"], value_set=new_pids)))
        full.table(table).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables([keep, new.cast(old.schema)]).sort_by("pid"), full.table(table))
    full.table(cfg.embedding).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(engineered_embeddings(full, ecfg), full.table(cfg.embedding))
    return sequence_tables(full, cfg, only=new_pids.to_numpy())[0]
