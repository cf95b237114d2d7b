"""Ingested field values of every table, for both releases and both user-file forms."""

from __future__ import annotations

import pytest

from featurestore.ingest import OUTPUT_TABLES, TABLES
from ingest_helpers import (
    EPOCH_2013, FORMS, HTML, RELEASES, SHARED_EXPECTED, col, dump, fpath, ingest, load, make, rewrite_split,
    set_value,
)
from smpd_fixture import TRAIN


USERS_COLUMNS = {  # 7b: pandas "columns" JSON
    "photo_count": [1813, None, 1813, 1813, None],  # from 1813.0 / null
    "canbuypro": [None] * 5,  # 7b has no canbuypro
    "timezone_offset": ["+01:00", None, "+01:00", "+01:00", None],
    "tz_offset_minutes": [60, None, 60, 60, None],
    "photo_firstdatetaken": [EPOCH_2013] * 5,  # from "2013-04-02 17:52:16"
    "timezone_id": ["Europe/Berlin", None, "Europe/Berlin", "Europe/Berlin", None],
    "user_description": [HTML, None, None, HTML, None],  # raw HTML text is kept verbatim
    "location_description": ["Edinburgh, UK", None, None, "Edinburgh, UK", None],
    "user_description_vec": [None] * 5,
    "location_description_vec": [None] * 5,
    "user_form": ["columns"] * 5,
}
USERS_RECORDS = {  # 7a: list of per-post string records, no Pid/Uid
    "photo_count": [100, 200, 300, 100, 200],  # from "100", "200", ...
    "canbuypro": [0] * 5,
    "timezone_offset": ["1"] * 5,
    "tz_offset_minutes": [60] * 5,  # "1" = one hour
    "photo_firstdatetaken": [1204010100] * 5,  # epoch string
    "timezone_id": ["9"] * 5,  # renamed from timezone_timezone_id
    "user_description": [None] * 5,  # vectors are not text
    "location_description": [None] * 5,
    "user_description_vec": [[0.5] * 399, None, None, [0.5] * 399, None],  # all zeros -> null
    "location_description_vec": [[0.25] * 400, None, None, [0.25] * 400, None],  # trailing ",\n"; "\n" -> null
    "user_form": ["records"] * 5,
}


@pytest.mark.parametrize("user_form", FORMS)
@pytest.mark.parametrize("release", RELEASES)
def test_shared_fields_parse_identically(tmp_path, release, user_form):
    tables, report = ingest(make(tmp_path, release, user_form))
    assert set(tables) == set(OUTPUT_TABLES)
    for (table, column), expected in SHARED_EXPECTED.items():
        assert col(tables, table, column) == expected, (table, column)
    users = USERS_COLUMNS if user_form == "columns" else USERS_RECORDS
    for column, expected in users.items():
        assert col(tables, "users", column) == expected, column
    assert report["splits"]["train"]["user_form"] == report["splits"]["test"]["user_form"] == user_form
    assert report["posts_read"] == report["posts_kept"] == 5 and report["posts_rejected"] == 0


def test_tables_equal_across_releases_for_shared_tables(tmp_path):
    results = {(r, f): ingest(make(tmp_path / f"{r}{f}", r, f))[0] for r in RELEASES for f in FORMS}
    ref = results[("2022", "columns")]
    for key, tables in results.items():
        for name in ("posts", "labels", "categories", "text", "temporal", "additional"):
            assert tables[name].equals(ref[name]), (key, name)
        assert tables["users"].schema == ref["users"].schema, key  # one schema for every release/form
        assert tables["images"].select(["pid", "path", "exists"]).equals(ref["images"].select(["pid", "path", "exists"]))


def test_tables_sorted_by_pid_and_labels_only_for_train(tmp_path):
    root = make(tmp_path)
    # write the train split in descending Pid order: output must still be sorted
    rewrite_split(root, "train", list(reversed(TRAIN)))
    (root / "train_allmetadata_json" / "train_label.txt").write_text("3.46\n11.98\n7.46\n")
    tables, _ = ingest(root)
    for name, t in ((n, tables[n]) for n in TABLES):
        pids = t["pid"].to_pylist()
        assert pids == sorted(pids), name
    assert col(tables, "posts", "row")[:3] == [2, 1, 0]
    assert col(tables, "labels", "pid") == [775, 1075, 4890]
    assert col(tables, "labels", "label") == [7.46, 11.98, 3.46]
    assert tables["labels"].column_names == ["pid", "label"]


