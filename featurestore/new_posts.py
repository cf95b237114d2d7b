"""Feature rows for posts that are not in the store yet (``smpp predict``).

New posts go through the same parsers as ingest (written as a tiny SMPD "test" split) and the
same feature code as the pipeline: the stored tables plus the new posts form a scratch work
root in which every feature group is rebuilt, and the new posts' rows are taken out. The new
posts are unlabelled, so nothing else's features change; groups marked ``per_post`` (image
statistics) and embedding tables (``embed_minilm``: a frozen encoder of each post's own text)
are computed for the new posts alone. A post whose Pid is already stored replaces
the stored row, so predicting a stored test post reproduces the pipeline's features exactly.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore.feature_groups import build_group, get_group
from featurestore.ingest import TABLES, RECORD_KEYS, _image_exists, split_tables
from featurestore.registry import get_table
from featurestore.smpd_crawled import empty_crawled_table
from featurestore.smpd_layout import SplitFiles, locate_split
from featurestore.smpd_users import USER_FIELDS
from featurestore.smpd_values import Problems

FILES = {"category": "test_category.json", "text": "test_text.json", "temporal": "test_temporalspatial_information.json",
         "additional": "test_additional_information.json", "user": "test_user_data.json",
         "image_list": "test_img_filepath.txt"}


def stored_records(smpd_dir: Path, pids: list[int], split: str = "train") -> list[dict]:
    """The SMPD fields of stored posts, read back from ``split``'s files (the input ``smpp predict``
    takes: per-post JSON fields, the user-profile columns, ``image``); in ``pids`` order.

    The user file may be column-oriented (``{field: {row: value}}``, 2022+) or a list of rows.
    """
    files = locate_split(Path(smpd_dir), split)
    if files is None:
        raise FileNotFoundError(f"{smpd_dir}: no {split} files")
    load = lambda kind: orjson.loads(files[kind].read_bytes())  # noqa: E731
    category = load("category")
    row_of = {int(r["Pid"]): i for i, r in enumerate(category)}
    missing = [p for p in pids if p not in row_of]
    if missing:
        raise KeyError(f"{files['category']}: no post with Pid {missing[:5]}")
    parts = [category] + [load(k) for k in ("text", "temporal", "additional")]
    users = load("user")
    images = files["image_list"].read_text().splitlines()
    out = []
    for pid in pids:
        i = row_of[pid]
        rec: dict = {}
        for part in parts:
            rec |= part[i]
        rec |= {c: v[str(i)] for c, v in users.items()} if isinstance(users, dict) else users[i]
        out.append(rec | {"image": images[i].strip()})
    return out


def write_as_split(records: list[dict], folder: Path, next_pid: int) -> SplitFiles:
    """Write post records (SMPD field names; ``image``: image path) as SMPD test-split files."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"post {i}: expected a JSON object with SMPD fields, got {type(rec).__name__}")
        if "Uid" not in rec or "Postdate" not in rec:
            raise ValueError(f"post {i}: 'Uid' and 'Postdate' are required")
        rows.append({**rec, "Pid": str(rec.get("Pid", next_pid + i))})
    for kind, keys in RECORD_KEYS.items():
        (folder / FILES[kind]).write_text(json.dumps([{k: r.get(k, "") if k in ("Title", "Alltags") else r.get(k)
                                                       for k in keys} for r in rows]))
    (folder / FILES["user"]).write_text(json.dumps([{k: r.get(k) for k in USER_FIELDS} for r in rows]))
    # the SMPD convention here; the caller's own image paths replace these after parsing
    (folder / FILES["image_list"]).write_text("".join("test/{}/{}.jpg\n".format(r["Uid"], r["Pid"]) for r in rows))
    return SplitFiles(split="test", paths={k: folder / v for k, v in FILES.items()}, release="2022+")


def new_post_tables(records: list[dict], scratch: Path, smpd_dir: Path, next_pid: int) -> dict[str, pa.Table]:
    """Typed ingest tables of the new posts (bad values raise, naming post and field)."""
    files = write_as_split(records, scratch / "new_smpd", next_pid)
    tables, _ = split_tables(files, Problems(policy="error"), None, set())
    given = pa.array([r.get("image") for r in records], pa.string())
    paths = pc.coalesce(given, tables["images"]["path"])
    tables["images"] = tables["images"].set_column(tables["images"].column_names.index("path"), "path", paths)
    tables["images"] = tables["images"].append_column("exists", _image_exists(paths, smpd_dir))
    tables["posts"] = tables["posts"].set_column(tables["posts"].column_names.index("split"), "split",
                                                 pa.array(["predict"] * tables["posts"].num_rows))
    return tables


def _write_root(root: Path, stored_root: Path | None, new: dict[str, pa.Table], new_pids: pa.Array) -> None:
    """Stored tables (minus the new Pids) + the new rows, written under ``root``."""
    for name, table in new.items():
        if name == "labels":
            continue
        parts = [table]
        if stored_root is not None:
            old = pq.read_table(stored_root / get_table(name).path)
            parts.insert(0, old.filter(pc.invert(pc.is_in(old["pid"], value_set=new_pids))))
        path = root / get_table(name).path
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(parts, promote_options="default").sort_by("pid"), path)


