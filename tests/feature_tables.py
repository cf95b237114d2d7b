"""Write hand-made ingest-shaped tables (posts, users, categories, labels, split, ...) for feature tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from featurestore.table_specs import get_table


def write_tables(root: Path, rows: list[dict]) -> Path:
    """rows: dicts with pid, uid, postdate, category, subcategory, concept, label (or None), split."""
    def col(name, typ=None):
        return pa.array([r.get(name) for r in rows], typ)

    pid = col("pid", pa.int64())
    tables = {
        "posts": pa.table({"pid": pid, "uid": col("uid", pa.string()), "postdate": col("postdate", pa.int64()),
                           "labelled": pa.array([r.get("label") is not None for r in rows])}),
        "categories": pa.table({"pid": pid, "category": col("category", pa.string()),
                                "subcategory": col("subcategory", pa.string()), "concept": col("concept", pa.string())}),
        "labels": pa.table({"pid": pa.array([r["pid"] for r in rows if r.get("label") is not None], pa.int64()),
                            "label": pa.array([r["label"] for r in rows if r.get("label") is not None], pa.float64())}),
        "split": pa.table({"pid": pid, "postdate": col("postdate", pa.int64()), "split": col("split", pa.string()),
                           "label_visible": pa.array([r["split"] == "train" for r in rows])}),
    }
    for name, table in tables.items():
        path = root / get_table(name).path
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    return root
