"""Records of posts that are not in the store yet (``smpp predict``) turned into store tables.

New posts go through the same parsers as ingest, as the records of a tiny SMPD "test" split
(``write_as_split`` writes those files; ``new_post_tables`` parses the same records in memory).
``new_post_tables`` gives their typed ingest tables (split ``predict``, no label); a post whose Pid
is already stored replaces the stored row, so a stored post replayed as new gets exactly its
stored features. Computing the features is the pipeline's job (``pipelines.online_features``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore.ingest import RECORD_KEYS, _image_exists, split_tables
from featurestore.smpd_io import record_columns
from featurestore.table_specs import get_table
from featurestore.smpd_layout import SplitFiles, locate_split
from featurestore.smpd_users import USER_FIELDS, user_columns_from_records
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


def _rows(records: list[dict], next_pid: int) -> list[dict]:
    """The records with their Pid (given, else ``next_pid + i``); Uid and Postdate required."""
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"post {i}: expected a JSON object with SMPD fields, got {type(rec).__name__}")
        if "Uid" not in rec or "Postdate" not in rec:
            raise ValueError(f"post {i}: 'Uid' and 'Postdate' are required")
        rows.append({**rec, "Pid": str(rec.get("Pid", next_pid + i))})
    return rows


def _file_records(rows: list[dict]) -> dict[str, list]:
    """What each SMPD test-split file of these posts holds (kind -> records or lines)."""
    files: dict[str, list] = {kind: [{k: r.get(k, "") if k in ("Title", "Alltags") else r.get(k) for k in keys}
                                     for r in rows] for kind, keys in RECORD_KEYS.items()}
    files["user"] = [{k: r.get(k) for k in USER_FIELDS} for r in rows]
    # the SMPD convention here; the caller's own image paths replace these after parsing
    files["image_list"] = ["test/{}/{}.jpg".format(r["Uid"], r["Pid"]) for r in rows]
    return files


def write_as_split(records: list[dict], folder: Path, next_pid: int) -> SplitFiles:
    """Write post records (SMPD field names; ``image``: image path) as SMPD test-split files."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind, content in _file_records(_rows(records, next_pid)).items():
        text = "".join(f"{line}\n" for line in content) if kind == "image_list" else json.dumps(content)
        (folder / FILES[kind]).write_text(text)
    return _split_files(folder)


def _split_files(folder: Path) -> SplitFiles:
    return SplitFiles(split="test", paths={k: folder / v for k, v in FILES.items()}, release="2022+")


def new_post_tables(records: list[dict], smpd_dir: Path, next_pid: int) -> dict[str, pa.Table]:
    """Typed ingest tables of the new posts (bad values raise, naming post and field): the records
    parsed as ingest parses a test split's files (``write_as_split`` writes those files), in memory."""
    content = _file_records(_rows(records, next_pid))
    files = _split_files(Path("new_smpd"))  # names the fields' file in error messages; nothing is read
    raw = {kind: record_columns(content[kind], FILES[kind], keys) for kind, keys in RECORD_KEYS.items()}
    raw["user"] = user_columns_from_records(content["user"], FILES["user"])
    raw["image_list"] = content["image_list"]
    tables, _ = split_tables(files, Problems(policy="error"), raw, set())
    given = pa.array([r.get("image") for r in records], pa.string())
    paths = pc.coalesce(given, tables["images"]["path"])
    tables["images"] = tables["images"].set_column(tables["images"].column_names.index("path"), "path", paths)
    tables["images"] = tables["images"].append_column("exists", _image_exists(paths, smpd_dir))
    tables["posts"] = tables["posts"].set_column(tables["posts"].column_names.index("split"), "split",
                                                 pa.array(["predict"] * tables["posts"].num_rows))
    return tables


def new_split_rows(posts: pa.Table) -> pa.Table:
    """The split rows of new posts: split ``predict``, no label visible."""
    return pa.table({"pid": posts["pid"], "postdate": posts["postdate"], "split": posts["split"],
                     "label_visible": pa.array(np.zeros(posts.num_rows, dtype=bool))})


def write_new_root(root: Path, new: dict[str, pa.Table]) -> Path:
    """A work root holding the new posts alone (their ingest tables and split rows), for the code of
    per-post encoders that reads a run's tables (``embed_posts``); returns ``root``."""
    for name, table in {**new, "split": new_split_rows(new["posts"])}.items():
        if name == "labels":
            continue
        path = root / get_table(name).path
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.sort_by("pid"), path)
    return root