def _split_rows(new: dict[str, pa.Table]) -> pa.Table:
    posts = new["posts"]
    return pa.table({"pid": posts["pid"], "postdate": posts["postdate"], "split": posts["split"],
                     "label_visible": pa.array(np.zeros(posts.num_rows, dtype=bool))})


def new_post_features(paths, records: list[dict], groups: tuple[str, ...], params: dict) -> pa.Table:
    """pid + every feature column of ``groups`` for the new posts, in input order."""
    from pipelines.paths import Paths  # stage-level path layout, imported lazily (no import cycle)

    with tempfile.TemporaryDirectory(prefix="smpp-predict-") as tmp:
        scratch = Path(tmp)
        stored_posts = pq.read_table(paths.table("posts"), columns=["pid"])["pid"]
        new = new_post_tables(records, scratch, paths.smpd_dir, int(pc.max(stored_posts).as_py() or 0) + 1)
        new_pids = new["posts"]["pid"]
        labels = pq.read_table(paths.table("labels"))
        new |= {"split": _split_rows(new), "labels": labels}
        full, alone = scratch / "full", scratch / "alone"
        _write_root(full, paths.root, {n: new[n] for n in (*TABLES, "split") if n in new}, new_pids)
        pq.write_table(labels.filter(pc.invert(pc.is_in(labels["pid"], value_set=new_pids))),
                       full / get_table("labels").path)
        crawled = paths.table("crawled_users")  # per user, not per post: taken as stored
        pq.write_table(pq.read_table(crawled) if crawled.is_file() else empty_crawled_table(),
                       full / get_table("crawled_users").path)
        _write_root(alone, None, {n: new[n] for n in (*TABLES, "split") if n in new and n != "labels"}, new_pids)
        built: dict[str, pa.Table] = {}

        def rows_of(name: str) -> pa.Table:
            """The new posts' rows of group ``name`` (pid, postdate, features), built once."""
            if name not in built:
                if _is_embedding(name):
                    built[name] = _embedding_rows(name, Paths(root=alone, smpd=paths.smpd_dir), params, scratch)
                    return built[name]
                group = get_group(name)
                if name == "sequence":
                    table = _sequence_rows(paths, Paths(root=full, smpd=paths.smpd_dir), new_pids, params, rows_of)
                else:
                    table = build_group(name, Paths(root=alone if group.per_post else full, smpd=paths.smpd_dir),
                                        params, only=new_pids.to_numpy())
                built[name] = table  # the new posts' rows only (``only``)
            return built[name]

        out = pa.table({"pid": new_pids})
        for g in groups:
            name = g if _is_embedding(g) else g.removeprefix("features_")
            out = out.join(rows_of(name).drop_columns(["postdate"]), "pid",
                           join_type="left outer")
        order = pc.index_in(new_pids, value_set=out["pid"])
        return out.take(order)


def _is_embedding(name: str) -> bool:
    return name.startswith("embed_") and get_table(name).kind == "embedding"


def _embedding_rows(name: str, alone, params: dict, scratch: Path) -> pa.Table:
    """Model-input columns of embedding table ``name`` for the new posts (the stage's encoder and params)."""
    import importlib

    from featurestore.config import config_from_dict
    from featurestore.embeddings import embedding_columns, embedding_prefix
    from models.extraction import EmbedConfig, embed_posts

    stage = importlib.import_module(f"pipelines.{name}")
    if not hasattr(stage, "ENCODER"):
        raise ValueError(f"smpp predict: {name} is not the output of a frozen encoder; only encoder tables "
                         "(e.g. embed_minilm) can be model inputs of new posts")
    cfg = config_from_dict(EmbedConfig, name, {**(params.get(name) or {}), "progress": False})
    table, _ = embed_posts(alone, stage.ENCODER, cfg, shard_dir=scratch / f"{name}-shards")
    return embedding_columns(table, embedding_prefix(name))


def _sequence_rows(stored, full, new_pids: pa.Array, params: dict, rows_of) -> pa.Table:
    """Sequence features of the new posts: their neighbours among every stored and new post.

    The embedding's input groups (text, image statistics) get the new posts' rows added to the
    stored tables under the scratch root ``full``; the embedding is rebuilt there (its scaler
    sees the same train rows, so stored posts keep their vectors) and only the new posts are
    searched for, with the same exact search as the pipeline.
    """
    from featurestore.config import config_from_dict
    from featurestore.embeddings import EngineeredEmbeddingConfig, engineered_embeddings
    from featurestore.features_sequence import SequenceConfig, sequence_tables

    cfg = config_from_dict(SequenceConfig, "features_sequence", params.get("features_sequence"))
    if cfg.embedding != "embed_engineered":
        raise ValueError(f"smpp predict: sequence features over {cfg.embedding!r} need that encoder for new posts; "
                         "only embed_engineered is supported")
    ecfg = config_from_dict(EngineeredEmbeddingConfig, "embed_engineered", params.get("embed_engineered"))
    for table in (ecfg.text_table, ecfg.image_table):
        old = pq.read_table(stored.table(table))
        new = rows_of(table.removeprefix("features_")).select(old.column_names)
        keep = old.filter(pc.invert(pc.is_in(old["pid"], value_set=new_pids)))
        full.table(table).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables([keep, new.cast(old.schema)]).sort_by("pid"), full.table(table))
    full.table(cfg.embedding).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(engineered_embeddings(full, ecfg), full.table(cfg.embedding))
    return sequence_tables(full, cfg, only=new_pids.to_numpy())[0]
