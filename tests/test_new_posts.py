"""New posts parsed in memory (``new_post_tables``) give exactly what ingest's parsers give for the
same records written as SMPD test-split files (``write_as_split``), errors included."""

from __future__ import annotations

import pytest

from featurestore.ingest import split_tables
from featurestore.new_posts import new_post_tables, write_as_split
from featurestore.smpd_values import Problems


def _records() -> list[dict]:
    base = {"Uid": "12@N01", "Postdate": "1455000000", "Title": "sunset #beach", "Alltags": "sunset beach",
            "Mediatype": "photo", "Category": "Travel", "Subcategory": "Beach", "Concept": "sunset",
            "photo_count": 120, "ispro": 0, "canbuypro": "1", "timezone_offset": "+01:00",
            "photo_firstdate": "1200000000", "Latitude": "48.1", "Longitude": 11.5, "Geoaccuracy": 16,
            "Pathalias": "someone", "user_description": "Ünïcode 📷 text"}
    return [base, base | {"Pid": 777, "Uid": "13@N02", "Title": None, "Postdate": 1455000100.0,
                          "timezone_offset": None, "image": "train/13@N02/777.jpg"},
            {"Uid": "14@N03", "Postdate": 1456000000}]


def test_in_memory_parse_equals_the_files_parse(tmp_path):
    records = _records()
    files = write_as_split(records, tmp_path / "smpd", 5000)
    want, _ = split_tables(files, Problems(policy="error"), None, set())
    got = new_post_tables(records, tmp_path, 5000)
    assert got["posts"]["pid"].to_pylist() == [5000, 777, 5002]
    for name, table in want.items():
        if name in ("images", "posts"):  # new_post_tables sets the given image path and split "predict"
            continue
        assert got[name].equals(table), name
    assert got["posts"].drop_columns(["split"]).equals(want["posts"].drop_columns(["split"]))
    assert got["images"]["path"].to_pylist() == ["test/12@N01/5000.jpg", "train/13@N02/777.jpg", "test/14@N03/5002.jpg"]


@pytest.mark.parametrize(("field", "value", "message"), [("Postdate", "yesterday", "Postdate"),
                                                         ("photo_count", "many", "photo_count")])
def test_a_bad_value_names_the_post_and_field_as_the_files_parse_does(tmp_path, field, value, message):
    records = _records()
    records[1] = records[1] | {field: value}
    with pytest.raises(ValueError) as in_memory:
        new_post_tables(records, tmp_path, 5000)
    files = write_as_split(records, tmp_path / "smpd", 5000)
    with pytest.raises(ValueError) as from_files:
        split_tables(files, Problems(policy="error"), None, set())
    assert message in str(in_memory.value) and str(in_memory.value) == str(from_files.value)
