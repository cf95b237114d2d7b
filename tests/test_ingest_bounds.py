"""Implausible values: post dates, user dates and labels outside the configured bounds.

Defaults (``IngestConfig``): Postdate in [1990-01-01, 2040-01-01], the user's photo_firstdate and
photo_firstdatetaken in [1900-01-01, 2040-01-01], labels in [0, 30]. Outside: a named problem
(raises under ``error``, the row is rejected and counted by reason under ``reject``). A Postdate
that would be in range divided by 1000 is named as milliseconds, never converted.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from featurestore.config import config_from_dict
from featurestore.ingest import TABLES, IngestConfig
from featurestore.smpd_layout import SMPDFormatError
from ingest_helpers import col, fpath, ingest, make, set_line, set_value, where
from smpd_fixture import TEST

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
POST_RANGE = r"postdate out of range \[1990-01-01, 2040-01-01\]"
POST_MS = r"postdate looks like milliseconds \(epoch seconds expected in \[1990-01-01, 2040-01-01\]\)"
LABEL_RANGE = r"label out of range \[0, 30\]"

POSTDATES = [
    ("1434314341000", POST_MS),          # 2015-06-14 in milliseconds
    (1434314341000, POST_MS),            # the same as a JSON number
    ("99999999999", POST_RANGE),         # the year 5138
    ("-5", POST_RANGE),
    ("0", POST_RANGE),
    ("9e18", POST_RANGE),                # int64-sized: used to crash later with an overflow naming no row
    ("631151999", POST_RANGE),           # one second before 1990-01-01
    ("2208988801", POST_RANGE),          # one second after 2040-01-01
    ("2208988801000000", POST_RANGE),    # microseconds: not milliseconds, just out of range
]


@pytest.mark.parametrize("value, reason", POSTDATES, ids=[repr(v) for v, _ in POSTDATES])
def test_implausible_postdate_raises_naming_file_row_field(tmp_path, value, reason):
    root = make(tmp_path)
    set_value(root, "temporal", 1, "Postdate", value)
    with pytest.raises(SMPDFormatError, match=where("train_temporalspatial_information.json", 1, "Postdate") + ": " + reason):
        ingest(root)


@pytest.mark.parametrize("value, reason", POSTDATES, ids=[repr(v) for v, _ in POSTDATES])
def test_implausible_postdate_rejected_and_counted(tmp_path, value, reason):
    root = make(tmp_path)
    set_value(root, "temporal", 0, "Postdate", value, split="test")
    tables, report = ingest(root, on_bad_row="reject")
    for t in TABLES:
        assert int(TEST[0][0]) not in col(tables, t, "pid"), t
    split = report["splits"]["test"]
    assert split["rows_read"] == 2 and split["rows_kept"] == 1 and split["rows_rejected"] == 1
    [(got, n)] = split["rejected_by_reason"].items()
    assert n == 1 and re.fullmatch(reason, got), got
    assert report["rejections"][0]["field"] == "Postdate" and report["rejections"][0]["row"] == 0


@pytest.mark.parametrize("value", ["631152000", "2208988800", "1425000000", " 1425000000 "])
def test_postdate_bounds_are_inclusive(tmp_path, value):
    root = make(tmp_path)
    set_value(root, "temporal", 1, "Postdate", value)
    tables, _ = ingest(root)
    assert col(tables, "posts", "postdate")[1] == int(value)


def test_careful_path_gives_the_same_problem(tmp_path):
    """A column of mixed JSON types skips the vectorised parser; the bound check is the same."""
    root = make(tmp_path)
    set_value(root, "temporal", 0, "Postdate", 1425963866)  # a JSON int among strings
    set_value(root, "temporal", 2, "Postdate", "1426000000000")
    with pytest.raises(SMPDFormatError, match=where("train_temporalspatial_information.json", 2, "Postdate") + ": " + POST_MS):
        ingest(root)


USER_RANGE = "{} out of range [1900-01-01, 2040-01-01]"
USER_MS = "{} looks like milliseconds (epoch seconds expected in [1900-01-01, 2040-01-01])"
USER_DATES = [
    ("columns", "photo_firstdate", "1213743830000", USER_MS),  # 2008-06-17 in ms (a ms hint needs the post-date era)
    ("records", "photo_firstdate", 1213743830000, USER_MS),
    ("columns", "photo_firstdate", -2208988801, USER_RANGE),  # 1899-12-31 23:59:59
    ("records", "photo_firstdate", "4102444800", USER_RANGE),  # 2100-01-01; /1000 is 1970, not taken for ms
    ("columns", "photo_firstdatetaken", "2045-01-01 00:00:00", USER_RANGE),
    ("columns", "photo_firstdatetaken", "1899-12-31 23:59:59", USER_RANGE),
    ("records", "photo_firstdatetaken", "-2208988801", USER_RANGE),
]


@pytest.mark.parametrize("form, field, value, reason", USER_DATES, ids=[f"{f}-{k}-{v!r}" for f, k, v, _ in USER_DATES])
def test_implausible_user_dates(tmp_path, form, field, value, reason):
    root = make(tmp_path, user_form=form)
    set_value(root, "user", 2, field, value)
    name = fpath(root, "user").name
    reason = reason.format(field)
    with pytest.raises(SMPDFormatError, match=where(name, 2, field) + ": " + re.escape(reason)):
        ingest(root)
    tables, report = ingest(root, on_bad_row="reject")
    assert col(tables, "users", "pid") == [775, 1075, 50731, 96454]
    assert report["splits"]["train"]["rejected_by_reason"] == {reason: 1}


@pytest.mark.parametrize("form, field, value", [
    ("columns", "photo_firstdate", -2208988800), ("columns", "photo_firstdatetaken", "1900-01-01 00:00:00"),
    ("columns", "photo_firstdate", 0), ("records", "photo_firstdatetaken", "1969-12-31 23:59:59"),
    ("records", "photo_firstdate", "2208988800"), ("columns", "photo_firstdatetaken", "2039-12-31 23:59:59"),
])
def test_user_dates_at_the_bounds_are_kept(tmp_path, form, field, value):
    root = make(tmp_path, user_form=form)
    set_value(root, "user", 2, field, value)
    tables, _ = ingest(root)
    assert tables["users"].num_rows == 5


@pytest.mark.parametrize("bad", ["-0.5", "30.01", "1e6", "-1e-9"])
def test_label_out_of_range(tmp_path, bad):
    root = make(tmp_path)
    set_line(root, "label", 1, bad)
    with pytest.raises(SMPDFormatError, match=where("train_label.txt", 1, "label") + ": " + LABEL_RANGE):
        ingest(root)
    tables, report = ingest(root, on_bad_row="reject")
    assert col(tables, "labels", "pid") == [775, 4890]
    assert report["splits"]["train"]["rejected_by_reason"] == {"label out of range [0, 30]": 1}


@pytest.mark.parametrize("edge", ["0", "0.0", "30", "-0"])
def test_label_bounds_are_inclusive(tmp_path, edge):
    root = make(tmp_path)
    set_line(root, "label", 1, edge)
    tables, _ = ingest(root)
    assert col(tables, "labels", "label")[1] == float(edge)


def test_custom_bounds(tmp_path):
    root = make(tmp_path)
    # the fixture's train posts are 2015-02-26 .. 2015-03-10, test 2015-12-13/14
    tables, report = ingest(root, on_bad_row="reject", postdate_min="2015-03-01", postdate_max=1450050000,
                            label_max=10.0)
    assert col(tables, "posts", "pid") == [775, 4890, 50731]
    assert col(tables, "labels", "pid") == [775, 4890]
    assert report["splits"]["train"]["rejected_by_reason"] == {
        "postdate out of range [2015-03-01, 2015-12-13T23:40:00Z]": 1}
    assert report["splits"]["test"]["rejected_by_reason"] == {
        "postdate out of range [2015-03-01, 2015-12-13T23:40:00Z]": 1}
    set_line(root, "label", 0, "10.5")
    with pytest.raises(SMPDFormatError, match=where("train_label.txt", 0, "label") + r": label out of range \[0, 10\]"):
        ingest(root, label_max=10.0)


@pytest.mark.parametrize("kw, msg", [
    ({"postdate_min": "yesterday"}, "postdate_min"),
    ({"postdate_min": "2041-01-01"}, "postdate_min must be before postdate_max"),
    ({"user_date_min": "2041-01-01"}, "user_date_min must be before postdate_max"),
    ({"label_min": 5.0, "label_max": 1.0}, "label_min must be below label_max"),
    ({"label_max": float("nan")}, "label_max"),
    ({"postdate_max": True}, "postdate_max"),
])
def test_bad_bound_settings(kw, msg):
    with pytest.raises(ValueError, match=msg):
        IngestConfig(**kw)


def test_bounds_accept_yaml_dates_and_epochs():
    a = IngestConfig(postdate_min=date(1990, 1, 1), postdate_max=datetime(2040, 1, 1), user_date_min=-2208988800)
    b = IngestConfig()
    assert a.bounds() == b.bounds()
    assert IngestConfig(postdate_min="1990-01-01T00:00:00").bounds() == b.bounds()


def test_params_yaml_lists_the_bounds_with_the_default_values():
    section = yaml.safe_load(PARAMS.read_text())["ingest"]
    for key in ("postdate_min", "postdate_max", "user_date_min", "label_min", "label_max"):
        assert key in section, key
    assert config_from_dict(IngestConfig, "ingest", section).bounds() == IngestConfig().bounds()


def test_fixture_values_stay_inside_the_bounds(tmp_path):
    for release in ("2022", "2019"):
        for form in ("columns", "records"):
            tables, report = ingest(make(tmp_path / f"{release}{form}", release, form), on_bad_row="reject")
            assert report["posts_rejected"] == 0, report["rejections"]
