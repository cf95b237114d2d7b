"""The SMPD user-profile file in its two physical forms (FORMAT.md §7).

* 7a records: a JSON array of per-post objects, no Pid/Uid, joined by position;
  ``timezone_timezone_id``; descriptions may be vectors of ~400 comma-separated floats.
* 7b columns: one JSON object in pandas "columns" orientation, ``{column: {"<row>": value}}``,
  with Uid and Pid columns that we check against the category file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.smpd_io import check_same, read_json
from featurestore.smpd_fastpath import as_list, fast_str
from featurestore.smpd_layout import bad_value
from featurestore.smpd_values import (
    TEXT_MISSING_MARKERS, Bounds, Problems, check_dates, is_missing_text, parse_datetime_epoch, parse_description, parse_int,
    parse_pid, parse_tz_column,
)

USER_FIELDS = ("photo_firstdate", "photo_count", "ispro", "canbuypro", "timezone_offset",
               "photo_firstdatetaken", "timezone_id", "user_description", "location_description")
RENAMES = {"timezone_timezone_id": "timezone_id"}


def _columns_from_records(data: list, name: str) -> dict[str, list]:
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise bad_value(name, i, None, f"expected a JSON object, got {type(rec).__name__}")
    keys = set(USER_FIELDS) | {"Pid", "Uid"}
    cols = {k: [rec.get(k) for rec in data] for k in keys}
    for old, new in RENAMES.items():
        if any(old in rec for rec in data[:1]):
            cols[new] = [rec.get(old) for rec in data]
    return cols


def _row_index(inner: dict, name: str, col: str) -> list[str]:
    """The row keys "0".."n-1" in numeric order; anything else is an error."""
    keys = list(inner)
    if keys == [str(i) for i in range(len(keys))]:
        return keys
    # as pandas writes them: ASCII digits, no sign, space or leading zero (int() also takes " 1", "01",
    # Arabic-Indic digits; "\u00b2".isdigit() is true but int() refuses it)
    bad = next((k for k in keys if not (k.isascii() and k.isdigit() and str(int(k)) == k)), None)
    if bad is not None:
        raise bad_value(name, None, col, f"row key {bad!r} is not an integer")
    index = sorted(keys, key=int)
    if [int(k) for k in index] != list(range(len(index))):
        raise bad_value(name, None, col, "row keys are not 0..n-1 (rows missing or duplicated)")
    return index


def _columns_from_columnar(data: dict, name: str) -> dict[str, list]:
    """Rebuild row order from the stringified 0-based row index shared by every column."""
    index: list[str] | None = None
    cols: dict[str, list] = {}
    for col, inner in data.items():
        if not isinstance(inner, dict):
            raise bad_value(name, None, col, "columnar user file: each column must be an object {row: value}")
        if index is None:
            index = _row_index(inner, name, col)
        elif len(inner) != len(index) or (list(inner) != index and inner.keys() != set(index)):
            raise bad_value(name, None, col, "column rows differ from the first column's rows")
        # pandas writes the rows in order: then the values are already aligned (C-speed path)
        cols[RENAMES.get(col, col)] = list(inner.values()) if list(inner) == index else [inner[k] for k in index]
    n = len(index or [])
    return {k: cols.get(k, [None] * n) for k in set(USER_FIELDS) | {"Pid", "Uid"}}


def as_arrow_safe(values) -> pa.Array:
    """Arrow view of a column for null counting; mixed-type lists become strings."""
    return values if isinstance(values, pa.Array) else pa.array([None if v is None else str(v) for v in values])


def _as_text(values) -> pa.Array:
    """A column as strings for comparison (numbers written where a string belongs compare as text).

    Lists and objects (Arrow list/struct columns, which Arrow cannot cast) become their ``str``.
    """
    if isinstance(values, pa.Array):
        try:
            return values.cast(pa.string())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            values = values.to_pylist()
    return pa.array([str(u) if u is not None else None for u in values], pa.string())


def _label_column(values: list) -> pa.Array:
    """A short label column (timezone) as strings, every missing marker -> null."""
    fast = fast_str(values, TEXT_MISSING_MARKERS)
    if fast is not None:
        return fast
    return pa.array([None if is_missing_text(v) or (isinstance(v, float) and v != v) else str(v)
                     for v in as_list(values)], pa.string())


def load_user_columns(path: Path) -> tuple[dict, str]:
    """Read a user file of either form: ({column: values}, "records" | "columns").

    Columns are Arrow arrays where Arrow can type them (cheap to send between processes),
    else Python lists.
    """
    name = path.name
    data = read_json(path)
    if isinstance(data, list):
        return user_columns_from_records(data, name)
    elif isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
        cols, form = _columns_from_columnar(data, name), "columns"
    else:
        raise bad_value(name, None, None, "expected a JSON array of records (7a) or a columnar object (7b)")
    return {k: _to_arrow(v) for k, v in cols.items()}, form


def user_columns_from_records(data: list, name: str) -> tuple[dict, str]:
    """``load_user_columns`` of a user file of the records form (7a) already loaded as ``data``."""
    return {k: _to_arrow(v) for k, v in _columns_from_records(data, name).items()}, "records"


def _to_arrow(values: list):
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return values


def read_user_file(path: Path, ref: dict[str, pa.Array], problems: Problems,
                   loaded: tuple[dict, str] | None = None, bounds: Bounds = Bounds()) -> dict[str, pa.Array]:
    """Parse a user file of either form into columns aligned with the category file rows.

    photo_firstdate and photo_firstdatetaken must lie in ``bounds.user_date``.
    """
    name = path.name
    cols, form = loaded if loaded is not None else load_user_columns(path)
    n = len(cols["Uid"])
    if n == len(ref["pid"]):
        if pc.count(as_arrow_safe(cols["Pid"])).as_py():
            check_same(parse_pid(cols["Pid"], name, problems), ref["pid"], name, "Pid", "category file", problems)
        if pc.count(as_arrow_safe(cols["Uid"])).as_py():
            check_same(_as_text(cols["Uid"]), ref["uid"], name, "Uid", "category file", problems)
    text_u, vec_u = parse_description(cols["user_description"], name, "user_description", problems)
    text_l, vec_l = parse_description(cols["location_description"], name, "location_description", problems)
    out = {
        "uid": ref["uid"] if n == len(ref["pid"]) else pa.nulls(n, pa.string()),
        "photo_firstdate": parse_datetime_epoch(cols["photo_firstdate"], name, "photo_firstdate", problems),
        "photo_count": parse_int(cols["photo_count"], name, "photo_count", problems),
        "ispro": parse_int(cols["ispro"], name, "ispro", problems),
        "canbuypro": parse_int(cols["canbuypro"], name, "canbuypro", problems),
        "timezone_offset": _label_column(cols["timezone_offset"]),
        "tz_offset_minutes": parse_tz_column(cols["timezone_offset"], name, "timezone_offset", problems),
        "photo_firstdatetaken": parse_datetime_epoch(cols["photo_firstdatetaken"], name, "photo_firstdatetaken", problems),
        "timezone_id": _label_column(cols["timezone_id"]),
        "user_description": text_u,
        "location_description": text_l,
        "user_form": pa.array(np.full(n, form)),
    }
    for fld in ("photo_firstdate", "photo_firstdatetaken"):
        check_dates(out[fld], cols[fld], name, fld, problems, bounds.user_date, bounds.postdate)
    # Always present (null in the 2022+ text form) so every release has one schema.
    out["user_description_vec"] = vec_u if vec_u is not None else pa.nulls(n, pa.list_(pa.float32()))
    out["location_description_vec"] = vec_l if vec_l is not None else pa.nulls(n, pa.list_(pa.float32()))
    return out
