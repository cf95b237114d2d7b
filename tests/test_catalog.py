import csv
import os

import duckdb
import pyarrow.parquet as pq
import pytest

from featurestore.catalog import build_catalog, file_md5, load_sql, open_catalog
from featurestore.table_specs import TableSpec, get_table, list_tables, register_table
from pipelines import cli
from run_manifest import write_complete_manifest
from pipelines import features_baseline, ingest, split
from featurestore.paths import Paths


@pytest.fixture
def root(tmp_path, tiny_smpd):
    paths = Paths(root=tmp_path / "work", smpd=tiny_smpd)
    params = {"split": {"fractions": [0.34, 0.33, 0.33]}}
    for stage in (ingest, split, features_baseline):
        stage.run(paths, params)
    build_catalog(paths.root)
    write_complete_manifest(paths.root, params, tiny_smpd)
    return paths.root


def test_registry_rows_describe_the_files(root):
    con = open_catalog(root)
    rows = con.execute("SELECT name, n_rows, content_hash, path, columns, stage FROM feature_registry").fetchall()
    assert {r[0] for r in rows} >= {"posts", "labels", "split", "features_baseline", "users"}
    for name, n_rows, md5, path, columns, stage in rows:
        meta = pq.read_metadata(root / path)
        assert n_rows == meta.num_rows
        assert md5 == file_md5(root / path)
        assert columns == meta.schema.to_arrow_schema().names
        assert stage == get_table(name).stage
    assert dict((r[0], r[1]) for r in rows)["labels"] == 3


def test_views_work_from_any_directory(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the root: relative view paths still resolve
    con = open_catalog(root)
    assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == 5
    got = con.execute("SELECT pid, label FROM labels ORDER BY pid").fetchall()
    assert got == [(775, 7.46), (1075, 11.98), (4890, 3.46)]


def test_catalog_is_read_only(root):
    con = open_catalog(root)
    with pytest.raises(duckdb.Error):
        con.execute("CREATE TABLE x AS SELECT 1")


def test_views_are_not_copies(root):
    """Rewriting a table file changes what the view returns: nothing was copied into the catalog."""
    path = root / get_table("labels").path
    t = pq.read_table(path)
    pq.write_table(t.slice(0, 1), path)
    assert open_catalog(root).execute("SELECT count(*) FROM labels").fetchone()[0] == 1


def test_sql_cli_named_query_and_out(root, tmp_path, capsys):
    out = tmp_path / "cats.csv"
    assert cli.main(["sql", "--root", str(root), "-f", "label_by_category", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and rows[0]["category"]  # one train post in the tiny split
    assert cli.main(["sql", "--root", str(root), "SELECT count(*) AS n FROM posts WHERE pid > $p", "--param", "p=1000"]) == 0
    assert " 4 " in capsys.readouterr().out
    pq_out = tmp_path / "x.parquet"
    cli.main(["sql", "--root", str(root), "SELECT * FROM split", "--out", str(pq_out)])
    assert pq.read_table(pq_out).num_rows == 5


def test_every_named_query_parses(root):
    con = open_catalog(root)
    for f in sorted(load_sql.__globals__["SQL_DIR"].glob("*.sql")):
        if f.stem.startswith(("registry_", "features_")):  # DDL and feature SQL: tested with their groups
            continue
        sql = f.read_text()
        params = {k: v for k, v in {"split": "val", "min_posts": "1"}.items() if f"${k}" in sql}
        if "predictions" in sql:
            continue  # needs a trained model; covered by the pipeline smoke test
        con.execute(sql, params or None).fetchall()


def test_missing_catalog_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro"):
        open_catalog(tmp_path)


def test_duplicate_registration_rejected():
    with pytest.raises(ValueError, match="already registered"):
        register_table(TableSpec(name="posts", path="x.parquet", stage="x"))
    assert len({s.name for s in list_tables()}) == len(list_tables())


def test_a_decoy_in_the_current_directory_is_not_read(root, tmp_path, monkeypatch):
    """DuckDB tries relative paths against the current directory first: the catalog must not."""
    decoy = tmp_path / "elsewhere"
    (decoy / "data/tables").mkdir(parents=True)
    pq.write_table(pq.read_table(root / "data/tables/posts.parquet").slice(0, 1), decoy / "data/tables/posts.parquet")
    monkeypatch.chdir(decoy)
    assert open_catalog(root).execute("SELECT count(*) FROM posts").fetchone()[0] == 5
    from featurestore.catalog import open_tables

    assert open_tables(root).execute("SELECT count(*) FROM posts").fetchone()[0] == 5
