"""Read-only SQL over a run's catalog: which statements may run, and which files a query may read.

Two locks, each covering what the other cannot:
- ``check_read_only`` classifies the text with DuckDB's own parser: exactly one statement, and it
  must be a query (SELECT, WITH ... SELECT, FROM-first, VALUES, DESCRIBE, SHOW, SUMMARIZE all parse
  as SELECT) or an EXPLAIN of one. COPY, ATTACH, INSTALL/LOAD, SET/RESET, PRAGMA, CALL, DDL and DML
  are refused before anything runs.
- ``lock_down`` limits the connection's file access to ``<root>/data/``, turns off extension
  auto-install and auto-load, and locks the configuration so no statement can undo it. This is what
  stops ``SELECT * FROM read_csv('/etc/passwd')``: a SELECT, but of a file outside the run.
The classifier is needed as well because DuckDB's allowed directories can also be written to
(``COPY ... TO '<root>/data/tables/x.parquet'`` would pass the file lock alone).
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa

_QUERY = duckdb.StatementType.SELECT
_EXPLAIN = duckdb.StatementType.EXPLAIN
_EXPLAIN_FLAGS = {"ANALYZE", "ANALYSE", "VERBOSE"}
_ACCESS = re.compile(r'Cannot access (?:file|directory) "([^"]*)"')


class ReadOnlyQueryError(ValueError):
    """A query that would write, change settings, load code or read outside the run's data directory."""


def readable_dir(root: Path) -> Path:
    """The one directory a read-only query may read: ``<root>/data``, absolute and resolved."""
    return Path(root).resolve() / "data"


def _parse(sql: str) -> list[duckdb.Statement]:
    with duckdb.connect() as con:
        return con.extract_statements(sql)


def _tokens(sql: str) -> list[tuple[int, str]]:
    """(byte offset, upper-cased text) of each token of ``sql`` by DuckDB's tokenizer, comments skipped."""
    raw = sql.encode()
    tokens = [(off, kind) for off, kind in duckdb.tokenize(sql)]
    ends = [off for off, _ in tokens[1:]] + [len(raw)]
    return [(off, raw[off:end].decode().strip().upper())
            for (off, kind), end in zip(tokens, ends) if kind != duckdb.token_type.comment]


def _statement_name(stmt: duckdb.Statement) -> str:
    """What the user wrote (``INSTALL``, ``RESET``, ``FORCE INSTALL``), else DuckDB's type name."""
    words = [w for _, w in _tokens(stmt.query)[:2]]
    if words and re.fullmatch(r"[A-Z_]+", words[0]) and words[0] not in ("WITH", "FROM"):
        return " ".join(words) if words[0] == "FORCE" else words[0]
    return stmt.type.name.replace("_", " ")


def _explained_statement(sql: str) -> duckdb.Statement | None:
    """The statement an EXPLAIN wraps (the text after ``EXPLAIN [(options)] [ANALYZE]``), None if unclear."""
    words = _tokens(sql)[1:]  # drop EXPLAIN itself
    i, depth = 0, 0
    while i < len(words) and (depth or words[i][1] == "(" or words[i][1] in _EXPLAIN_FLAGS):
        depth += {"(": 1, ")": -1}.get(words[i][1], 0)
        i += 1
    if i == len(words):
        return None
    try:
        inner = _parse(sql.encode()[words[i][0]:].decode())
    except duckdb.ParserException:
        return None
    return inner[0] if len(inner) == 1 else None


def _refuse(name: str) -> ReadOnlyQueryError:
    return ReadOnlyQueryError(f"the catalog is read-only: {name} statements are not allowed (only SELECT queries)")


def check_read_only(sql: str) -> duckdb.Statement:
    """The single read-only statement in ``sql``; raises ``ReadOnlyQueryError`` for anything else.

    Refused: no statement, more than one (``SELECT 1; COPY ...``: even two SELECTs, since only one
    result can be shown), and any statement that is not a query or an EXPLAIN of a query
    (``EXPLAIN ANALYZE`` runs the statement it explains). Syntax errors raise ``duckdb.ParserException``.
    """
    statements = _parse(sql)
    if not statements:
        raise ReadOnlyQueryError("no SQL statement given (only comments or whitespace)")
    if len(statements) > 1:
        found = ", ".join(_statement_name(s) for s in statements)
        raise ReadOnlyQueryError(f"read-only SQL runs exactly one statement per call; got {len(statements)} "
                                 f"({found}): run them one at a time")
    stmt = statements[0]
    if stmt.type == _EXPLAIN:
        inner = _explained_statement(stmt.query)
        if inner is None or inner.type != _QUERY:
            raise _refuse(f"EXPLAIN {_statement_name(inner) if inner is not None else '(of no query)'}")
    elif stmt.type != _QUERY:
        raise _refuse(_statement_name(stmt))
    return stmt


def lock_down(con: duckdb.DuckDBPyConnection, root: Path) -> duckdb.DuckDBPyConnection:
    """Limit ``con`` for good to reading files under ``<root>/data/`` (no extension install or load).

    Call it after the views are created. Afterwards external access is off except for that directory
    (and DuckDB's own spill directory), and ``lock_configuration`` makes every later SET/RESET fail.
    """
    con.execute("SET allowed_directories = ?", [[str(readable_dir(root)) + "/"]])
    for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions",
                    "allow_community_extensions"):
        con.execute(f"SET {setting} = false")
    con.execute("SET lock_configuration = true")
    return con


def query_read_only(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None, *,
                    root: Path) -> pa.Table:
    """Run one read-only query on a ``lock_down`` connection; a refused file read names the path.

    ``params`` are bound as ``$name`` parameters. Raises ``ReadOnlyQueryError`` for a statement
    ``check_read_only`` refuses or for a file outside ``<root>/data``.
    """
    check_read_only(sql)
    try:
        return con.sql(sql, params=params).to_arrow_table()
    except duckdb.PermissionException as e:
        match = _ACCESS.search(str(e))
        what = match.group(1) if match else str(e)
        raise ReadOnlyQueryError(f"cannot read {what}: only files under {readable_dir(root)} can be read") from e
