"""The SMPD parser on the REAL sample files in ``../shared/smpd/samples`` (see FORMAT.md §12).

The real test-split prefixes (category, additional information, image paths: first 200
rows) are copied into a tmp dir; the text, temporal and user files are synthesised for the
same 200 (Pid, Uid) rows, and a tiny train split is taken from the hand-written fixture.
The only real text/temporal/user records (``other_real_fragments.json``, other pids) are
parsed on their own. Nothing from the real files is copied into the repository: every
expected count is derived from the files at test time.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from featurestore.ingest import TABLES, IngestConfig, ingest_smpd, parse_image_list
from featurestore.smpd_io import read_json, record_columns
from featurestore.smpd_layout import SMPDFormatError
from featurestore.smpd_users import read_user_file
from featurestore.smpd_values import (
    Problems, parse_datetime_epoch, parse_float, parse_int, parse_pid, parse_str, parse_uid,
)
from smpd_fixture import TRAIN, write_split

SMPD_SHARED = Path(__file__).resolve().parents[2] / "shared" / "smpd"
SAMPLES = SMPD_SHARED / "samples"
CATEGORY = SAMPLES / "test_category.first200.json"
ADDITIONAL = SAMPLES / "test_additional_information.first200.json"
IMAGES = SAMPLES / "test_img_filepath.first200.txt"
FRAGMENTS = SAMPLES / "other_real_fragments.json"

if not all(p.is_file() for p in (CATEGORY, ADDITIONAL, IMAGES, FRAGMENTS)):
    pytest.skip(f"real SMPD samples not found under {SAMPLES}", allow_module_level=True)

# FORMAT.md §4: the 11 Category strings exactly as spelled (the misspelling "Whether" is real).
CATEGORIES = {"Animal", "Electronics", "Entertainment", "Family", "Fashion", "Food", "Holiday&Celebrations",
              "Social&People", "Travel&Active&Sports", "Urban", "Whether&Season"}
# FORMAT.md §1/§3: the last row of the full real test files (not part of the 200-row prefix).
LAST_FULL_PID, LAST_FULL_UID = 1118356, "102192@N21"
EPOCH_2013_04_02_175216 = 1364925136  # "2013-04-02 17:52:16" UTC


def _dump(path: Path, obj) -> None:
    path.write_text(json.dumps(obj), encoding="ascii")


def _real_rows() -> list[dict]:
    return json.loads(CATEGORY.read_text(encoding="ascii"))


def _write_real_test_split(root: Path) -> None:
    """Real category/additional/image files + synthesised text/temporal/user files for the same rows."""
    d = root / "test_allmetadata_json"
    d.mkdir(parents=True)
    shutil.copyfile(CATEGORY, d / "test_category.json")
    shutil.copyfile(ADDITIONAL, d / "test_additional_information.json")
    shutil.copyfile(IMAGES, d / "test_img_filepath.txt")
    rows = _real_rows()
    _dump(d / "test_text.json", [{"Alltags": f"tag{i} uploaded:by=flickstagram", "Pid": r["Pid"], "Uid": r["Uid"],
                                  "Mediatype": "photo", "Title": f"title {r['Pid']}, #{i} @x"}
                                 for i, r in enumerate(rows)])
    _dump(d / "test_temporalspatial_information.json", [
        {"Postdate": str(1450000000 + i), "Uid": r["Uid"], "Pid": r["Pid"], "Longitude": "", "Geoaccuracy": "0",
         "Latitude": "0"} for i, r in enumerate(rows)])
    cols = {"Uid": [r["Uid"] for r in rows], "Pid": [int(r["Pid"]) for r in rows],
            "photo_firstdate": [None] * len(rows), "photo_count": [float(i) for i in range(len(rows))],
            "ispro": [float(i % 2) for i in range(len(rows))], "timezone_offset": ["-08:00"] * len(rows),
            "photo_firstdatetaken": ["2013-04-02 17:52:16"] * len(rows), "timezone_id": [None] * len(rows),
            "user_description": [None] * len(rows), "location_description": ["City, Country"] * len(rows)}
    _dump(d / "test_user_data.json", {c: {str(i): v for i, v in enumerate(vals)} for c, vals in cols.items()})


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real") / "smpd"
    (root / "train_allmetadata_json").mkdir(parents=True)
    write_split(root / "train_allmetadata_json", "train", TRAIN, "2022", "columns")
    _write_real_test_split(root)
    return root


@pytest.fixture(scope="module")
def real(real_dir):
    return ingest_smpd(real_dir, IngestConfig(check_images=False))


def col_set(tables, table, column):
    return set(tables[table][column].to_pylist())


def _test_part(tables, name: str) -> pa.Table:
    posts = tables["posts"]
    test_pids = pa.array([p for p, s in zip(posts["pid"].to_pylist(), posts["split"].to_pylist()) if s == "test"])
    t = tables[name]
    return t.filter(pc.is_in(t["pid"], value_set=test_pids))


def test_all_200_real_rows_are_kept(real):
    tables, report = real
    n = len(_real_rows())
    assert n == 200
    assert report["splits"]["test"] == {"release": "2022+", "user_form": "columns", "rows_read": n, "rows_kept": n,
                                        "rows_rejected": 0, "rejected_by_reason": {}, "rejected_rows": []}
    assert report["files"]["test_category.json"]["rows_kept"] == n
    assert report["files"]["test_additional_information.json"]["rows_kept"] == n
    assert report["posts_kept"] == n + len(TRAIN) and report["rejections"] == []
    assert _test_part(tables, "posts").num_rows == n
    assert col_set(tables, "labels", "pid") == {int(r[0]) for r in TRAIN}  # labels only for train posts


def test_reject_policy_rejects_nothing_in_real_rows(real_dir, real):
    tables, report = ingest_smpd(real_dir, IngestConfig(on_bad_row="reject", check_images=False))
    assert report["posts_rejected"] == 0
    assert all(tables[t].equals(real[0][t]) for t in tables)


def test_pid_order_ascending_and_rows_follow_the_file(real):
    tables, _ = real
    rows = _real_rows()
    file_pids = [int(r["Pid"]) for r in rows]
    assert file_pids == sorted(file_pids)  # FORMAT.md §1: test rows are sorted by integer Pid
    posts = _test_part(tables, "posts")
    assert posts["pid"].to_pylist() == file_pids
    assert posts["row"].to_pylist() == list(range(len(rows)))  # sorted output == file order
    assert posts["uid"].to_pylist() == [r["Uid"] for r in rows]
    assert posts["pid"].to_pylist()[0] == 50731 and posts["uid"].to_pylist()[0] == "8770@N36"  # FORMAT.md §4


def test_last_row_matches_image_list_and_documented_file_end(real):
    tables, _ = real
    posts = _test_part(tables, "posts")
    last_line = IMAGES.read_text().rstrip("\n").split("\n")[-1]
    _, uid, name = last_line.split("/")
    assert (posts["pid"].to_pylist()[-1], posts["uid"].to_pylist()[-1]) == (int(name.removesuffix(".jpg")), uid)
    # the documented last row of the full file lies beyond this prefix, consistent with the ascending order
    assert max(posts["pid"].to_pylist()) < LAST_FULL_PID
    # and its documented image path is accepted for its Pid/Uid, while the prefix's last Uid is not
    p = Problems()
    out = parse_image_list([f"test/{LAST_FULL_UID}/{LAST_FULL_PID}.jpg"], "test_img_filepath.txt",
                           pa.array([LAST_FULL_PID]), pa.array([LAST_FULL_UID]), "test", p)
    assert out["path"].to_pylist() == ["test/102192@N21/1118356.jpg"] and out["url"].to_pylist() == [None]
    with pytest.raises(SMPDFormatError, match=r"test_img_filepath\.txt row 0 field 'path'"):
        parse_image_list([f"test/{uid}/{LAST_FULL_PID}.jpg"], "test_img_filepath.txt",
                         pa.array([LAST_FULL_PID]), pa.array([LAST_FULL_UID]), "test", Problems())


def test_pathalias_none_becomes_null(real):
    tables, _ = real
    raw = ADDITIONAL.read_text(encoding="ascii")
    n_none = len(re.findall(r'"Pathalias": "None"', raw))
    recs = json.loads(raw)
    assert n_none == sum(r["Pathalias"] == "None" for r in recs) > 0
    alias = _test_part(tables, "additional")["pathalias"].to_pylist()
    assert alias.count(None) == n_none
    assert alias == [None if r["Pathalias"] == "None" else r["Pathalias"] for r in recs]
    assert _test_part(tables, "additional")["ispublic"].to_pylist() == [int(r["Ispublic"]) for r in recs]
    assert _test_part(tables, "additional")["mediastatus"].to_pylist() == [r["Mediastatus"] for r in recs]


def test_categories_and_comma_subcategories_survive(real):
    tables, _ = real
    rows = _real_rows()
    cats = _test_part(tables, "categories")
    assert cats["category"].to_pylist() == [r["Category"] for r in rows]
    assert cats["subcategory"].to_pylist() == [r["Subcategory"] for r in rows]
    assert cats["concept"].to_pylist() == [r["Concept"] for r in rows]
    with_comma = {r["Subcategory"] for r in rows if "," in r["Subcategory"]}
    assert with_comma  # the prefix holds some (e.g. Health,Fitness)
    assert {s for s in cats["subcategory"].to_pylist() if "," in s} == with_comma
    assert set(cats["category"].to_pylist()) <= CATEGORIES


def test_real_uids_and_image_paths(real):
    tables, _ = real
    rows = _real_rows()
    uids = _test_part(tables, "posts")["uid"].to_pylist()
    assert all(re.fullmatch(r"[0-9]+@N[0-9]+", u) for u in uids)
    assert len(set(uids)) == len({r["Uid"] for r in rows})
    lines = IMAGES.read_text().split("\n")
    assert lines[-1] == "" and len(lines) == len(rows) + 1  # trailing newline at end of file (FORMAT.md §3)
    assert _test_part(tables, "images")["path"].to_pylist() == lines[:-1]
    assert _test_part(tables, "images")["url"].to_pylist() == [None] * len(rows)


def test_synthesised_columns_parse(real):
    tables, _ = real
    users = _test_part(tables, "users")
    assert users["photo_count"].to_pylist() == list(range(200))
    assert users["tz_offset_minutes"].to_pylist() == [-480] * 200
    assert users["photo_firstdatetaken"].to_pylist() == [EPOCH_2013_04_02_175216] * 200
    assert users["location_description"].to_pylist() == ["City, Country"] * 200
    assert _test_part(tables, "temporal")["has_geo"].to_pylist() == [False] * 200


def test_real_file_misalignment_is_detected(tmp_path):
    """Dropping the last real image line must raise: the real files are row-aligned."""
    root = tmp_path / "smpd"
    (root / "train_allmetadata_json").mkdir(parents=True)
    write_split(root / "train_allmetadata_json", "train", TRAIN, "2022", "columns")
    _write_real_test_split(root)
    p = root / "test_allmetadata_json" / "test_img_filepath.txt"
    p.write_text("\n".join(p.read_text().split("\n")[:-2]) + "\n")
    with pytest.raises(SMPDFormatError, match=r"test_img_filepath\.txt: misaligned, 199 rows but test_category\.json has 200"):
        ingest_smpd(root, IngestConfig(check_images=False))


# --------------------------------------------------------------------------------------------
# real text / temporal-spatial / user records (other pids) through the value parsers
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def frag() -> dict:
    return read_json(FRAGMENTS)


def test_real_temporalspatial_record(frag):
    p = Problems()
    cols = record_columns([frag["A_temporalspatial"]], "train_temporalspatial_information.json",
                          ("Pid", "Uid", "Postdate", "Latitude", "Longitude", "Geoaccuracy"))
    name = "train_temporalspatial_information.json"
    assert parse_int(cols["Postdate"], name, "Postdate", p, required=True).to_pylist() == [1425963866]
    assert parse_float(cols["Longitude"], name, "Longitude", p).to_pylist() == [None]  # "" -> null
    assert parse_float(cols["Latitude"], name, "Latitude", p).to_pylist() == [0.0]
    assert parse_int(cols["Geoaccuracy"], name, "Geoaccuracy", p).to_pylist() == [0]
    assert parse_pid(cols["Pid"], name, p).to_pylist() == [194355]
    assert parse_uid(cols["Uid"], name, p).to_pylist() == ["27882@N8"]
    assert not p.examples


def test_real_text_records(frag):
    p = Problems()
    cols = record_columns([frag["A_text"], frag["B_train_text_first_record"]], "train_text.json",
                          ("Pid", "Uid", "Title", "Alltags", "Mediatype"))
    titles = parse_str(cols["Title"], "train_text.json", "Title", p, missing_to_null=False).to_pylist()
    assert titles == ["Arte de @ufo__o #graffiti #grafite #streetart...", "Luis Drayton - Edinburgh shoot #6"]
    tags = parse_str(cols["Alltags"], "train_text.json", "Alltags", p, missing_to_null=False).to_pylist()
    assert "uploaded:by=flickstagram" in tags[0].split(" ")
    assert "instagram:photo=937616898411796705321503909" in tags[0].split(" ")
    assert tags[1].split(" ")[:3] == ["rock", "punk", "transgender"]
    assert parse_pid(cols["Pid"], "train_text.json", p).to_pylist() == [194355, 775]
    assert parse_str(cols["Mediatype"], "train_text.json", "Mediatype", p).to_pylist() == ["photo", "photo"]
    assert not p.examples


def test_real_columnar_user_row(frag, tmp_path):
    row = frag["A_user_data_row_from_columnar_file"]
    path = tmp_path / "train_user_data.json"
    _dump(path, {k: {"0": v} for k, v in row.items()})
    ref = {"pid": pa.array([194355], pa.int64()), "uid": pa.array(["27882@N8"])}
    out = read_user_file(path, ref, Problems())
    expected = {"uid": ["27882@N8"], "photo_firstdate": [None], "photo_count": [1813], "ispro": [0],
                "canbuypro": [None], "timezone_offset": [None], "tz_offset_minutes": [None],
                "photo_firstdatetaken": [EPOCH_2013_04_02_175216], "timezone_id": [None],
                "user_description": [None], "location_description": [None], "user_form": ["columns"],
                "user_description_vec": [None], "location_description_vec": [None]}
    assert {k: v.to_pylist() for k, v in out.items()} == expected
    assert parse_datetime_epoch([row["photo_firstdatetaken"]], "u", "f", Problems()).to_pylist() == [1364925136]
    # and a Pid that disagrees with the category file is caught
    bad = {"pid": pa.array([194356], pa.int64()), "uid": pa.array(["27882@N8"])}
    with pytest.raises(SMPDFormatError, match=r"train_user_data\.json row 0 field 'Pid': does not match"):
        read_user_file(path, bad, Problems())


def test_real_fragment_as_a_one_post_train_split(frag, tmp_path):
    """Fragment A is one complete real train post: ingest it end to end."""
    d = tmp_path / "smpd" / "train_allmetadata_json"
    d.mkdir(parents=True)
    _dump(d / "train_category.json", [frag["A_category"]])
    _dump(d / "train_text.json", [frag["A_text"]])
    _dump(d / "train_temporalspatial_information.json", [frag["A_temporalspatial"]])
    _dump(d / "train_additional_information.json", [frag["A_additional"]])
    _dump(d / "train_user_data.json", {k: {"0": v} for k, v in frag["A_user_data_row_from_columnar_file"].items()})
    (d / "train_img_filepath.txt").write_text(frag["A_image_path"] + "\n")
    (d / "train_label.txt").write_text("6.23\n")
    tables, report = ingest_smpd(tmp_path / "smpd", IngestConfig(check_images=False))
    row = {t: {k: v[0] for k, v in tables[t].to_pydict().items()} for t in TABLES}
    assert row["posts"]["pid"] == 194355 and row["posts"]["uid"] == "27882@N8"
    assert row["posts"]["postdate"] == 1425963866
    assert row["categories"]["category"] == "Urban" and row["categories"]["subcategory"] == "StreetArt"
    assert row["temporal"]["latitude"] is None and row["temporal"]["longitude"] is None
    assert row["temporal"]["has_geo"] is False
    assert row["additional"]["pathalias"] is None
    assert row["users"]["photo_count"] == 1813 and row["users"]["ispro"] == 0
    assert row["users"]["photo_firstdatetaken"] == 1364925136
    assert row["images"]["path"] == "train/27882@N8/194355.jpg"
    assert row["labels"]["label"] == 6.23
    assert report["splits"]["train"]["user_form"] == "columns"
