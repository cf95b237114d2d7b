"""Crawled user statistics (FORMAT.md §10): both file forms, accounting, errors, the feature group."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from featurestore.feature_groups import build_group
from featurestore.ingest import IngestConfig, ingest_smpd, write_tables
from featurestore.smpd_crawled import HEADER, STAT_COLUMNS, locate_crawled, parse_crawled_lines, read_crawled
from featurestore.smpd_layout import SMPDFormatError
from featurestore.smpd_values import Problems
from featurestore.split import SplitConfig, chronological_split
from featurestore.paths import Paths
from tests.smpd_fixture import write_smpd

SHARED = Path(__file__).resolve().parents[2] / "shared" / "smpd"

TSV = ["None\t0\t0\t0\t0\t0\t0\t0\t0",
       "alice\t100\t5\t0\t7\t1\t20\t3\t4",
       "bob\t0\t0\t0\t0\t0\t0\t0\t0",          # failed crawl
       "alice\t999\t9\t9\t9\t9\t9\t9\t9",      # repeated alias: the first row wins
       "",
       "carol\t1\t2\t3\t4\t5\t6\t7\t8"]


def _parse(lines, policy="error"):
    return parse_crawled_lines(lines, "user_additional.txt", Problems(policy=policy))


def test_tsv_form_counts_every_row():
    table, report = _parse(TSV)
    assert table["pathalias"].to_pylist() == ["alice", "bob", "carol"]
    assert report["form"] == "tsv without header"
    assert report["rows_read"] == 6 and report["rows_kept"] == 3
    assert report["dropped"] == {"no_alias": 1, "duplicate_alias": 1, "bad_value": 0, "blank_line": 1}
    rows = {r["pathalias"]: r for r in table.to_pylist()}
    assert rows["alice"]["totalViews"] == 100 and rows["alice"]["followingCount"] == 4
    assert rows["bob"]["crawl_failed"] and all(rows["bob"][c] is None for c in STAT_COLUMNS)
    assert not rows["carol"]["crawl_failed"] and rows["carol"]["totalGeotagged"] == 3


def test_csv_form_with_header_equals_tsv_form():
    csv = [",".join(HEADER)] + [line.replace("\t", ",") for line in TSV]
    t_csv, r_csv = parse_crawled_lines(csv, "user_additional.csv", Problems())
    t_tsv, _ = _parse(TSV)
    assert r_csv["form"] == "csv with header" and r_csv["rows_read"] == 6
    assert t_csv.equals(t_tsv)


def test_bad_statistic_names_file_row_and_field():
    lines = TSV[:2] + ["dave\t1\t2\t-3\t4\t5\t6\t7\t8"]
    with pytest.raises(SMPDFormatError, match=r"user_additional.txt row 2 field 'totalGeotagged'.*'-3'"):
        _parse(lines)


def test_bad_statistic_rejected_and_counted():
    lines = TSV[:2] + ["dave\t1\t2\t3\tx\t5\t6\t7\t8"]
    table, report = _parse(lines, policy="reject")
    assert table["pathalias"].to_pylist() == ["alice"]
    assert report["dropped"]["bad_value"] == 1 and report["rows_read"] == 3


def test_wrong_field_count_is_structural():
    with pytest.raises(SMPDFormatError, match=r"row 1: expected 9 tab-separated fields"):
        _parse(TSV[:1] + ["erin\t1\t2"])


def test_two_crawled_files_are_ambiguous(tmp_path):
    (tmp_path / "user_additional.txt").write_text(TSV[1] + "\n")
    (tmp_path / "user_additional.csv").write_text(",".join(HEADER) + "\n")
    with pytest.raises(SMPDFormatError, match="ambiguous crawled"):
        locate_crawled(tmp_path)
    (tmp_path / "user_additional.csv").unlink()
    assert locate_crawled(tmp_path) == tmp_path / "user_additional.txt"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/smpd not present")
@pytest.mark.parametrize("name", ["real_user_additional.txt", "samples/user_additional.first300.csv"])
def test_real_crawled_files(name):
    table, report = read_crawled(SHARED / name, Problems())
    assert report["rows_read"] == report["rows_kept"] + sum(report["dropped"].values())
    assert report["rows_kept"] > 250 and report["dropped"]["bad_value"] == 0
    assert table["pathalias"].null_count == 0 and "None" not in table["pathalias"].to_pylist()


def _store(tmp_path: Path, crawled: list[str] | None) -> tuple[Paths, dict, dict]:
    smpd = tmp_path / "smpd"
    write_smpd(smpd)
    if crawled is not None:
        (smpd / "user_additional.txt").write_text("\n".join(crawled) + "\n")
    tables, report = ingest_smpd(smpd, IngestConfig(check_images=False))
    paths = Paths(root=tmp_path / "w", smpd=smpd)
    write_tables(tables, paths.tables_dir)
    paths.table("split").parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(chronological_split(tables["posts"], SplitConfig()), paths.table("split"))
    return paths, tables, report


def test_feature_group_joins_by_pathalias(tmp_path):
    paths, tables, report = _store(tmp_path, None)
    assert report["crawled_users"]["file"] is None and tables["crawled_users"].num_rows == 0
    aliases = [a for a in tables["additional"]["pathalias"].to_pylist() if a]
    assert aliases, "fixture has Pathalias values"
    lines = [f"{aliases[0]}\t100\t5\t0\t7\t1\t20\t3\t4", f"{aliases[-1]}\t0\t0\t0\t0\t0\t0\t0\t0"]
    paths, tables, report = _store(tmp_path / "again", lines)
    assert report["crawled_users"]["rows_kept"] == len(set(aliases[:1] + aliases[-1:]))
    feats = build_group("crawled", paths, {}).to_pylist()
    alias_of = dict(zip(tables["additional"]["pid"].to_pylist(), tables["additional"]["pathalias"].to_pylist()))
    for row in feats:
        alias = alias_of[row["pid"]]
        if alias == aliases[0]:
            assert row["crawl_found"] == 1 and row["crawl_failed"] == 0
            assert row["crawl_log_views"] == pytest.approx(math.log(101))
        elif alias == aliases[-1] and aliases[-1] != aliases[0]:
            assert row["crawl_found"] == 1 and row["crawl_failed"] == 1 and row["crawl_log_views"] is None
        else:
            assert row["crawl_found"] == 0 and row["crawl_log_views"] is None
