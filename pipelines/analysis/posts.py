"""What an analyst sees of a post: its user, date, category path, title, split, label, prediction, image."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from featurestore.paths import Paths

# table -> (its columns to show, renamed) ; a table that does not exist gives null columns
_SOURCES = {"posts": {"uid": "uid", "postdate": "postdate"},
            "categories": {"category": "category", "subcategory": "subcategory", "concept": "concept"},
            "text": {"title": "title"}, "split": {"split": "split_table"}, "labels": {"label": "label"},
            "predictions_stack": {"split": "split_preds", "pred": "pred"}, "images": {"path": "image"}}


def describe_posts(root: Path, pids: list[int]) -> pl.DataFrame:
    """pid, uid, postdate, category, subcategory, concept, title, split, label, pred, image for ``pids``
    (in that order; unknown pids and missing tables give nulls). Labels are shown whatever their
    visibility: this is for looking at errors, never a feature."""
    paths = Paths(root=Path(root))
    out = pl.DataFrame({"pid": pids}, schema={"pid": pl.Int64}).lazy()
    for name, cols in _SOURCES.items():
        path = paths.table(name)
        if path.is_file():
            out = out.join(pl.scan_parquet(path).select("pid", *[pl.col(c).alias(a) for c, a in cols.items()]),
                           on="pid", how="left")
        else:
            out = out.with_columns([pl.lit(None).alias(a) for a in cols.values()])
    return out.select(
        "pid", "uid", pl.col("postdate").cast(pl.Int64), "category", "subcategory", "concept", "title",
        split=pl.coalesce(pl.col("split_preds").cast(pl.String), pl.col("split_table").cast(pl.String)),
        label=pl.col("label").cast(pl.Float64), pred=pl.col("pred").cast(pl.Float64), image="image",
    ).collect()
