"""`smpp sql` and `open_catalog(read_only=True)` cannot write, read outside the run's data/, load
extensions or change settings: each attempt is refused with one clear line and leaves every file
of the run byte-identical."""

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurestore.catalog import SQL_DIR, file_md5, open_catalog
from featurestore.sql_guard import ReadOnlyQueryError, check_read_only, query_read_only
from pipelines import cli
from test_catalog import root  # noqa: F401  (fixture: a tiny run root with its catalog)


def _snapshot(*dirs):
    """Path -> md5 of every file under ``dirs``: any write, new file or deletion changes it."""
    return {p: file_md5(p) for d in dirs for p in sorted(d.rglob("*")) if p.is_file()}


def _smpp_sql(capsys, root, query, *extra):
    rc = cli.main(["sql", "--root", str(root), query, *extra])
    out, err = capsys.readouterr()
    return rc, out, err


REFUSED_STATEMENTS = [  # (query with {data}/{outside} placeholders, words the message must hold)
    ("COPY (SELECT pid, 16.0 AS label FROM labels) TO '{data}/tables/labels.parquet' (FORMAT parquet)",
     "COPY statements are not allowed"),
    ("COPY (SELECT 1 AS x) TO '{data}/tables/new.parquet' (FORMAT parquet)", "COPY statements are not allowed"),
    ("INSTALL httpfs", "INSTALL statements are not allowed"),
    ("LOAD httpfs", "LOAD statements are not allowed"),
    ("ATTACH '{outside}/other.duckdb' AS o", "ATTACH statements are not allowed"),
    ("ATTACH '{data}/new.duckdb' AS o", "ATTACH statements are not allowed"),
    ("SELECT 1; COPY (SELECT 2 AS label) TO '{data}/tables/labels.parquet' (FORMAT parquet)",
     "exactly one statement per call; got 2 (SELECT, COPY)"),
    ("SELECT 1 AS a; SELECT 2 AS b", "exactly one statement per call; got 2"),
    ("SET enable_external_access = true", "SET statements are not allowed"),
    ("RESET enable_external_access", "RESET statements are not allowed"),
    ("SET lock_configuration = false", "SET statements are not allowed"),
    ("EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{data}/tables/labels.parquet'", "EXPLAIN COPY statements"),
    ("CREATE TEMP TABLE t AS SELECT 1", "CREATE statements are not allowed"),
    ("PRAGMA enable_profiling", "PRAGMA statements are not allowed"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "cannot read /etc/passwd: only files under {data} can be read"),
    ("SELECT * FROM read_parquet('{outside}/other.parquet')",
     "cannot read {outside}/other.parquet: only files under {data} can be read"),
    ("SELECT * FROM read_parquet('{data}/../../outside/other.parquet')", "only files under {data} can be read"),
    ("SELECT * FROM glob('/etc/*')", "cannot read /etc/*"),
]


@pytest.mark.parametrize("query, message", REFUSED_STATEMENTS, ids=[q[:40] for q, _ in REFUSED_STATEMENTS])
def test_cli_refuses_and_leaves_every_file_unchanged(root, tmp_path, capsys, query, message):
    outside = tmp_path / "outside"
    outside.mkdir()
    duckdb.connect(str(outside / "other.duckdb")).close()
    pq.write_table(pa.table({"secret": [42]}), outside / "other.parquet")
    data = (root / "data").resolve()
    before = _snapshot(root, outside)
    labels_before = open_catalog(root).execute("SELECT pid, label FROM labels ORDER BY pid").fetchall()

    rc, out, err = _smpp_sql(capsys, root, query.format(data=data, outside=outside.resolve()))

    assert _snapshot(root, outside) == before
    assert rc == 2
    assert err.startswith("smpp sql: ") and err.count("\n") == 1  # one line, no traceback
    assert message.format(data=data, outside=outside.resolve()) in err
    assert out == ""
    assert open_catalog(root).execute("SELECT pid, label FROM labels ORDER BY pid").fetchall() == labels_before


