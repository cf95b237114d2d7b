"""The baseline feature group: one SQL query (``sql/features_baseline.sql``) over the ingested tables."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from featurestore.catalog import load_sql, open_tables

CATEGORICAL_SUFFIX = "_code"  # integer columns the GBDTs treat as categorical


def baseline_features(root: Path) -> pa.Table:
    """pid, postdate and the baseline features for every post, sorted by pid.

    Reads the ingest tables and the split under ``root``; category vocabularies come from
    the train split only.
    """
    con = open_tables(root)
    try:
        table = con.sql(load_sql("features_baseline")).to_arrow_table()
    finally:
        con.close()
    return table


def feature_columns(table: pa.Table) -> list[str]:
    """Model input columns of a feature table (everything but the key and the timestamp)."""
    return [c for c in table.column_names if c not in ("pid", "postdate")]
