"""The DuckDB catalog: views over the Parquet tables plus a registry table.

The stored views use paths relative to the work root, so the catalog file stays valid when the
work directory moves. DuckDB resolves a relative path against the caller's current directory
first, so ``open_catalog`` shadows every stored view with a TEMP view over the absolute path
under the root it was opened with: the right files are read whatever the current directory
holds. Nothing is copied into the database.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from featurestore.atomic import atomic_write
from featurestore.sql_guard import lock_down
from featurestore.table_specs import TableSpec, list_tables

CATALOG_PATH = "data/catalog.duckdb"
SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def load_sql(name: str) -> str:
    """The text of ``sql/<name>.sql`` (``name`` may also be a path to a .sql file)."""
    path = Path(name) if name.endswith(".sql") else SQL_DIR / f"{name}.sql"
    if not path.is_file():
        known = sorted(p.stem for p in SQL_DIR.glob("*.sql"))
        raise FileNotFoundError(f"no SQL file {path}; named queries: {known}")
    return path.read_text()


def _literal(text: str) -> str:
    """A SQL string literal (DDL cannot take bound parameters, so paths are quoted here)."""
    return "'" + text.replace("'", "''") + "'"


def file_md5(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def create_views(con: duckdb.DuckDBPyConnection, root: Path, specs: list[TableSpec] | None = None, *,
                 relative: bool = False, temp: bool = False) -> list[TableSpec]:
    """Create a view per registered table whose file exists under ``root``; returns those specs.

    ``relative``: store the path relative to the root (the persistent catalog); otherwise absolute.
    """
    root = Path(root).resolve()
    present = []
    for spec in specs if specs is not None else list_tables():
        if not _IDENT.match(spec.name):
            raise ValueError(f"bad table name {spec.name!r}")
        if (root / spec.path).is_file():
            path = spec.path if relative else str(root / spec.path)
            kind = "TEMP VIEW" if temp else "VIEW"
            con.execute(f"CREATE OR REPLACE {kind} {spec.name} AS SELECT * FROM read_parquet({_literal(path)})")
            present.append(spec)
    return present


def open_tables(root: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with a view per existing table: what stages use to run SQL."""
    con = duckdb.connect()
    create_views(con, root)
    return con


def build_catalog(root: Path) -> Path:
    """(Re)build ``data/catalog.duckdb`` under ``root``: views + the ``feature_registry`` table."""
    root = Path(root)
    path = root / CATALOG_PATH
    with atomic_write(path) as tmp:  # readers never open a half-built catalog
        try:
            _fill_catalog(tmp, root)
        finally:
            tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    return path


def _fill_catalog(db: Path, root: Path) -> None:
    con = duckdb.connect(str(db))
    try:
        con.execute(f"SET file_search_path = {_literal(str(root.resolve()))}")  # resolve the relative views now
        specs = create_views(con, root, relative=True)
        con.execute(load_sql("registry_schema"))
        for s in specs:
            meta = pq.read_metadata(root / s.path)
            con.execute(load_sql("registry_insert"), {
                "name": s.name, "version": s.version, "kind": s.kind, "key": list(s.key), "ts": s.timestamp,
                "columns": meta.schema.to_arrow_schema().names, "n_rows": meta.num_rows,
                "hash": file_md5(root / s.path), "stage": s.stage, "path": s.path, "description": s.description})
    finally:
        con.close()


def open_catalog(root: Path = Path("."), read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the catalog of a work root (read-only by default), resolving view paths against it.

    Read-only also means locked down (``sql_guard.lock_down``): files outside ``<root>/data`` cannot
    be read, extensions cannot be loaded and settings cannot be changed. Run untrusted SQL through
    ``sql_guard.query_read_only``, which also refuses every statement but a query.
    """
    path = Path(root) / CATALOG_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `dvc repro` or `smpp run` first")
    con = duckdb.connect(str(path), read_only=read_only)
    create_views(con, root, temp=True)
    return lock_down(con, root) if read_only else con
