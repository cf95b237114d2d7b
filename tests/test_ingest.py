"""SMPD parser tests: both releases, both user-file forms, every quirk of FORMAT.md.

The tiny hand-written fixture (``smpd_fixture.write_smpd``: 3 train, 2 test posts) is
written to a tmp dir and single files are corrupted per test. Expected values are
spelled out literally so that a parser change shows up as a failing assertion.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore.ingest import OUTPUT_TABLES, TABLES, IngestConfig, ingest_smpd, write_tables
from featurestore.smpd_io import read_lines, record_columns
from featurestore.smpd_layout import SMPDFormatError, locate_smpd
from featurestore.smpd_users import read_user_file
from featurestore.smpd_values import (
    Problems, parse_datetime_epoch, parse_description, parse_float, parse_int, parse_pid, parse_str,
    parse_tz_column, parse_tz_minutes, parse_uid,
)
from smpd_fixture import NAMES, TEST, TRAIN, write_smpd, write_split

RELEASES = ("2022", "2019")
FORMS = ("columns", "records")
EPOCH_2013 = int(datetime(2013, 4, 2, 17, 52, 16, tzinfo=timezone.utc).timestamp())  # 1364925136
HTML = 'I shoot <a href="x" rel="nofollow">bands</a> &amp; gigs'


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def make(tmp_path: Path, release: str = "2022", user_form: str = "columns", **kw) -> Path:
    return write_smpd(tmp_path / "smpd", release=release, user_form=user_form, **kw)


def folder(root: Path, split: str = "train", release: str = "2022") -> Path:
    return root / f"{split}_allmetadata_json" if release == "2022" else root


def fpath(root: Path, kind: str, split: str = "train", release: str = "2022") -> Path:
    names = {"category": "{s}_category.json", "label": "{s}_label.txt", **NAMES[release]}
    return folder(root, split, release) / names[kind].format(s=split)


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def dump(path: Path, obj) -> None:
    path.write_text(json.dumps(obj), encoding="ascii")


def set_value(root: Path, kind: str, row: int, key: str, value, split: str = "train", release: str = "2022") -> None:
    """Set one value of a record file (list of objects) or a columnar user file."""
    p = fpath(root, kind, split, release)
    data = load(p)
    if isinstance(data, list):
        data[row][key] = value
    else:
        data[key][str(row)] = value
    dump(p, data)


def set_line(root: Path, kind: str, row: int, text: str, split: str = "train", release: str = "2022") -> None:
    p = fpath(root, kind, split, release)
    lines = p.read_text().split("\n")
    lines[row] = text
    p.write_text("\n".join(lines))


def rewrite_split(root: Path, split: str, rows: list[tuple], release: str = "2022", user_form: str = "columns") -> None:
    write_split(folder(root, split, release), split, rows, release, user_form)


def ingest(root: Path, **kw):
    return ingest_smpd(root, IngestConfig(**kw))


def col(tables, table: str, column: str) -> list:
    return tables[table][column].to_pylist()


def where(file: str, row: int | None = None, field: str | None = None) -> str:
    """Regex for the start of an error message: ``<file> row <row> field '<field>'``."""
    rx = re.escape(file)
    if row is not None:
        rx += rf" row {row}"
    if field is not None:
        rx += rf" field '{re.escape(field)}'"
    return rx


# --------------------------------------------------------------------------------------------
# 1. shared fields: both releases x both user forms
# --------------------------------------------------------------------------------------------

PIDS = [775, 1075, 4890, 50731, 96454]
SHARED_EXPECTED = {
    ("posts", "pid"): PIDS,
    ("posts", "uid"): ["59@N75", "1@N18", "1@N18", "8770@N36", "10082@N16"],
    ("posts", "postdate"): [1425963866, 1425000000, 1426000000, 1450000000, 1450100000],
    ("posts", "split"): ["train", "train", "train", "test", "test"],
    ("posts", "row"): [0, 1, 2, 0, 1],
    ("posts", "labelled"): [True, True, True, False, False],
    ("labels", "pid"): [775, 1075, 4890],
    ("labels", "label"): [7.46, 11.98, 3.46],
    ("categories", "pid"): PIDS,
    ("categories", "category"): ["Entertainment", "Fashion", "Electronics", "Social&People", "Entertainment"],
    ("categories", "subcategory"): ["Music", "Health,Fitness", "Electronics", "Love", "Books"],
    ("categories", "concept"): ["punk", "yoga", "samsunggalaxy", "hugs", "imagine"],
    ("text", "pid"): PIDS,
    ("text", "title"): ["Luis Drayton - Edinburgh shoot #6", "", "Caf\u00e9 @friend #tech", "hug", "read"],
    ("text", "alltags"): ["rock punk uploaded:by=flickstagram", "", "phone", "hugs love", "books"],
    ("text", "mediatype"): ["photo"] * 5,
    ("temporal", "postdate"): [1425963866, 1425000000, 1426000000, 1450000000, 1450100000],
    ("temporal", "latitude"): [52.520213, None, None, None, 40.1],
    ("temporal", "longitude"): [13.373097, None, None, None, -3.5],
    ("temporal", "geoaccuracy"): [16, 0, 0, 0, 11],
    ("temporal", "has_geo"): [True, False, False, False, True],
    ("additional", "pathalias"): ["luisdrayton", None, None, None, "90250231n0510041136096"],
    ("additional", "ispublic"): [1, 1, 1, 1, 1],
    ("additional", "mediastatus"): ["ready"] * 5,
    ("users", "pid"): PIDS,
    ("users", "uid"): ["59@N75", "1@N18", "1@N18", "8770@N36", "10082@N16"],
    ("users", "photo_firstdate"): [1213743830, None, 1213743830, 1213743830, None],
    ("users", "ispro"): [0, 1, 0, 0, 1],
    ("images", "pid"): PIDS,
    ("images", "path"): ["train/59@N75/775.jpg", "train/1@N18/1075.jpg", "train/1@N18/4890.jpg",
                         "test/8770@N36/50731.jpg", "test/10082@N16/96454.jpg"],
    ("images", "exists"): [True, True, False, True, False],
}

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


@pytest.mark.parametrize("raw, minutes", [
    ("+01:00", 60), ("1", 60), ("-08:00", -480), ("+0530", 330), ("UTC+5:30", 330), ("GMT-3", -180),
    ("-3.5", -210), ("0", 0), (1, 60), (1.0, 60), (-8.0, -480), (None, None), ("None", None), ("", None),
    (float("nan"), None),
])
def test_timezone_offset_minutes(raw, minutes):
    assert parse_tz_minutes(raw) == minutes


@pytest.mark.parametrize("raw, expected", [
    ("1213743830", 1213743830), (1213743830, 1213743830), (1213743830.0, 1213743830),
    ("2013-04-02 17:52:16", EPOCH_2013), ("1204010100", 1204010100), ("None", None), (None, None), ("", None),
])
def test_datetime_epoch_forms(raw, expected):
    assert parse_datetime_epoch([raw], "u.json", "photo_firstdate", Problems()).to_pylist() == [expected]


def test_description_vector_vs_text():
    vec399 = ",".join(["0.5"] * 399)
    vec400_trailing = ",".join(["-0.25"] * 400) + ",\n"
    zeros = ",".join(["0"] * 399)
    values = [vec399, vec400_trailing, zeros, "\n", None, HTML, "City, Country", "1,2,3"]
    text, vec = parse_description(values, "u.json", "user_description", Problems())
    assert text.to_pylist() == [None, None, None, None, None, HTML, "City, Country", "1,2,3"]
    assert vec.type == pa.list_(pa.float32())
    assert vec.to_pylist() == [[0.5] * 399, [-0.25] * 400, None, None, None, None, None, None]
    text, vec = parse_description([HTML, None], "u.json", "user_description", Problems())
    assert vec is None and text.to_pylist() == [HTML, None]


def test_numeric_parsers_accept_string_and_float_forms():
    p = Problems()
    assert parse_int(["100", 1813.0, 0.0, "1", " 7 ", None, "None"], "f", "x", p).to_pylist() == \
        [100, 1813, 0, 1, 7, None, None]
    assert parse_float(["52.520213", "", "0", "-3.5", 1.25], "f", "x", p).to_pylist() == \
        [52.520213, None, 0.0, -3.5, 1.25]
    assert parse_pid(["50731", 194355, 775.0], "f", p).to_pylist() == [50731, 194355, 775]
    assert parse_str(["None", "", "\n", "a,b", None], "f", "x", p).to_pylist() == [None, None, None, "a,b", None]
    assert parse_str(["None", ""], "f", "x", p, missing_to_null=False).to_pylist() == ["None", ""]
    assert parse_uid(["8770@N36", "24085@N3", "96081@N0", "108303@N16"], "f", p).to_pylist() == \
        ["8770@N36", "24085@N3", "96081@N0", "108303@N16"]
    assert not p.rows and not p.examples


# --------------------------------------------------------------------------------------------
# 2. image list
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["train/1@N18/1076.jpg", "train/1@N19/1075.jpg", "1075.jpg", ""])
def test_image_path_must_match_uid_and_pid(tmp_path, bad):
    root = make(tmp_path)
    set_line(root, "image_list", 1, bad)
    with pytest.raises(SMPDFormatError, match=where("train_img_filepath.txt", 1, "path") + r": does not match Uid/Pid 1@N18/1075"):
        ingest(root)


def test_image_path_mismatch_in_test_split_names_test_file(tmp_path):
    root = make(tmp_path)
    set_line(root, "image_list", 0, "test/8770@N36/50732.jpg", split="test")
    with pytest.raises(SMPDFormatError, match=where("test_img_filepath.txt", 0, "path")):
        ingest(root)


def test_url_form_keeps_url_and_derives_path(tmp_path):
    tables, _ = ingest(make(tmp_path, "2019", "records"))
    assert col(tables, "images", "url") == [
        "https://www.flickr.com/photos/1000@N00/385070026", "https://www.flickr.com/photos/1001@N00/385070027",
        "https://www.flickr.com/photos/1002@N00/385070028", None, None]
    assert col(tables, "images", "path") == SHARED_EXPECTED[("images", "path")]
    assert col(tables, "images", "exists") == [True, True, False, True, False]


def test_url_form_is_linked_by_row_not_checked_against_ids(tmp_path):
    root = make(tmp_path, "2019")
    set_line(root, "image_list", 1, "http://www.flickr.com/photos/58708830@N00/1", release="2019")
    tables, _ = ingest(root)
    assert col(tables, "images", "url")[1] == "http://www.flickr.com/photos/58708830@N00/1"
    assert col(tables, "images", "path")[1] == "train/1@N18/1075.jpg"


def test_check_images_false_gives_nulls(tmp_path):
    tables, report = ingest(make(tmp_path), check_images=False)
    assert col(tables, "images", "exists") == [None] * 5
    assert tables["images"].schema.field("exists").type == pa.bool_()
    assert report["images"] == {"listed": 5, "checked": False, "present": None, "missing": None}


def test_image_report_counts(tmp_path):
    _, report = ingest(make(tmp_path))
    assert report["images"] == {"listed": 5, "checked": True, "present": 3, "missing": 2}


def test_image_root_option(tmp_path):
    root = make(tmp_path, images=False)
    images = tmp_path / "imgs"
    (images / "train" / "1@N18").mkdir(parents=True)
    (images / "train" / "1@N18" / "4890.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    (images / "test" / "10082@N16").mkdir(parents=True)
    (images / "test" / "10082@N16" / "96454.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    tables, _ = ingest(root)
    assert col(tables, "images", "exists") == [False] * 5
    tables, report = ingest(root, image_root=str(images))
    assert col(tables, "images", "exists") == [False, False, True, False, True]
    assert report["images"]["present"] == 2


# --------------------------------------------------------------------------------------------
# 3. label file
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [
    b"7.46\n11.98\n3.46\n",
    b"7.46\n11.98\n3.46",  # no trailing newline
    b"7.46 \n11.98  \n3.46 \n",  # trailing whitespace
    b"7.46 x\n11.98 12 13\n3.46 y",  # extra fields
    b"7.46\r\n11.98\r\n3.46\r\n",  # Windows line ends
    b"7.46\r\n11.98\r\n3.46",
    b" 7.46\n11.98\t\n3.46\n",
])
def test_label_file_variants(tmp_path, content):
    root = make(tmp_path)
    fpath(root, "label").write_bytes(content)
    tables, _ = ingest(root)
    assert col(tables, "labels", "label") == [7.46, 11.98, 3.46]


def test_windows_line_ends_in_image_list(tmp_path):
    root = make(tmp_path)
    p = fpath(root, "image_list")
    p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n"))
    tables, _ = ingest(root)
    assert col(tables, "images", "path")[:3] == ["train/59@N75/775.jpg", "train/1@N18/1075.jpg", "train/1@N18/4890.jpg"]


def test_read_lines(tmp_path):
    p = tmp_path / "x.txt"
    p.write_bytes(b"a\r\nb \n\nc\n")
    assert read_lines(p) == ["a", "b ", "", "c"]
    p.write_bytes(b"a\nb")
    assert read_lines(p) == ["a", "b"]
    p.write_bytes(b"")
    assert read_lines(p) == []


# --------------------------------------------------------------------------------------------
# 4. errors under policy "error"
# --------------------------------------------------------------------------------------------

def test_broken_json_names_the_file(tmp_path):
    root = make(tmp_path)
    p = fpath(root, "text")
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(SMPDFormatError, match=r"^train_text\.json: broken JSON"):
        ingest(root)


@pytest.mark.parametrize("release, kind", [("2022", "user"), ("2019", "temporal"), ("2022", "category")])
def test_broken_json_in_other_files(tmp_path, release, kind):
    root = make(tmp_path, release)
    p = fpath(root, kind, release=release)
    p.write_text('[{"Pid": "775",')
    with pytest.raises(SMPDFormatError, match=re.escape(p.name) + r": broken JSON"):
        ingest(root, on_bad_row="reject")  # structural: raises under reject too


@pytest.mark.parametrize("kind, name", [
    ("text", "train_text.json"), ("user", "train_user_data.json"), ("label", "train_label.txt"),
    ("image_list", "train_img_filepath.txt"), ("additional", "train_additional_information.json"),
])
def test_missing_required_file_is_named(tmp_path, kind, name):
    root = make(tmp_path)
    fpath(root, kind).unlink()
    with pytest.raises(SMPDFormatError, match=r"train split is incomplete, missing file\(s\): " + re.escape(name)):
        ingest(root)


def test_incomplete_test_split_is_an_error(tmp_path):
    root = make(tmp_path)
    fpath(root, "temporal", "test").unlink()
    with pytest.raises(SMPDFormatError, match=r"test split is incomplete.*test_temporalspatial_information\.json"):
        ingest(root)


def test_missing_train_split_or_directory(tmp_path):
    with pytest.raises(SMPDFormatError, match="does not exist"):
        ingest(tmp_path / "nope")
    root = make(tmp_path)
    shutil.rmtree(root / "train_allmetadata_json")
    with pytest.raises(SMPDFormatError, match=r"no SMPD train files"):
        ingest(root)


def _drop_last_row(root: Path, kind: str, release: str = "2022") -> None:
    p = fpath(root, kind, release=release)
    if kind in ("label", "image_list"):
        lines = read_lines(p)
        p.write_text("\n".join(lines[:-1]) + "\n")
        return
    data = load(p)
    if isinstance(data, list):
        dump(p, data[:-1])
    else:
        dump(p, {c: {k: v for k, v in inner.items() if k != str(len(inner) - 1)} for c, inner in data.items()})


@pytest.mark.parametrize("release, user_form, kind", [
    ("2022", "columns", "text"), ("2022", "columns", "temporal"), ("2022", "columns", "additional"),
    ("2022", "columns", "user"), ("2019", "records", "user"), ("2022", "columns", "image_list"),
    ("2022", "columns", "label"), ("2019", "records", "image_list"),
])
@pytest.mark.parametrize("policy", ["error", "reject"])
def test_misaligned_row_counts_name_both_files_and_counts(tmp_path, release, user_form, kind, policy):
    root = make(tmp_path, release, user_form)
    _drop_last_row(root, kind, release)
    name = fpath(root, kind, release=release).name
    rx = re.escape(name) + r": misaligned, 2 rows but train_category\.json has 3"
    with pytest.raises(SMPDFormatError, match=rx):
        ingest(root, on_bad_row=policy)


def test_extra_row_in_category_is_misaligned(tmp_path):
    root = make(tmp_path)
    p = fpath(root, "category")
    data = load(p)
    dump(p, data + [dict(data[0], Pid="9999")])
    with pytest.raises(SMPDFormatError, match=r"train_text\.json: misaligned, 3 rows but train_category\.json has 4"):
        ingest(root)


# (kind, split, row, key, value, expected message after "<file> row <row> field '<field>'", field)
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


@pytest.mark.parametrize("kind, release, user_form", [
    ("text", "2022", "columns"), ("category", "2022", "columns"), ("additional", "2019", "records"),
    ("user", "2019", "records"),
])
@pytest.mark.parametrize("policy", ["error", "reject"])
def test_record_that_is_not_an_object(tmp_path, kind, release, user_form, policy):
    root = make(tmp_path, release, user_form)
    p = fpath(root, kind, release=release)
    data = load(p)
    data[1] = ["775", "59@N75"]
    dump(p, data)
    with pytest.raises(SMPDFormatError, match=re.escape(p.name) + r" row 1: expected a JSON object, got list"):
        ingest(root, on_bad_row=policy)


@pytest.mark.parametrize("kind", ["text", "temporal"])
def test_record_file_that_is_not_an_array(tmp_path, kind):
    root = make(tmp_path)
    p = fpath(root, kind)
    dump(p, {"Pid": "775"})
    with pytest.raises(SMPDFormatError, match=re.escape(p.name) + r": expected a JSON array of records, got dict"):
        ingest(root, on_bad_row="reject")


def test_user_file_of_unknown_shape(tmp_path):
    root = make(tmp_path)
    dump(fpath(root, "user"), {"Uid": ["59@N75"], "Pid": [775]})  # "list" orientation: not supported
    with pytest.raises(SMPDFormatError, match=r"train_user_data\.json: expected a JSON array of records \(7a\) or a columnar"):
        ingest(root)


@pytest.mark.parametrize("policy", ["error", "reject"])
def test_columnar_user_file_missing_row_key(tmp_path, policy):
    root = make(tmp_path)
    p = fpath(root, "user")
    dump(p, {c: {k: v for k, v in inner.items() if k != "1"} for c, inner in load(p).items()})
    with pytest.raises(SMPDFormatError, match=where("train_user_data.json", None, "Uid") + r": row keys are not 0\.\.n-1"):
        ingest(root, on_bad_row=policy)


@pytest.mark.parametrize("policy", ["error", "reject"])
def test_columnar_user_file_columns_of_different_length(tmp_path, policy):
    root = make(tmp_path)
    p = fpath(root, "user")
    data = load(p)
    del data["photo_count"]["2"]
    dump(p, data)
    with pytest.raises(SMPDFormatError,
                       match=where("train_user_data.json", None, "photo_count") + r": column rows differ"):
        ingest(root, on_bad_row=policy)


def test_columnar_user_file_non_integer_row_key(tmp_path):
    root = make(tmp_path)
    p = fpath(root, "user")
    data = load(p)
    data = {c: {("x" if k == "1" else k): v for k, v in inner.items()} for c, inner in data.items()}
    dump(p, data)
    with pytest.raises(SMPDFormatError, match=where("train_user_data.json", None, "Uid") + r": row key 'x' is not an integer"):
        ingest(root)


def test_columnar_user_file_column_not_an_object(tmp_path):
    root = make(tmp_path)
    p = fpath(root, "user")
    data = load(p)
    data["ispro"] = [0.0, 1.0, 0.0]
    dump(p, data)
    with pytest.raises(SMPDFormatError, match=r"train_user_data\.json: expected a JSON array of records \(7a\)"):
        ingest(root)


def test_invalid_policy():
    with pytest.raises(ValueError, match="on_bad_row"):
        IngestConfig(on_bad_row="skip")


# --------------------------------------------------------------------------------------------
# 5. policy "reject"
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# 6. layout detection
# --------------------------------------------------------------------------------------------

def _flatten(root: Path) -> None:
    for sub in ("train_allmetadata_json", "test_allmetadata_json"):
        for f in (root / sub).iterdir():
            f.rename(root / f.name)
        (root / sub).rmdir()


def test_flat_folder_and_subfolder_give_same_tables(tmp_path):
    nested = make(tmp_path / "a")
    flat = make(tmp_path / "b")
    _flatten(flat)
    assert (flat / "train_category.json").is_file()
    t1, r1 = ingest(nested)
    t2, r2 = ingest(flat)
    assert all(t1[t].equals(t2[t]) for t in TABLES)
    assert r1["files"]["train_text.json"]["path"] == "train_allmetadata_json/train_text.json"
    assert r2["files"]["train_text.json"]["path"] == "train_text.json"
    assert r1["splits"]["train"]["release"] == r2["splits"]["train"]["release"] == "2022+"


def test_2019_release_inside_an_archive_folder(tmp_path):
    root = make(tmp_path, "2019", "records")
    sub = root / "train_all_json"
    sub.mkdir()
    for f in list(root.glob("*_*.*")):
        f.rename(sub / f.name)
    tables, report = ingest(root)
    assert report["splits"]["train"]["release"] == report["splits"]["test"]["release"] == "2019/2020"
    assert report["files"]["train_tags.json"]["path"] == "train_all_json/train_tags.json"
    assert col(tables, "posts", "pid") == PIDS


@pytest.mark.parametrize("release, expected", [("2022", "2022+"), ("2019", "2019/2020")])
@pytest.mark.parametrize("user_form", FORMS)
def test_release_and_user_form_recorded(tmp_path, release, expected, user_form):
    _, report = ingest(make(tmp_path, release, user_form))
    for split in ("train", "test"):
        assert report["splits"][split]["release"] == expected
        assert report["splits"][split]["user_form"] == user_form
    assert report["policy"] == "error"


def test_test_split_is_optional(tmp_path):
    tables, report = ingest(make(tmp_path, with_test=False))
    assert set(report["splits"]) == {"train"}
    assert col(tables, "posts", "pid") == [775, 1075, 4890]
    assert col(tables, "posts", "split") == ["train"] * 3
    assert report["posts_read"] == 3


def test_ambiguous_duplicate_files_raise(tmp_path):
    root = make(tmp_path)
    shutil.copy(fpath(root, "text"), root / "train_text.json")
    with pytest.raises(SMPDFormatError, match=r"train: ambiguous text file.*train_text\.json.*train_text\.json"):
        ingest(root)


def test_newest_release_name_wins_when_both_present(tmp_path):
    root = make(tmp_path)
    shutil.copy(fpath(root, "text"), folder(root) / "train_tags.json")
    located = locate_smpd(root)
    assert located["train"]["text"].name == "train_text.json"
    assert located["train"].release == "2022+"


def test_image_folders_are_not_scanned_for_metadata(tmp_path):
    """A stray copy of a metadata file inside ``train/<Uid>/`` must not be taken for a metadata file."""
    root = make(tmp_path)
    shutil.copy(fpath(root, "text"), root / "train" / "59@N75" / "train_text.json")
    shutil.copy(fpath(root, "label", "train"), root / "test" / "8770@N36" / "train_label.txt")
    tables, report = ingest(root)
    assert report["files"]["train_text.json"]["path"] == "train_allmetadata_json/train_text.json"
    assert col(tables, "posts", "pid") == PIDS


def test_files_three_levels_down_are_not_found(tmp_path):
    root = make(tmp_path / "deep")
    deeper = tmp_path / "outer"
    deeper.mkdir()
    (tmp_path / "deep").rename(deeper / "deep")  # outer/deep/smpd/train_allmetadata_json/...
    with pytest.raises(SMPDFormatError, match="no SMPD train files"):
        ingest(deeper)
    assert ingest(deeper / "deep")[1]["files"]["train_text.json"]["path"] == "smpd/train_allmetadata_json/train_text.json"


# --------------------------------------------------------------------------------------------
# 7. write_tables
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("release, user_form", [("2022", "columns"), ("2019", "records")])
def test_write_tables_round_trip_and_determinism(tmp_path, release, user_form):
    tables, _ = ingest(make(tmp_path, release, user_form))
    a = write_tables(tables, tmp_path / "out_a")
    b = write_tables(tables, tmp_path / "out_b")
    again, _ = ingest(make(tmp_path / "again", release, user_form))
    c = write_tables(again, tmp_path / "out_c")
    assert set(a) == set(OUTPUT_TABLES)
    for name, path in a.items():
        assert path == tmp_path / "out_a" / f"{name}.parquet"
        back = pq.read_table(path)
        assert back.equals(tables[name]), name
        assert back.schema == tables[name].schema, name
        assert path.read_bytes() == b[name].read_bytes() == c[name].read_bytes(), name
    users = pq.read_table(a["users"])
    if user_form == "records":
        assert users["user_description_vec"].to_pylist()[0] == [0.5] * 399
    assert pq.read_table(a["categories"])["subcategory"].to_pylist()[1] == "Health,Fitness"


# --------------------------------------------------------------------------------------------
# 8. property test: random records in the 2022 layout parse back to the generated values
# --------------------------------------------------------------------------------------------

MARKER_STRINGS = frozenset({"None", ""})  # free-text strings read as missing (after stripping)


def _present(s: str) -> bool:
    return s.strip(" \r\n\t") not in MARKER_STRINGS


free_text = st.text(alphabet=st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(",#@&<>\"'\\ ")), max_size=15)
present_text = free_text.filter(_present)
maybe_text = st.one_of(st.sampled_from(["None", "", "\n", None]), present_text)  # random missing markers
uid_st = st.builds(lambda a, b: f"{a}@N{b}", st.integers(0, 10**6), st.integers(0, 99))
tz_st = st.integers(-56, 56).map(lambda q: q * 15)
dt_st = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 12, 31)).map(lambda d: d.replace(microsecond=0))


@st.composite
def post(draw):
    geo = draw(st.booleans())
    lat = draw(st.floats(-90, 90, allow_nan=False)) if geo else None
    lon = draw(st.floats(-180, 180, allow_nan=False)) if geo else None
    taken = draw(st.one_of(st.none(), dt_st))
    firstdate = draw(st.one_of(st.none(), st.integers(0, 2**31)))
    return {
        "uid": draw(uid_st),
        "category": draw(maybe_text), "subcategory": draw(maybe_text), "concept": draw(maybe_text),
        "title": draw(st.one_of(st.none(), st.sampled_from(["None", ""]), free_text)),
        "alltags": draw(st.one_of(st.just(""), st.lists(st.sampled_from(
            ["rock", "uploaded:by=flickstagram", "instagram:photo=9376", "a,b", "caf\u00e9"]), max_size=4).map(" ".join))),
        "postdate": draw(st.integers(0, 2**40)),
        "lat": None if lat is None else f"{lat:.6f}", "lon": None if lon is None else f"{lon:.6f}",
        "acc": draw(st.integers(1, 16)) if geo else 0,
        "pathalias": draw(maybe_text), "ispublic": draw(st.sampled_from([0, 1])),
        "label": draw(st.integers(100, 1656)) / 100,
        "photo_count": draw(st.one_of(st.none(), st.integers(0, 10**6))),
        "ispro": draw(st.sampled_from([None, 0, 1])),
        "tz": draw(st.one_of(st.none(), tz_st)),
        "taken": taken,
        "firstdate": firstdate, "firstdate_as_str": draw(st.booleans()),
        "timezone_id": draw(maybe_text), "user_description": draw(maybe_text),
        "location_description": draw(maybe_text),
    }


def _tz_text(m: int) -> str:
    return f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"


def _write_generated(root: Path, pids: list[int], posts: list[dict]) -> None:
    d = root / "train_allmetadata_json"
    d.mkdir(parents=True)
    rows = list(zip(pids, posts))
    dump(d / "train_category.json", [{"Category": p["category"], "Concept": p["concept"], "Pid": str(pid),
                                      "Uid": p["uid"], "Subcategory": p["subcategory"]} for pid, p in rows])
    dump(d / "train_text.json", [{"Alltags": p["alltags"], "Pid": str(pid), "Uid": p["uid"], "Mediatype": "photo",
                                  "Title": p["title"]} for pid, p in rows])
    dump(d / "train_temporalspatial_information.json", [
        {"Postdate": str(p["postdate"]), "Uid": p["uid"], "Pid": str(pid), "Longitude": p["lon"] or "",
         "Geoaccuracy": str(p["acc"]), "Latitude": p["lat"] or "0"} for pid, p in rows])
    dump(d / "train_additional_information.json", [
        {"Mediastatus": "ready", "Pathalias": p["pathalias"], "Ispublic": str(p["ispublic"]), "Pid": str(pid),
         "Uid": p["uid"]} for pid, p in rows])
    columns = {
        "Uid": [p["uid"] for p in posts], "Pid": pids,
        "photo_firstdate": [None if p["firstdate"] is None else (str(p["firstdate"]) if p["firstdate_as_str"]
                                                                 else p["firstdate"]) for p in posts],
        "photo_count": [None if p["photo_count"] is None else float(p["photo_count"]) for p in posts],
        "ispro": [None if p["ispro"] is None else float(p["ispro"]) for p in posts],
        "timezone_offset": [None if p["tz"] is None else _tz_text(p["tz"]) for p in posts],
        "photo_firstdatetaken": [None if p["taken"] is None else p["taken"].strftime("%Y-%m-%d %H:%M:%S") for p in posts],
        "timezone_id": [p["timezone_id"] for p in posts],
        "user_description": [p["user_description"] for p in posts],
        "location_description": [p["location_description"] for p in posts],
    }
    dump(d / "train_user_data.json", {c: {str(i): v for i, v in enumerate(vals)} for c, vals in columns.items()})
    (d / "train_img_filepath.txt").write_text("".join(f"train/{p['uid']}/{pid}.jpg\n" for pid, p in rows))
    (d / "train_label.txt").write_text("".join(f"{p['label']:.2f}\n" for p in posts))


def _missing(v):
    return v if v is not None and _present(v) else None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pids=st.lists(st.integers(1, 2**40), min_size=1, max_size=6, unique=True), data=st.data())
def test_property_generated_records_round_trip(pids, data):
    posts = [data.draw(post()) for _ in pids]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "smpd"
        _write_generated(root, pids, posts)
        tables, report = ingest(root, check_images=False)
    order = sorted(range(len(pids)), key=lambda i: pids[i])
    ps = [posts[i] for i in order]
    assert col(tables, "posts", "pid") == sorted(pids)
    assert col(tables, "posts", "row") == order
    assert col(tables, "posts", "uid") == [p["uid"] for p in ps]
    assert col(tables, "posts", "postdate") == [p["postdate"] for p in ps]
    for k in ("category", "subcategory", "concept"):
        assert col(tables, "categories", k) == [_missing(p[k]) for p in ps], k
    assert col(tables, "text", "title") == [p["title"] for p in ps]
    assert col(tables, "text", "alltags") == [p["alltags"] for p in ps]
    assert col(tables, "temporal", "has_geo") == [p["lat"] is not None for p in ps]
    assert col(tables, "temporal", "latitude") == [None if p["lat"] is None else float(p["lat"]) for p in ps]
    assert col(tables, "temporal", "longitude") == [None if p["lon"] is None else float(p["lon"]) for p in ps]
    assert col(tables, "temporal", "geoaccuracy") == [p["acc"] for p in ps]
    assert col(tables, "additional", "pathalias") == [_missing(p["pathalias"]) for p in ps]
    assert col(tables, "additional", "ispublic") == [p["ispublic"] for p in ps]
    assert col(tables, "labels", "label") == [float(f"{p['label']:.2f}") for p in ps]
    assert col(tables, "users", "photo_count") == [p["photo_count"] for p in ps]
    assert col(tables, "users", "ispro") == [p["ispro"] for p in ps]
    assert col(tables, "users", "tz_offset_minutes") == [p["tz"] for p in ps]
    assert col(tables, "users", "timezone_offset") == [None if p["tz"] is None else _tz_text(p["tz"]) for p in ps]
    assert col(tables, "users", "photo_firstdate") == [p["firstdate"] for p in ps]
    assert col(tables, "users", "photo_firstdatetaken") == [
        None if p["taken"] is None else int(p["taken"].replace(tzinfo=timezone.utc).timestamp()) for p in ps]
    for k in ("timezone_id", "user_description", "location_description"):
        assert col(tables, "users", k) == [_missing(p[k]) for p in ps], k
    assert col(tables, "images", "path") == [f"train/{p['uid']}/{pid}.jpg" for pid, p in zip(sorted(pids), ps)]
    assert report["posts_kept"] == len(pids) and report["splits"]["train"]["user_form"] == "columns"


# --------------------------------------------------------------------------------------------
# direct checks of the low-level helpers the parsers share
# --------------------------------------------------------------------------------------------

def test_record_columns_absent_key_reads_null():
    cols = record_columns([{"Pid": "1", "Title": "x"}, {"Pid": "2"}], "t.json", ("Pid", "Title"))
    from featurestore.smpd_fastpath import as_list

    assert {k: as_list(v) for k, v in cols.items()} == {"Pid": ["1", "2"], "Title": ["x", None]}


def test_tz_column_reports_and_nulls_out_of_range():
    p = Problems(policy="reject")
    out = parse_tz_column(["+01:00", "+15:00", "zz", None], "u.json", "timezone_offset", p)
    assert out.to_pylist() == [60, None, None, None]
    assert p.rows == {1: "UTC offset out of range", 2: "unparsable UTC offset"}


def test_read_user_file_records_without_ids_joins_by_position(tmp_path):
    p = tmp_path / "train_userdata.json"
    dump(p, [{"photo_count": "5", "timezone_timezone_id": "9"}, {"photo_count": "6", "timezone_timezone_id": "10"}])
    ref = {"pid": pa.array([10, 11], pa.int64()), "uid": pa.array(["1@N1", "2@N2"])}
    out = read_user_file(p, ref, Problems())
    assert out["uid"].to_pylist() == ["1@N1", "2@N2"]
    assert out["photo_count"].to_pylist() == [5, 6]
    assert out["timezone_id"].to_pylist() == ["9", "10"]
    assert out["user_form"].to_pylist() == ["records", "records"]


def test_numeric_parsers_reject_python_only_spellings():
    """int()/float() accept "1_000", non-ASCII digits and unbounded ints; SMPD files never hold them."""
    p = Problems(policy="reject")
    out = parse_int(["1_000", "\u0665", "99999999999999999999", 2**63, 1e300, "12"], "f.json", "x", p)
    assert out.to_pylist() == [None, None, None, None, None, 12]
    assert p.rows == {0: "not an integer", 1: "not an integer", 2: "integer out of range",
                      3: "integer out of range", 4: "integer out of range"}
    p = Problems(policy="reject")
    assert parse_float(["1_0.5", "\u0661.5", "1.5"], "f.json", "x", p).to_pylist() == [None, None, 1.5]
    assert p.rows == {0: "not a number", 1: "not a number"}
    assert [parse_tz_minutes(v) for v in ("inf", float("inf"), "1_0", "\u0661")] == [None, None, None, None]
    p = Problems(policy="reject")
    assert parse_datetime_epoch(["inf", "-1e300", "1_000"], "f.json", "x", p).to_pylist() == [None, None, None]
    assert p.rows == {0: "epoch out of range", 1: "epoch out of range",
                      2: "not an epoch or YYYY-MM-DD HH:MM:SS datetime"}


def test_text_fields_keep_nan_like_words():
    """Only FORMAT.md's markers mean missing in free text: an alias spelled "nan" or "null" is kept."""
    from featurestore.smpd_values import Problems, parse_str

    got = parse_str(["nan", "null", "None", "", "\n", "x"], "f.json", "Pathalias", Problems()).to_pylist()
    assert got == ["nan", "null", None, None, None, "x"]
