"""Input of ``smpp predict``: the posts file, every record checked before any work, and the
per-post warnings that go out with the predictions.

Each field goes through the parser ingest uses for the same SMPD column (``smpd_values``), with
the run's value bounds, so ``smpp predict`` accepts exactly what ingest accepts. A problem is a
``PostInputError`` (a ``ValueError``) naming the post (0-based index in the input) and the field:
``post 2: field 'Postdate': expected epoch seconds (int), got 'yesterday'``.

Warnings (codes, ';'-joined in the ``warnings`` column; README "Predicting new posts"):
``image_missing`` (no image file at the post's path), ``unknown_user`` (no stored post of the
Uid), ``before_training_period`` (dated before the first train post),
``after_stored_period_by_<N>d`` (dated N >= 1 whole days after the newest stored post).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from featurestore.ingest import _image_exists
from featurestore.paths import Paths
from featurestore.smpd_users import RENAMES
from featurestore.smpd_values import (
    DAY, Bounds, Problems, check_dates, parse_datetime_epoch, parse_description, parse_float, parse_int, parse_pid,
    parse_str, parse_tz_column, parse_uid,
)

SRC = "post"  # the "file" the parsers name; their messages are re-worded per post below
MAX_ERRORS = 10

# field -> kind; the kinds are the SMPD columns' types as ingest parses them (FORMAT.md §4-§8, §7)
FIELDS = {"Pid": "pid", "Uid": "uid", "Postdate": "postdate",
          "Title": "text", "Alltags": "text", "Mediatype": "label", "Category": "label", "Subcategory": "label",
          "Concept": "label", "Pathalias": "label", "Mediastatus": "label",
          "Latitude": "float", "Longitude": "float", "Geoaccuracy": "int", "Ispublic": "int",
          "photo_count": "int", "ispro": "int", "canbuypro": "int", "photo_firstdate": "user_date",
          "photo_firstdatetaken": "user_date", "timezone_offset": "tz", "timezone_id": "any",
          "user_description": "description", "location_description": "description", "image": "path"}
REQUIRED = ("Uid", "Postdate")
EXPECTED = {"pid": "a positive integer", "uid": "a Uid '<digits>@N<digits>'", "postdate": "epoch seconds (int)",
            "text": "a string", "label": "a string", "float": "a number", "int": "an integer",
            "user_date": "epoch seconds or 'YYYY-MM-DD HH:MM:SS'", "tz": "a UTC offset such as '+01:00'",
            "description": "a string", "path": "an image path (string)"}
# a parser's reason that only restates EXPECTED is left out of the message
TYPE_REASONS = frozenset({"not a number", "not an integer", "not a string", "missing value",
                          "bad Uid (expected <digits>@N<digits>)", "not an epoch or YYYY-MM-DD HH:MM:SS datetime"})


class PostInputError(ValueError):
    """Bad ``smpp predict`` input; the message names the file, or the post and the field.

    ``problems``: [{post (0-based index), field (None: the whole post), message}] for bad posts
    (every problem, also those the message leaves out); [] for a bad file.
    """

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.problems = problems or []


def load_posts(path: Path) -> list:
    """The posts of a JSON file: one object (one post) or a non-empty array of them."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PostInputError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise PostInputError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PostInputError(f"{path}: line {e.lineno} column {e.colno}: invalid JSON: {e.msg}") from None
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise PostInputError(f"{path}: expected a JSON object (one post) or an array of posts, got {type(data).__name__}")
    if not data:
        raise PostInputError(f"{path}: no posts given (an empty JSON array)")
    return data


def validate_posts(records: list, bounds: Bounds = Bounds()) -> list[dict]:
    """Check every record against the SMPD field types and ``bounds``; raise ``PostInputError``
    listing the problems (post index, field), else return the records with 2019/2020 field names
    renamed (``timezone_timezone_id`` -> ``timezone_id``)."""
    if not records:
        raise PostInputError("no posts given")
    errors: list[tuple[int, str | None, str]] = []  # (post, field or None, message)
    posts: dict[int, dict] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            errors.append((i, None, f"post {i}: expected a JSON object with SMPD fields, got {type(rec).__name__}"))
            continue
        rec = {RENAMES.get(k, k): v for k, v in rec.items()}
        errors += [(i, k, f"post {i}: unknown field {k!r} (not an SMPD field; see `smpp predict --help`)")
                   for k in rec if k not in FIELDS]
        errors += [(i, k, f"post {i}: field {k!r} is required") for k in REQUIRED if k not in rec]
        posts[i] = rec
    for name, kind in FIELDS.items():
        rows = [i for i, rec in posts.items() if name in rec]
        if rows:
            errors += [(i, name, m) for i, m in _field_errors(name, kind, rows, [posts[i][name] for i in rows], bounds)]
    errors += [(i, "Pid", m) for i, m in _duplicate_pids(posts)]
    if errors:
        errors.sort(key=lambda e: e[0])
        lines = [m for _, _, m in errors]
        more = f"; and {len(lines) - MAX_ERRORS} more" if len(lines) > MAX_ERRORS else ""
        raise PostInputError("; ".join(lines[:MAX_ERRORS]) + more,
                             [{"post": i, "field": f, "message": m} for i, f, m in errors])
    return [posts[i] for i in range(len(records))]


