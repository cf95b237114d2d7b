"""Bad values: errors name file, row and field; under on_bad_row="reject" the row is dropped instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurestore.ingest import TABLES
from featurestore.smpd_layout import SMPDFormatError
from ingest_helpers import col, fpath, ingest, make, rewrite_split, set_line, set_value, where
from smpd_fixture import TEST, TRAIN


VALUE_ERRORS = [
    ("text", "train", 1, "Pid", "1076", "Pid", r": does not match train_category\.json \(1075\) \(value 1076\)"),
    ("temporal", "train", 2, "Pid", "4891", "Pid", r": does not match train_category\.json \(4890\)"),
    ("additional", "test", 1, "Pid", "96455", "Pid", r": does not match test_category\.json \(96454\)"),
    ("text", "train", 2, "Pid", "abc", "Pid", r": not an integer \(value 'abc'\)"),
    ("temporal", "train", 2, "Uid", "2@N18", "Uid", r": does not match train_category\.json \('1@N18'\)"),
    ("additional", "train", 0, "Uid", "59@N76", "Uid", r": does not match"),
    ("category", "train", 1, "Uid", "1@N18x", "Uid", r": bad Uid \(expected <digits>@N<digits>\) \(value '1@N18x'\)"),
    ("category", "train", 1, "Uid", "1@n18", "Uid", r": bad Uid"),
    ("category", "train", 1, "Uid", "@N18", "Uid", r": bad Uid"),
    ("category", "train", 1, "Uid", "1@N", "Uid", r": bad Uid"),
    ("category", "train", 1, "Uid", 118, "Uid", r": bad Uid"),
    ("category", "train", 1, "Uid", None, "Uid", r": bad Uid"),
    ("category", "train", 1, "Uid", "1@N18\n", "Uid", r": bad Uid"),  # a trailing newline is not a Uid
    ("category", "train", 1, "Uid", " 1@N18", "Uid", r": bad Uid"),
    ("category", "train", 1, "Uid", "\u0661@N18", "Uid", r": bad Uid"),  # Arabic-Indic digit one
    ("category", "train", 0, "Pid", "0", "Pid", r": Pid must be positive"),
    ("category", "train", 0, "Pid", "-775", "Pid", r": Pid must be positive"),
    ("category", "train", 0, "Pid", "None", "Pid", r": missing value"),
    ("category", "train", 0, "Category", 7, "Category", r": not a string"),
    ("temporal", "train", 1, "Postdate", "yesterday", "Postdate", r": not an integer \(value 'yesterday'\)"),
    ("temporal", "train", 1, "Postdate", "", "Postdate", r": missing value"),
    ("temporal", "train", 1, "Postdate", "1425000000.5", "Postdate", r": not an integer"),
    ("temporal", "train", 1, "Postdate", "99999999999999999999", "Postdate", r": integer out of range"),  # beyond int64
    ("temporal", "train", 1, "Postdate", "1e300", "Postdate", r": integer out of range"),
    ("temporal", "train", 1, "Postdate", "1_425_000_000", "Postdate", r": not an integer"),
    ("temporal", "train", 1, "Latitude", "north", "Latitude", r": not a number"),
    ("temporal", "train", 1, "Latitude", "inf", "Latitude", r": not a finite number"),
    ("temporal", "train", 1, "Geoaccuracy", "x", "Geoaccuracy", r": not an integer"),
    ("additional", "train", 2, "Ispublic", "yes", "Ispublic", r": not an integer"),
    ("text", "train", 0, "Title", 123, "Title", r": not a string"),
    ("user", "train", 0, "Pid", 776, "Pid", r": does not match category file \(775\) \(value 776\)"),
    ("user", "train", 2, "Uid", "1@N19", "Uid", r": does not match category file \('1@N18'\)"),
    ("user", "test", 1, "photo_count", "many", "photo_count", r": not an integer"),
    ("user", "train", 0, "ispro", 0.5, "ispro", r": not an integer"),
    ("user", "train", 0, "timezone_offset", "+1h", "timezone_offset", r": unparsable UTC offset \(value '\+1h'\)"),
    ("user", "train", 0, "timezone_offset", "Europe/Berlin", "timezone_offset", r": unparsable UTC offset"),
    ("user", "train", 2, "timezone_offset", "+15:00", "timezone_offset", r": UTC offset out of range"),
    ("user", "train", 2, "timezone_offset", "inf", "timezone_offset", r": unparsable UTC offset"),
    ("user", "train", 0, "photo_firstdatetaken", "yesterday", "photo_firstdatetaken", r": not an epoch"),
    ("user", "train", 0, "photo_firstdate", "inf", "photo_firstdate", r": epoch out of range"),
    ("user", "train", 0, "photo_firstdate", "1e30", "photo_firstdate", r": epoch out of range"),
    ("user", "train", 0, "user_description", 5, "user_description", r": not a string"),
]
VALUE_ERROR_IDS = [f"{k}-{s}-{r}-{key}-{v!r}" for k, s, r, key, v, *_ in VALUE_ERRORS]


def _corrupt(root: Path, kind: str, split: str, row: int, key: str, value) -> str:
    set_value(root, kind, row, key, value, split=split)
    if kind == "category" and key == "Pid":  # keep the other files consistent with the category Pid
        for other in ("text", "temporal", "additional"):
            set_value(root, other, row, "Pid", value, split=split)
    return fpath(root, kind, split).name


@pytest.mark.parametrize("kind, split, row, key, value, field, rest", VALUE_ERRORS, ids=VALUE_ERROR_IDS)
def test_bad_value_error_names_file_row_field(tmp_path, kind, split, row, key, value, field, rest):
    root = make(tmp_path)
    name = _corrupt(root, kind, split, row, key, value)
    with pytest.raises(SMPDFormatError, match=where(name, row, field) + rest):
        ingest(root)


@pytest.mark.parametrize("kind, split, row, key, value, field, rest", VALUE_ERRORS, ids=VALUE_ERROR_IDS)
def test_bad_value_rejected_under_reject(tmp_path, kind, split, row, key, value, field, rest):
    root = make(tmp_path)
    name = _corrupt(root, kind, split, row, key, value)
    tables, report = ingest(root, on_bad_row="reject")
    bad_pid = (TRAIN if split == "train" else TEST)[row][0]
    for t in TABLES:
        table = tables[t]
        assert int(bad_pid) not in table["pid"].to_pylist(), t
        if t != "labels":
            assert table.num_rows == 4, t
    assert report["splits"][split]["rows_rejected"] == 1
    assert sum(report["splits"][split]["rejected_by_reason"].values()) == 1
    assert any(e["file"] == name and e["row"] == row and e["field"] == field and e["split"] == split
               for e in report["rejections"]), report["rejections"]
    assert report["posts_read"] == 5 == report["posts_kept"] + report["posts_rejected"]


@pytest.mark.parametrize("bad, rest", [
    ("abc", r": not a number \(value 'abc'\)"),
    ("nan", r": missing value \(value 'nan'\)"),
    ("NaN", r": missing value"),
    ("inf", r": not a finite number \(value 'inf'\)"),
    ("-inf", r": not a finite number"),
    ("", r": missing value"),
    ("7,46", r": not a number \(value '7,46'\)"),
    ("7_46", r": not a number"),  # Python's float() would silently read 746
])
def test_bad_label(tmp_path, bad, rest):
    root = make(tmp_path)
    set_line(root, "label", 1, bad)
    with pytest.raises(SMPDFormatError, match=where("train_label.txt", 1, "label") + rest):
        ingest(root)


def test_label_nan_reported_with_value_in_reject_report(tmp_path):
    root = make(tmp_path)
    set_line(root, "label", 2, "inf")
    tables, report = ingest(root, on_bad_row="reject")
    assert col(tables, "labels", "pid") == [775, 1075]
    assert report["rejections"] == [{"file": "train_label.txt", "row": 2, "field": "label",
                                     "reason": "not a finite number", "value": "'inf'", "split": "train"}]


def test_duplicate_pid_within_split(tmp_path):
    root = make(tmp_path)
    rewrite_split(root, "train", [TRAIN[0], TRAIN[1], ("775",) + TRAIN[2][1:]])
    with pytest.raises(SMPDFormatError, match=where("train_category.json", 2, "Pid") + r": duplicate Pid \(value 775\)"):
        ingest(root)


def test_duplicate_pid_across_train_and_test(tmp_path):
    root = make(tmp_path)
    rewrite_split(root, "test", [("1075",) + TEST[0][1:], TEST[1]])
    with pytest.raises(SMPDFormatError, match=where("test_category.json", 0, "Pid") + r": duplicate Pid \(value 1075\)"):
        ingest(root)
