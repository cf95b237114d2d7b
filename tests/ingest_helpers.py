"""Shared helpers and expected values for the SMPD ingest tests (tests/test_ingest_*.py).

The tiny hand-written fixture (``smpd_fixture.write_smpd``: 3 train, 2 test posts) is
written to a tmp dir and single files are corrupted per test. Expected values are
spelled out literally so that a parser change shows up as a failing assertion.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from featurestore.ingest import IngestConfig, ingest_smpd
from smpd_fixture import NAMES, write_smpd, write_split


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
# expected values of the unmodified fixture (both releases x both user forms)
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