@pytest.mark.parametrize("query, shown", [
    ("SELECT count(*) AS n FROM posts", " 5 "),
    ("WITH t AS (SELECT pid FROM labels) SELECT count(*) AS n FROM t", " 3 "),
    ("FROM labels SELECT count(*) AS n", " 3 "),
    ("EXPLAIN SELECT count(*) FROM posts", "physical_plan"),
    ("EXPLAIN ANALYZE SELECT count(*) FROM posts", "analyzed_plan"),
    ("DESCRIBE posts", "pid"),
    ("SHOW TABLES", "labels"),
    ("SELECT count(*) AS n FROM posts; -- a trailing semicolon and comment: still one statement", " 5 "),
])
def test_queries_still_run(root, capsys, query, shown):
    before = _snapshot(root)
    rc, out, err = _smpp_sql(capsys, root, query)
    assert (rc, err) == (0, "")
    assert shown in out
    assert _snapshot(root) == before


def test_read_parquet_inside_data_is_allowed(root):
    """The views read files under <root>/data, and so may a query, by absolute path."""
    path = (root / "data/tables/posts.parquet").resolve()
    con = open_catalog(root)
    got = query_read_only(con, f"SELECT count(*) AS n FROM read_parquet('{path}')", root=root)
    assert got.column("n").to_pylist() == [5]
    assert query_read_only(con, "SELECT count(*) AS n FROM posts", root=root).column("n").to_pylist() == [5]


def test_python_connection_is_locked_too(root):
    """``open_catalog(read_only=True)`` itself: no file outside data/, no settings change, no extension load."""
    con = open_catalog(root)
    with pytest.raises(duckdb.PermissionException, match="/etc/passwd"):
        con.execute("SELECT * FROM read_csv_auto('/etc/passwd')").fetchall()
    for change in ("SET enable_external_access = true", "RESET enable_external_access",
                   "SET allowed_directories = ['/']", "SET lock_configuration = false",
                   "SET autoload_known_extensions = true"):
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.execute(change)
    with pytest.raises(duckdb.Error):
        con.execute("LOAD httpfs")
    assert con.execute("SELECT current_setting('enable_external_access')").fetchone()[0] is False


def test_every_named_query_passes_the_classifier():
    """Every query shipped in sql/ that `smpp sql -f` can run is a SELECT; the DDL/DML ones are refused."""
    files = sorted(SQL_DIR.glob("*.sql"))
    assert files
    for f in files:
        if f.stem.startswith("registry_"):  # the catalog's own schema and inserts, run by build_catalog
            with pytest.raises(ReadOnlyQueryError, match="not allowed"):
                check_read_only(f.read_text())
        else:
            assert check_read_only(f.read_text()).type == duckdb.StatementType.SELECT, f.name


@pytest.mark.parametrize("name, params", [("label_by_category", []), ("label_by_local_hour", []),
                                          ("split_summary", []), ("top_users", ["--param", "min_posts=1"])])
def test_named_queries_run_through_the_guard(root, capsys, name, params):
    before = _snapshot(root)
    rc = cli.main(["sql", "--root", str(root), "-f", name, *params])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "") and out.strip()
    assert _snapshot(root) == before


@pytest.mark.parametrize("sql, message", [
    ("", "no SQL statement"),
    ("-- only a comment", "no SQL statement"),
    ("FORCE INSTALL httpfs", "FORCE INSTALL statements"),
    ("SET VARIABLE v = 1", "SET statements"),
    ("CALL pragma_version()", "CALL statements"),
    ("USE memory", "USE statements"),
    ("WITH x AS (SELECT 1 AS a) INSERT INTO labels SELECT * FROM x", "INSERT statements"),
    ("EXPORT DATABASE '/tmp/x'", "EXPORT statements"),
    ("EXPLAIN (FORMAT json) CREATE TABLE t AS SELECT 1", "EXPLAIN CREATE statements"),
])
def test_classifier_refuses(sql, message):
    with pytest.raises(ReadOnlyQueryError, match=message):
        check_read_only(sql)


@pytest.mark.parametrize("sql", ["SELECT 1", "VALUES (1)", "(SELECT 1) UNION (SELECT 2)", "SUMMARIZE SELECT 1",
                                 "-- é\nEXPLAIN /* c */ ANALYZE SELECT 'é'", "EXPLAIN (FORMAT json) SELECT 1"])
def test_classifier_accepts_queries(sql):
    assert check_read_only(sql).type in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)
