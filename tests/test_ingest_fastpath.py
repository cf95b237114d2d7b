"""The vectorised fast paths give exactly what the careful per-value parsers give."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.smpd_values import (
    Problems, parse_datetime_epoch, parse_description, parse_float, parse_int, parse_str, parse_tz_column, parse_uid,
)

number_text = st.one_of(
    st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["None", "", "\n", " 12 ", "+5", "1.0", "1_000", "\u0661", "nan", "NaN", "null", "1e999", ".5", "5.",
                     "0x10", "1e5", "-0", "007"]),
)
value = st.one_of(st.none(), number_text, st.integers(-10**19, 10**19), st.floats(), st.booleans(),
                  st.text(max_size=6))


def _same(a, b):
    a, b = a.to_pylist(), b.to_pylist()
    return len(a) == len(b) and all(x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x)
                                               and math.isnan(y)) for x, y in zip(a, b))


def _both(parser, values, **kw):
    """(fast result or the exception type, careful result or the exception type)."""
    out = []
    for fast in (True, False):
        try:
            out.append(parser(values, "f.json", "F", Problems(), fast=fast, **kw))
        except Exception as e:  # noqa: BLE001 - the same error class must come from both paths
            out.append(type(e))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(value, max_size=12), st.booleans())
def test_numbers_fast_equals_careful(values, required):
    for parser in (parse_int, parse_float):
        fast, careful = _both(parser, values, required=required)
        assert (fast == careful) if isinstance(fast, type) else _same(fast, careful), (parser.__name__, values)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=8), st.sampled_from(["None", " None ", "\n", "nan", "12@N3"]),
                          st.integers(0, 5)), max_size=10), st.booleans())
def test_strings_and_uids_fast_equals_careful(values, to_null):
    fast, careful = _both(parse_str, values, missing_to_null=to_null)
    assert (fast == careful) if isinstance(fast, type) else _same(fast, careful)
    fast, careful = [], []
    for flag, out in ((True, fast), (False, careful)):
        try:
            out.append(parse_uid(values, "f.json", Problems(), fast=flag).to_pylist())
        except Exception as e:  # noqa: BLE001
            out.append(type(e))
    assert fast == careful


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["+01:00", "-08:00", "1", "5.5", "None", "", "UTC+5:30", "bad",
                                                      "2013-04-02 17:52:16", "1425963866", "1e30", "+99:00"]),
                          st.integers(-20, 20), st.floats(-20, 20)), max_size=10))
def test_unique_mapped_parsers_equal_careful(values):
    for parser in (parse_tz_column, parse_datetime_epoch):
        fast, careful = _both(parser, values)
        assert (fast == careful) if isinstance(fast, type) else _same(fast, careful), (parser.__name__, values)
    fast, careful = _both(parse_description, values)
    if isinstance(fast, type):
        assert fast == careful
    else:
        assert _same(fast[0], careful[0]) and (fast[1] is None) == (careful[1] is None)


def test_parallel_loading_equals_serial(tmp_path, monkeypatch):
    """Worker processes (spawned) load the JSON files; the tables are identical to a serial run."""
    import featurestore.ingest as ingest
    from smpd_fixture import write_smpd

    root = write_smpd(tmp_path / "smpd", release="2019", user_form="records")
    serial, rep1 = ingest.ingest_smpd(root, ingest.IngestConfig(workers=1))
    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)
    parallel, rep2 = ingest.ingest_smpd(root, ingest.IngestConfig(workers=2))
    assert serial.keys() == parallel.keys()
    assert all(serial[k].equals(parallel[k]) for k in serial)
    assert rep1["files"] == rep2["files"]