def _field_errors(name: str, kind: str, rows: list[int], values: list, bounds: Bounds) -> list[tuple[int, str]]:
    """Problems of one field over the posts ``rows`` that have it (``values``: their values)."""
    problems = Problems(policy="reject")
    if kind == "pid":
        parse_pid(values, SRC, problems)
    elif kind == "uid":
        parse_uid(values, SRC, problems)
    elif kind == "postdate":
        arr = parse_int(values, SRC, name, problems, required=True)
        check_dates(arr, values, SRC, name, problems, bounds.postdate, bounds.postdate)
    elif kind in ("text", "label"):
        parse_str(values, SRC, name, problems, missing_to_null=kind == "label")
    elif kind == "float":
        parse_float(values, SRC, name, problems)
    elif kind == "int":
        parse_int(values, SRC, name, problems)
    elif kind == "user_date":
        arr = parse_datetime_epoch(values, SRC, name, problems)
        check_dates(arr, values, SRC, name, problems, bounds.user_date, bounds.postdate)
    elif kind == "tz":
        parse_tz_column(values, SRC, name, problems)
    elif kind == "description":
        parse_description(values, SRC, name, problems)
    elif kind == "path":
        for j, v in enumerate(values):
            if v is not None and not isinstance(v, str):
                problems.add(SRC, j, name, "not a string", v)
    out = []
    for j, reason in problems.rows.items():
        note = "" if reason in TYPE_REASONS else f" ({reason})"
        out.append((rows[j], f"post {rows[j]}: field {name!r}: expected {EXPECTED[kind]}, got {values[j]!r}{note}"))
    return out


def _duplicate_pids(posts: dict[int, dict]) -> list[tuple[int, str]]:
    first: dict[str, int] = {}
    out = []
    for i, rec in posts.items():
        if rec.get("Pid") is None:
            continue
        key = str(rec["Pid"]).strip()
        if key in first:
            out.append((i, f"post {i}: field 'Pid': {rec['Pid']!r} is also the Pid of post {first[key]}"))
        first.setdefault(key, i)
    return out


@dataclass(frozen=True)
class StoreSummary:
    """What the warnings compare a new post with, read once from a run (``load``)."""

    smpd_dir: Path          # image paths are resolved against it
    users: frozenset[str]   # every stored post's Uid
    first_train: int        # postdate of the first train post, epoch s
    last_stored: int        # postdate of the newest stored post, epoch s

    @classmethod
    def load(cls, paths: Paths) -> StoreSummary:
        posts = pl.read_parquet(paths.table("posts"), columns=["uid", "postdate"])
        split = pl.read_parquet(paths.table("split"), columns=["split", "postdate"])
        return cls(smpd_dir=paths.smpd_dir, users=frozenset(posts["uid"].drop_nulls().to_list()),
                   first_train=split.filter(pl.col("split") == "train")["postdate"].min(),
                   last_stored=posts["postdate"].max())


def post_warnings(store: StoreSummary, records: list[dict], pids: list[int]) -> pl.DataFrame:
    """``image_found`` (bool) and ``warnings`` (';'-joined codes, "" for none) per validated record;
    ``pids``: the Pids the posts were predicted under (a fresh one where a record has none)."""
    # the image path as featurestore.new_posts resolves it (``image``, else the SMPD path
    # test/<Uid>/<Pid>.jpg), checked by the same function that sets the features' ``exists`` flag
    images = [rec["image"] if rec.get("image") is not None else f"test/{rec['Uid']}/{pid}.jpg"
              for rec, pid in zip(records, pids)]
    found = _image_exists(pa.array(images, pa.string()), store.smpd_dir).to_pylist()
    warnings = []
    for rec, ok in zip(records, found):
        date = int(parse_int([rec["Postdate"]], SRC, "Postdate", Problems(policy="error"))[0].as_py())
        codes = ["image_missing"] * (not ok) + ["unknown_user"] * (rec["Uid"] not in store.users)
        codes += ["before_training_period"] * (date < store.first_train)
        if (late := (date - store.last_stored) // DAY) >= 1:
            codes.append(f"after_stored_period_by_{late}d")
        warnings.append(";".join(codes))
    return pl.DataFrame({"image_found": found, "warnings": warnings}, schema={"image_found": pl.Boolean,
                                                                               "warnings": pl.String})