def test_geotag_present_only_with_accuracy_and_longitude(tmp_path):
    root = make(tmp_path)
    set_value(root, "temporal", 0, "Geoaccuracy", "0")  # coordinates given, accuracy 0 -> missing
    set_value(root, "temporal", 1, "Latitude", "12.5")
    set_value(root, "temporal", 1, "Longitude", "")  # accuracy >0 but Longitude "" -> missing
    set_value(root, "temporal", 1, "Geoaccuracy", "6")
    tables, _ = ingest(root)
    assert col(tables, "temporal", "latitude")[:3] == [None, None, None]
    assert col(tables, "temporal", "longitude")[:3] == [None, None, None]
    assert col(tables, "temporal", "has_geo")[:3] == [False, False, False]
    assert col(tables, "temporal", "geoaccuracy")[:3] == [0, 6, 0]


def test_title_and_tags_are_kept_verbatim_even_when_they_look_missing(tmp_path):
    root = make(tmp_path)
    set_value(root, "text", 0, "Title", "None")  # a real title, not a missing marker
    set_value(root, "text", 1, "Title", None)  # JSON null title (solutions fillna it)
    set_value(root, "text", 2, "Alltags", "instagram:photo=937616898411796705321503909 uploaded:by=flickstagram")
    tables, _ = ingest(root)
    assert col(tables, "text", "title")[:3] == ["None", None, "Caf\u00e9 @friend #tech"]
    assert col(tables, "text", "alltags")[2] == "instagram:photo=937616898411796705321503909 uploaded:by=flickstagram"


def test_records_user_file_missing_markers_become_null(tmp_path):
    """FORMAT.md §7: coerce "None", "", "\\n" and null to missing in the user file."""
    root = make(tmp_path, "2019", "records")
    set_value(root, "user", 0, "timezone_timezone_id", "None", release="2019")
    set_value(root, "user", 1, "timezone_timezone_id", "", release="2019")
    set_value(root, "user", 2, "timezone_offset", "None", release="2019")
    set_value(root, "user", 0, "photo_count", "None", release="2019")
    set_value(root, "user", 1, "location_description", "", release="2019")
    set_value(root, "user", 2, "user_description", "\n", release="2019")
    tables, _ = ingest(root)
    assert col(tables, "users", "timezone_id")[:3] == [None, None, "9"]
    assert col(tables, "users", "timezone_offset")[:3] == ["1", "1", None]
    assert col(tables, "users", "tz_offset_minutes")[:3] == [60, 60, None]
    assert col(tables, "users", "photo_count")[:3] == [None, 200, 300]
    assert col(tables, "users", "location_description_vec")[:3] == [[0.25] * 400, None, None]
    assert col(tables, "users", "user_description_vec")[:3] == [[0.5] * 399, None, None]


def test_columnar_user_file_rows_rebuilt_by_numeric_row_key(tmp_path):
    """7b: inner keys are stringified row numbers; "10" sorts after "9", and key order in the file is irrelevant."""
    rows = [(str(1000 + i), f"{i}@N{i}", "Food", "Drinks", "beer", f"t{i}", "", str(1425000000 + i), "0", "", "0",
             "None", "5.0") for i in range(12)]
    root = make(tmp_path, with_test=False, images=False)
    rewrite_split(root, "train", rows)
    p = fpath(root, "user")
    data = load(p)
    data = {c: dict(reversed(list(inner.items()))) for c, inner in data.items()}  # scramble key order
    dump(p, data)
    tables, _ = ingest(root, check_images=False)
    assert col(tables, "users", "uid") == [f"{i}@N{i}" for i in range(12)]
    assert col(tables, "users", "pid") == [1000 + i for i in range(12)]
