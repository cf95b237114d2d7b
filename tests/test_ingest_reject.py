"""Policy "reject": bad rows leave every table and are counted in/out per split and per file."""

from __future__ import annotations

import pytest

from featurestore.ingest import TABLES
from featurestore.smpd_layout import SMPDFormatError
from ingest_helpers import col, fpath, ingest, make, rewrite_split, set_line, set_value
from smpd_fixture import TEST, TRAIN


def test_reject_drops_rows_from_every_table_and_reports_them(tmp_path):
    root = make(tmp_path, "2019", "records")
    set_line(root, "label", 1, "abc", release="2019")  # train row 1 (pid 1075)
    set_value(root, "additional", 1, "Uid", "10082@N17", split="test", release="2019")  # test row 1 (pid 96454)
    set_value(root, "text", 1, "Pid", "96455", split="test", release="2019")  # same row: counted once
    tables, report = ingest(root, on_bad_row="reject")
    for name, t in ((n, tables[n]) for n in TABLES):
        expected = [775, 4890] if name == "labels" else [775, 4890, 50731]
        assert t["pid"].to_pylist() == expected, name
    assert col(tables, "posts", "row") == [0, 2, 0]
    assert col(tables, "labels", "label") == [7.46, 3.46]
    assert col(tables, "users", "photo_count") == [100, 300, 100]  # positional user rows stay aligned
    assert col(tables, "images", "url") == ["https://www.flickr.com/photos/1000@N00/385070026",
                                           "https://www.flickr.com/photos/1002@N00/385070028", None]
    train, test = report["splits"]["train"], report["splits"]["test"]
    assert train["rejected_by_reason"] == {"not a number": 1}
    assert (train["rows_read"], train["rows_kept"], train["rows_rejected"]) == (3, 2, 1)
    assert test["rejected_by_reason"] == {"does not match test_category.json (96454)": 1}
    assert (test["rows_read"], test["rows_kept"], test["rows_rejected"]) == (2, 1, 1)
    found = {(e["split"], e["file"], e["row"], e["field"]) for e in report["rejections"]}
    assert found == {("train", "train_label.txt", 1, "label"), ("test", "test_tags.json", 1, "Pid"),
                     ("test", "test_additional.json", 1, "Uid")}
    assert (report["posts_read"], report["posts_kept"], report["posts_rejected"]) == (5, 3, 2)
    assert report["posts_read"] == report["posts_kept"] + report["posts_rejected"]
    assert report["tables"] == {"posts": 3, "labels": 2, "categories": 3, "text": 3, "temporal": 3,
                                "additional": 3, "users": 3, "images": 3}
    assert report["files"]["train_label.txt"] == {"split": "train", "path": "train_label.txt", "rows_read": 3,
                                                  "rows_kept": 2, "rows_rejected": 1}
    assert report["files"]["test_userdata.json"]["rows_kept"] == 1
    assert set(report["files"]) == {f"{s}_{n}" for s in ("train", "test") for n in (
        "category.json", "tags.json", "temporalspatial.json", "additional.json", "userdata.json", "img.txt")} | {
        "train_label.txt"}


def test_reject_duplicates_keeps_first_occurrence(tmp_path):
    root = make(tmp_path)
    rewrite_split(root, "train", [TRAIN[0], TRAIN[1], ("775",) + TRAIN[2][1:]])
    rewrite_split(root, "test", [("1075",) + TEST[0][1:], TEST[1]])
    tables, report = ingest(root, on_bad_row="reject")
    assert col(tables, "posts", "pid") == [775, 1075, 96454]
    assert col(tables, "posts", "split") == ["train", "train", "test"]
    assert col(tables, "posts", "row") == [0, 1, 1]
    assert col(tables, "text", "title") == ["Luis Drayton - Edinburgh shoot #6", "", "read"]
    assert report["splits"]["train"]["rejected_by_reason"] == {"duplicate Pid": 1}
    assert report["splits"]["test"]["rejected_by_reason"] == {"duplicate Pid": 1}
    assert {(e["split"], e["row"], e["value"]) for e in report["rejections"]} == {("train", 2, "775"), ("test", 0, "1075")}


def test_reject_all_labelled_rows_is_an_error(tmp_path):
    root = make(tmp_path, with_test=False)
    fpath(root, "label").write_text("x\ny\nz\n")
    with pytest.raises(SMPDFormatError, match="no labelled posts"):
        ingest(root, on_bad_row="reject")


def test_reject_without_problems_equals_error_policy(tmp_path):
    root = make(tmp_path)
    a, ra = ingest(root)
    b, rb = ingest(root, on_bad_row="reject")
    assert all(a[t].equals(b[t]) for t in TABLES)
    assert rb["rejections"] == [] and rb["posts_rejected"] == 0
