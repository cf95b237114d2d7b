"""Property test: random records in the 2022 layout parse back to the generated values."""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_helpers import col, dump, ingest


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
        "postdate": draw(st.integers(631152000, 2208988800)),  # the default bounds: 1990-01-01 .. 2040-01-01
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
