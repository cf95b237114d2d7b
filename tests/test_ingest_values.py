"""Low-level SMPD value parsers and readers (numbers, epochs, UTC offsets, descriptions, user files)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from featurestore.smpd_io import record_columns
from featurestore.smpd_users import read_user_file
from featurestore.smpd_values import (
    Problems, parse_datetime_epoch, parse_description, parse_float, parse_int, parse_pid, parse_str,
    parse_tz_column, parse_tz_minutes, parse_uid,
)
from ingest_helpers import EPOCH_2013, HTML, dump


# --------------------------------------------------------------------------------------------
# value parsers
# --------------------------------------------------------------------------------------------

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
