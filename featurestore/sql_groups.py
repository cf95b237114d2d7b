"""Running a SQL feature group on a DuckDB connection: its fitted relations first, then its query.

One definition for both paths: the batch build (views over a run's Parquet tables,
``catalog.open_tables``) and the online one (``sql_online.sql_group_rows``: Arrow tables held
in memory) run the same ``sql/<group>.sql`` text through ``query_group``.
"""

from __future__ import annotations

from dataclasses import asdict

import duckdb
import pyarrow as pa

from featurestore.catalog import load_sql


def fitted_sql(name: str) -> str:
    """The query that computes fitted relation ``name``: ``sql/fitted_<name>.sql``."""
    return load_sql(f"fitted_{name}")


def fit_relations(con: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> dict[str, pa.Table]:
    """Each fitted relation in ``names`` computed over the connection's tables, by name."""
    return {name: con.sql(fitted_sql(name)).to_arrow_table() for name in names}


def query_group(con: duckdb.DuckDBPyConnection, sql_name: str, config: object,
                fitted: dict[str, pa.Table]) -> pa.Table:
    """Run ``sql/<sql_name>.sql`` with the ``fitted`` relations registered under their names and
    the fields of ``config`` (a dataclass) bound as ``$parameters``."""
    for name, table in fitted.items():
        con.register(name, table)
    bound = asdict(config)
    return con.sql(load_sql(sql_name), params=bound or None).to_arrow_table()


def connect_arrow(tables: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with each Arrow table registered under its name (no copy)."""
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table)
    return con
