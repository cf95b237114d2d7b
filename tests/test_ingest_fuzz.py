"""Fuzz: SMPD files with random types, missing keys and odd strings never crash ingest.

Under both policies ``ingest_smpd`` either raises ``SMPDFormatError`` or accounts for every
row: rows read = kept + rejected (per split and per file), every per-post table has exactly
the kept rows, and a run that passes under ``error`` gives the same tables under ``reject``.
Any other exception is a parser bug; each one found has a regression test at the bottom.

``SMPP_FUZZ_EXAMPLES=2000`` runs a longer search.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from featurestore.ingest import PER_POST, IngestConfig, ingest_smpd
from featurestore.smpd_crawled import HEADER
from featurestore.smpd_layout import SMPDFormatError
from smpd_fixture import NAMES

EXAMPLES = int(os.environ.get("SMPP_FUZZ_EXAMPLES", "60"))
ODD = ["None", "none", "", " ", "\n", "\t", " \r\n", "nan", "NaN", "-nan", "null", "inf", "-Infinity", "1e999", "-1",
       "0", "-0", "+5", "1.5", "1_000", "0x10", "\u0661", "caf\u00e9", "\u2028", "\x00", "\ud800", "9" * 25,
       "-" + "9" * 25, "9e18", "-9e18", "1e-400", "1e307", "-1e308", "1434314341000", "1425963866", " 1425963866 ", "1425963866.0",
       "2013-04-02 17:52:16", "2015-02-30 00:00:00", "0000-00-00 00:00:00", "9999-12-31 23:59:59", "+01:00",
       "UTC+5:30", "+99:00", "59@N75", "1@N18", "@N", "ready", "photo", "1,2,3", ",".join(["0.5"] * 399),
       ",".join(["x"] * 400), "True", "[]", "{}"]

EXTREME = [1e308, -1e308, 5e-324, 2**63 - 1, -2**63, 2**63, 2**64 - 1, 0.5, -0.0, 1e16 + 2, 1434314341000]
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.integers(-10, 10),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8), st.sampled_from(ODD),
    st.sampled_from(EXTREME),
)
weird = st.one_of(scalar, st.lists(scalar, max_size=3), st.dictionaries(st.text(max_size=3), scalar, max_size=2))


@st.composite
def action(draw, rate: float) -> str:
    """"keep" with probability 1 - rate, else "weird" or "drop" (shrinks towards "keep")."""
    r = draw(st.integers(0, 999))
    return "keep" if r < 1000 * (1 - rate) else ("weird", "drop")[r % 2]


def _good_posts(n: int, pids: list[int], uids: list[str]) -> list[dict]:
    return [{"Pid": str(p), "Uid": u, "Category": "Urban", "Subcategory": "Good,Morning", "Concept": "wallporn",
             "Title": "caf\u00e9 #6", "Alltags": "rock punk", "Mediatype": "photo", "Postdate": str(1425000000 + 1000 * i),
             "Latitude": "52.5", "Longitude": "13.4", "Geoaccuracy": "16", "Pathalias": "None", "Ispublic": "1",
             "Mediastatus": "ready",
             "photo_firstdate": "1213743830", "photo_count": 1813.0, "ispro": 0.0, "canbuypro": "0",
             "timezone_offset": "+01:00", "photo_firstdatetaken": "2013-04-02 17:52:16", "timezone_id": "9",
             "user_description": None, "location_description": "\n", "label": "7.46"}
            for i, (p, u) in enumerate(zip(pids, uids))]


@st.composite
def mutated(draw, rec: dict, keys: tuple[str, ...], rate: float, structural: bool) -> object:
    """``rec`` restricted to ``keys``, each kept, replaced by a random value or dropped; maybe not a dict."""
    if structural and draw(st.integers(0, 9)) == 0:
        return draw(weird)
    out = {}
    for k in keys:
        act = draw(action(rate))
        if act != "drop":
            out[k] = rec[k] if act == "keep" else draw(weird)
    return out


@st.composite
def line(draw, good: str, rate: float) -> str:
    if draw(action(rate)) == "keep":
        return good
    return draw(st.one_of(st.text(max_size=10), st.sampled_from(ODD)))


KEYS = {"category": ("Category", "Concept", "Pid", "Uid", "Subcategory"),
        "text": ("Alltags", "Pid", "Uid", "Mediatype", "Title"),
        "temporal": ("Postdate", "Uid", "Pid", "Longitude", "Geoaccuracy", "Latitude"),
        "additional": ("Mediastatus", "Pathalias", "Ispublic", "Pid", "Uid")}
USER_KEYS = ("photo_firstdate", "photo_count", "ispro", "canbuypro", "timezone_offset", "photo_firstdatetaken",
             "timezone_timezone_id", "user_description", "location_description")
COLUMN_KEYS = ("Uid", "Pid", "photo_firstdate", "photo_count", "ispro", "timezone_offset", "photo_firstdatetaken",
               "timezone_id", "user_description", "location_description")


@st.composite
def split_files(draw, split: str, release: str, first_pid: int, rate: float, structural: bool) -> dict[str, bytes]:
    """File name -> bytes of one split: value damage at ``rate`` per field, structural damage when asked."""
    n = draw(st.integers(1, 6 if split == "train" else 3))
    pids = [first_pid + i for i in range(n)]
    posts = _good_posts(n, pids, [f"{draw(st.integers(0, 99))}@N{draw(st.integers(0, 9))}" for _ in range(n)])
    for p in posts:
        p["photo_count"] = draw(st.sampled_from([p["photo_count"], "1813", None]))
    names = {"category": "{s}_category.json", **NAMES[release]}
    files = {names[kind].format(s=split): json.dumps([draw(mutated(p, keys, rate, structural)) for p in posts])
             for kind, keys in KEYS.items()}
    if draw(st.booleans()):
        users = [draw(mutated(p | {"timezone_timezone_id": p["timezone_id"]}, USER_KEYS, rate, structural))
                 for p in posts]
    else:
        users = {}
        for k in COLUMN_KEYS:
            if structural and draw(action(0.1)) == "drop":
                continue
            vals = {str(i): (draw(weird) if draw(action(rate)) != "keep" else (int(p["Pid"]) if k == "Pid" else p[k]))
                    for i, p in enumerate(posts)}
            if structural and draw(st.integers(0, 9)) == 0:  # a broken row index
                vals[draw(st.sampled_from(["x", "-1", str(n + 1), "01", " 0", "\u00b2", "\u0660"]))] = vals.pop("0")
            users[k] = vals
    files[names["user"].format(s=split)] = json.dumps(users)
    files[names["image_list"].format(s=split)] = "".join(
        draw(line(f"{split}/{p['Uid']}/{p['Pid']}.jpg", rate)) + "\n" for p in posts)
    if split == "train":
        files["train_label.txt"] = "".join(draw(line(p["label"], rate)) + "\n" for p in posts)
    return {k: v.encode("utf-8", "surrogatepass") for k, v in files.items()}


@st.composite
def smpd_dir(draw) -> dict[str, bytes]:
    release = draw(st.sampled_from(["2022", "2019"]))
    rate = draw(st.sampled_from([0.0, 0.01, 0.03, 0.1, 0.3]))
    structural = draw(st.integers(0, 5)) == 0
    files = draw(split_files("train", release, 775, rate, structural))
    if draw(st.booleans()):  # 777: may repeat a train Pid
        files |= draw(split_files("test", release, draw(st.sampled_from([50731, 777])), rate, structural))
    if draw(st.integers(0, 3)) == 0:
        files |= draw(crawled_file(rate))
    return files


@st.composite
def crawled_file(draw, rate: float) -> dict[str, bytes]:
    """user_additional.txt (tab separated) or .csv (with header), fields damaged at ``rate``."""
    csv = draw(st.booleans())
    sep = "," if csv else "\t"
    field = st.one_of(st.text(max_size=6), st.sampled_from(ODD + ["9" * 30, "\u00b2", "0"]))
    rows = [",".join(HEADER)] if csv else []
    for i in range(draw(st.integers(0, 4))):
        good = [draw(st.sampled_from(["alice", "bob", "None", ""]))] + [str(draw(st.integers(0, 9))) for _ in HEADER[1:]]
        rows.append(sep.join(v if draw(action(rate)) == "keep" else draw(field) for v in good))
    name = "user_additional.csv" if csv else "user_additional.txt"
    return {name: "".join(r + "\n" for r in rows).encode("utf-8", "surrogatepass")}


def _write(root: Path, files: dict[str, bytes]) -> None:
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)


def _run(root: Path, policy: str):
    """(tables, report) or None when ingest raised SMPDFormatError; any other exception propagates."""
    try:
        return ingest_smpd(root, IngestConfig(on_bad_row=policy, check_images=False, workers=1))
    except SMPDFormatError:
        return None


def _check_accounting(tables, report, files: dict[str, bytes]) -> None:
    assert report["posts_read"] == report["posts_kept"] + report["posts_rejected"]
    for split, s in report["splits"].items():
        n = len(json.loads(files[f"{split}_category.json"]))
        assert s["rows_read"] == n == s["rows_kept"] + s["rows_rejected"], (split, s)
        assert sum(s["rejected_by_reason"].values()) == s["rows_rejected"], s
    for name, f in report["files"].items():
        assert f["rows_read"] == f["rows_kept"] + f["rows_rejected"], (name, f)
        assert f["rows_kept"] == report["splits"][f["split"]]["rows_kept"], (name, f)
    for t in PER_POST:
        assert tables[t].num_rows == report["posts_kept"], t
    assert tables["labels"].num_rows == report["splits"]["train"]["rows_kept"]
    assert sorted(tables["posts"]["pid"].to_pylist()) == tables["posts"]["pid"].to_pylist()
    crawled = report["crawled_users"]
    if crawled["file"] is not None:
        assert crawled["rows_read"] == crawled["rows_kept"] + sum(crawled["dropped"].values()), crawled
        assert tables["crawled_users"].num_rows == crawled["rows_kept"]


def check_ingest(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "smpd"
        _write(root, files)
        strict = _run(root, "error")
        lenient = _run(root, "reject")
    if strict is not None:  # nothing wrong under error: reject keeps everything and gives the same tables
        assert lenient is not None and lenient[1]["posts_rejected"] == 0
        assert all(strict[0][t].equals(lenient[0][t]) for t in strict[0])
        _check_accounting(*strict, files)
    if lenient is not None:
        _check_accounting(*lenient, files)


def _fixture_like(**override) -> dict[str, bytes]:
    """One clean train post (2022 names) with some values replaced: for regression examples."""
    rec = _good_posts(1, [775], ["59@N75"])[0] | override
    files = {f"train_{k}.json": json.dumps([{key: rec[key] for key in keys if key in rec}])
             for k, keys in (("category", KEYS["category"]), ("text", KEYS["text"]),
                             ("temporalspatial_information", KEYS["temporal"]),
                             ("additional_information", KEYS["additional"]))}
    files["train_user_data.json"] = json.dumps({k: {"0": 775 if k == "Pid" else rec.get(k)} for k in COLUMN_KEYS})
    files["train_img_filepath.txt"] = f"train/{rec['Uid']}/775.jpg\n"
    files["train_label.txt"] = f"{rec['label']}\n"
    return {k: v.encode() for k, v in files.items()}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(smpd_dir())
@example(_fixture_like())
def test_fuzz_ingest_accounts_for_every_row_or_names_the_problem(files):
    check_ingest(files)


def test_clean_fixture_is_kept_whole():
    files = _fixture_like()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "smpd"
        _write(root, files)
        tables, report = _run(root, "error")
    assert report["posts_kept"] == 1 and tables["users"]["photo_count"].to_pylist() == [1813]


# --------------------------------------------------------------------------------------------
# regressions: crashes the fuzzer found (each raised something other than SMPDFormatError)
# --------------------------------------------------------------------------------------------

REGRESSIONS = [
    {"Uid": []},             # an Arrow list column: comparing Uids with the category file could not cast it to text
    {"Uid": {"a": 1}},       # the same for an Arrow struct column
    {"Uid": {}},             # struct<> (no fields)
    {"timezone_offset": 1e308},    # hours * 60 overflowed to inf and round() raised OverflowError
    {"timezone_offset": "1e307"},  # the same from a string
]


@pytest.mark.parametrize("override", REGRESSIONS, ids=[repr(o)[:60] for o in REGRESSIONS])
def test_fuzz_regression(override):
    check_ingest(_fixture_like(**override))


def test_uid_list_and_timezone_overflow_are_named_problems():
    for override, field in (({"Uid": []}, "Uid"), ({"timezone_offset": 1e308}, "timezone_offset")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "smpd"
            _write(root, _fixture_like(**override))
            with pytest.raises(SMPDFormatError, match=f"field '{field}'"):
                ingest_smpd(root, IngestConfig(check_images=False, workers=1))
            assert _run(root, "reject") is None  # the only post rejected: no labelled posts


@pytest.mark.parametrize("stat", ["9" * 30, str(2**63)])
def test_crawled_statistic_beyond_int64_is_a_bad_value(stat):
    """int("9" * 30) passed the digit check and overflowed when the int64 column was built."""
    files = _fixture_like() | {"user_additional.txt": f"alice\t{stat}\t1\t1\t1\t1\t1\t1\t1\nbob\t1\t1\t1\t1\t1\t1\t1\t1\n".encode()}
    check_ingest(files)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "smpd"
        _write(root, files)
        with pytest.raises(SMPDFormatError, match=r"user_additional\.txt row 0 field 'totalViews': not a non-negative"):
            ingest_smpd(root, IngestConfig(check_images=False, workers=1))
        tables, report = _run(root, "reject")
    assert tables["crawled_users"]["pathalias"].to_pylist() == ["bob"]
    assert report["crawled_users"]["dropped"]["bad_value"] == 1


@pytest.mark.parametrize("key", ["\u00b2", "\u0660", " 1", "01", "+1"])
def test_columnar_row_key_that_is_not_a_plain_number(key):
    """'\u00b2'.isdigit() is true but int() refuses it: the key search raised StopIteration."""
    files = _fixture_like()
    files["train_user_data.json"] = json.dumps(
        {c: {key: v} for c, v in json.loads(files["train_user_data.json"]).items() for v in [v["0"]]}).encode()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "smpd"
        _write(root, files)
        with pytest.raises(SMPDFormatError, match=r"train_user_data\.json field 'Uid': row key .* is not an integer"):
            ingest_smpd(root, IngestConfig(on_bad_row="reject", check_images=False, workers=1))
