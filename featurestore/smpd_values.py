"""Value parsers for SMPD columns: string numbers, missing markers, Uids, timestamps.

Every parser takes a column as a Python list of raw JSON values and returns a pyarrow
array of the same length. A value that cannot be parsed is reported to a ``Problems``
collector, which either raises at once (naming file, row and field) or records the row
as rejected, depending on the ingest policy.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.smpd_fastpath import (
    as_list,
    fast_epoch,
    fast_float,
    fast_int,
    fast_match,
    fast_str,
    use_fast,
    via_unique,
)
from featurestore.smpd_layout import bad_value

# FORMAT.md §1: "None" (Pathalias), "" (Longitude), "\n" (location_description), JSON null.
MISSING_MARKERS = frozenset({"None", "", "\n", "null", "NaN", "nan"})
UID_RE = re.compile(r"^[0-9]+@N[0-9]+\Z")  # ASCII digits; \Z: no trailing newline
INT64_MAX = 2**63 - 1
DAY = 86400
EPOCH_LIMITS = (-62135596800, 253402300799)  # 0001-01-01 .. 9999-12-31: what a bound may be
TZ_RE = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2}):?(\d{2})?$")


def _plain_number_text(value: object) -> bool:
    """False for strings Python's int()/float() accept but SMPD never writes: "1_000", non-ASCII digits."""
    return not isinstance(value, str) or (value.isascii() and "_" not in value)


TEXT_MISSING_MARKERS = frozenset({"None", ""})  # after stripping whitespace: "\n" is missing too


def is_missing_text(value: object) -> bool:
    """Missing for a free-text field: null, "None" or blank. "nan"/"null" stay text (a real alias may be "nan")."""
    return value is None or (isinstance(value, str) and value.strip(" \r\n\t") in TEXT_MISSING_MARKERS)


def is_missing(value: object) -> bool:
    """True for JSON null, NaN and the SMPD missing-value strings."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip(" \r\n\t") in MISSING_MARKERS


@dataclass
class Problems:
    """Collects bad values. ``policy='error'`` raises on the first; ``'reject'`` records the row."""

    policy: str = "error"
    rows: dict[int, str] = field(default_factory=dict)  # row -> first reason
    examples: list[dict] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    max_examples: int = 100

    def add(self, file: str, row: int, fld: str, reason: str, value: object) -> None:
        if self.policy == "error":
            raise bad_value(file, row, fld, f"{reason} (value {value!r})")
        if row not in self.rows:
            self.rows[row] = reason
            self.reasons[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append({"file": file, "row": row, "field": fld, "reason": reason, "value": repr(value)[:80]})


def parse_float(values: list, file: str, fld: str, problems: Problems, *, required: bool = False,
                fast: bool | None = None) -> pa.Array:
    """Parse string/number values to float64; missing markers become null (or a problem if required)."""
    if use_fast(fast, values) and (done := fast_float(values, MISSING_MARKERS, required)) is not None:
        return done
    values = as_list(values)
    out: list[float | None] = [None] * len(values)
    for i, v in enumerate(values):
        if is_missing(v):
            if required:
                problems.add(file, i, fld, "missing value", v)
            continue
        try:
            x = float(v) if _plain_number_text(v) else None
        except (TypeError, ValueError):
            x = None
        if x is None:
            problems.add(file, i, fld, "not a number", v)
            continue
        if not math.isfinite(x):
            problems.add(file, i, fld, "not a finite number", v)
            continue
        out[i] = x
    return pa.array(out, type=pa.float64())


def parse_int(values: list, file: str, fld: str, problems: Problems, *, required: bool = False,
              fast: bool | None = None) -> pa.Array:
    """Parse integer strings or integral floats (``"1"``, ``1813.0``) to int64."""
    if use_fast(fast, values) and (done := fast_int(values, MISSING_MARKERS, required)) is not None:
        return done
    values = as_list(values)
    out: list[int | None] = [None] * len(values)
    for i, v in enumerate(values):
        if is_missing(v):
            if required:
                problems.add(file, i, fld, "missing value", v)
            continue
        try:
            x = int(v) if isinstance(v, (int, str)) and not isinstance(v, bool) and _plain_number_text(v) else None
        except ValueError:
            x = None
        if x is None and _plain_number_text(v):
            try:
                f = float(v)
                x = int(f) if f.is_integer() else None
            except (TypeError, ValueError, OverflowError):
                x = None
        if x is None:
            problems.add(file, i, fld, "not an integer", v)
            continue
        if not -INT64_MAX - 1 <= x <= INT64_MAX:
            problems.add(file, i, fld, "integer out of range", v)
            continue
        out[i] = x
    return pa.array(out, type=pa.int64())


def parse_str(values: list, file: str, fld: str, problems: Problems, *, missing_to_null: bool = True,
              fast: bool | None = None) -> pa.Array:
    """Strings as-is; missing markers become null when ``missing_to_null``. Non-strings are problems."""
    if use_fast(fast, values) and (done := fast_str(values, TEXT_MISSING_MARKERS if missing_to_null else None)) is not None:
        return done
    values = as_list(values)
    out: list[str | None] = [None] * len(values)
    for i, v in enumerate(values):
        if v is None or (missing_to_null and is_missing_text(v)):
            continue
        if not isinstance(v, str):
            problems.add(file, i, fld, "not a string", v)
            continue
        out[i] = v
    return pa.array(out, type=pa.string())


def parse_uid(values: list, file: str, problems: Problems, fast: bool | None = None) -> pa.Array:
    """Uids must match ``^\\d+@N\\d+$``."""
    if use_fast(fast, values) and (done := fast_match(values, r"^[0-9]+@N[0-9]+$")) is not None:  # RE2: $ is the end of the text
        return done
    values = as_list(values)
    for i, v in enumerate(values):
        if not isinstance(v, str) or not UID_RE.match(v):
            problems.add(file, i, "Uid", "bad Uid (expected <digits>@N<digits>)", v)
    return pa.array([v if isinstance(v, str) else None for v in values], type=pa.string())


def parse_pid(values: list, file: str, problems: Problems) -> pa.Array:
    """Pids are decimal integers, as a JSON string or number, and positive."""
    arr = parse_int(values, file, "Pid", problems, required=True)
    if arr.null_count == 0 and (len(arr) == 0 or pc.min(arr).as_py() > 0):
        return arr
    raw = as_list(values)
    for i, v in enumerate(arr.to_pylist()):
        if v is not None and v <= 0:
            problems.add(file, i, "Pid", "Pid must be positive", raw[i])
    return arr


def _hours_to_minutes(hours: float) -> int | None:
    """Minutes in ``hours``; a finite count too big for a float in minutes gives the int64 limit (out of range)."""
    if not math.isfinite(hours):
        return None
    minutes = hours * 60
    return int(round(minutes)) if math.isfinite(minutes) else (INT64_MAX if hours > 0 else -INT64_MAX)


def parse_tz_minutes(value: object) -> int | None:
    """UTC offset in minutes from ``"+01:00"``/``"-0800"``/``"UTC+5:30"`` or an hour count ``"1"``.

    None when unparsable; JSON true/false are not offsets.
    """
    if is_missing(value) or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return _hours_to_minutes(value)
    text = str(value).strip()
    m = TZ_RE.match(text)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return sign * (int(m.group(2)) * 60 + int(m.group(3) or 0))
    try:
        hours = float(text) if _plain_number_text(text) else math.nan
    except ValueError:
        return None
    return _hours_to_minutes(hours)


def _clean_uniques(parser, file: str, fld: str):
    """A ``via_unique`` parse function: the careful parser on the distinct values, None on any problem."""
    def parse(uniques: list):
        local = Problems(policy="reject")
        out = parser(uniques, file, fld, local, fast=False)
        return None if local.rows else out
    return parse


def parse_tz_column(values: list, file: str, fld: str, problems: Problems, fast: bool | None = None) -> pa.Array:
    """Timezone offsets to minutes east of UTC; an unparsable non-missing value is a problem."""
    if use_fast(fast, values) and (done := via_unique(values, _clean_uniques(parse_tz_column, file, fld))) is not None:
        return done
    values = as_list(values)
    out: list[int | None] = []
    for i, v in enumerate(values):
        m = parse_tz_minutes(v)
        if m is None and not is_missing(v):
            problems.add(file, i, fld, "unparsable UTC offset", v)
        if m is not None and abs(m) > 14 * 60:
            problems.add(file, i, fld, "UTC offset out of range", v)
            m = None
        out.append(m)
    return pa.array(out, type=pa.int32())


def parse_datetime_epoch(values: list, file: str, fld: str, problems: Problems, fast: bool | None = None) -> pa.Array:
    """Epoch seconds from an epoch number/string or a ``YYYY-MM-DD HH:MM:SS`` string (UTC)."""
    if use_fast(fast, values) and (done := fast_epoch(values, MISSING_MARKERS)) is not None:
        return done
    if use_fast(fast, values) and (done := via_unique(values, _clean_uniques(parse_datetime_epoch, file, fld))) is not None:
        return done
    values = as_list(values)
    out: list[int | None] = [None] * len(values)
    for i, v in enumerate(values):
        if is_missing(v):
            continue
        text = str(v).strip()
        try:
            f = float(text) if _plain_number_text(text) else None
        except ValueError:
            f = None
        if f is not None:
            if math.isfinite(f) and abs(f) <= INT64_MAX:
                out[i] = int(f)
            else:
                problems.add(file, i, fld, "epoch out of range", v)
            continue
        try:
            dt = datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
            out[i] = int(dt.timestamp())
        except ValueError:
            problems.add(file, i, fld, "not an epoch or YYYY-MM-DD HH:MM:SS datetime", v)
    return pa.array(out, type=pa.int64())


def parse_description(values: list, file: str, fld: str, problems: Problems,
                      fast: bool | None = None) -> tuple[pa.Array, pa.Array | None]:
    """Split a description column into (text, vector).

    The 2019/2020 user file stores a pre-computed vector of >=399 comma-separated floats
    (all zeros = no description); the 2022+ file stores raw text. Returns a string array
    (null where the value is a vector or missing) and a list<float32> array or ``None``
    when no row holds a vector.
    """
    if use_fast(fast, values) and (done := via_unique(values, _clean_uniques(parse_description, file, fld))) is not None:
        return done
    values = as_list(values)
    texts: list[str | None] = [None] * len(values)
    vecs: list[list[float] | None] = [None] * len(values)
    any_vec = False
    for i, v in enumerate(values):
        if is_missing_text(v) or (isinstance(v, float) and math.isnan(v)):  # free text: "nan" stays text
            continue
        if not isinstance(v, str):
            problems.add(file, i, fld, "not a string", v)
            continue
        parts = v.strip().rstrip(",").split(",")
        if len(parts) >= 399:
            try:
                vec = [float(p) for p in parts]
            except ValueError:
                vec = None
            if vec is not None:
                any_vec = True
                vecs[i] = vec if any(vec) else None
                continue
        texts[i] = v
    vec_arr = pa.array(vecs, type=pa.list_(pa.float32())) if any_vec else None
    return pa.array(texts, type=pa.string()), vec_arr


# --------------------------------------------------------------------------------------------
# plausible ranges (IngestConfig): a parsed value outside them is a problem like a bad value
# --------------------------------------------------------------------------------------------

def to_epoch(value: object, key: str) -> int:
    """Epoch seconds (UTC) of a bound: epoch seconds, an ISO date/datetime string, or a YAML date."""
    out = value
    if isinstance(out, str):
        text = out.strip()
        try:
            out = int(text) if text.lstrip("-").isascii() and text.lstrip("-").isdigit() else datetime.fromisoformat(text)
        except ValueError:
            pass
    if isinstance(out, date) and not isinstance(out, datetime):  # YAML reads 1990-01-01 as a date: its midnight
        out = datetime(out.year, out.month, out.day)
    if isinstance(out, datetime):
        out = int((out if out.tzinfo else out.replace(tzinfo=timezone.utc)).timestamp())
    if isinstance(out, bool) or not isinstance(out, int) or not EPOCH_LIMITS[0] <= out <= EPOCH_LIMITS[1]:
        raise ValueError(f"ingest.{key}: expected an ISO date (YYYY-MM-DD, years 1..9999) or epoch seconds, "
                         f"got {value!r}")
    return out


def iso(epoch: int) -> str:
    """``YYYY-MM-DD`` at midnight UTC, else ``YYYY-MM-DDTHH:MM:SSZ`` (for messages)."""
    dt = datetime.fromtimestamp(epoch, timezone.utc)
    return dt.strftime("%Y-%m-%d") if epoch % DAY == 0 else dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Bounds:
    """Plausible values, both ends inclusive (see README "Value bounds").

    Dates are ISO dates/datetimes (UTC) or epoch seconds. ``user_date_min`` bounds the user's
    photo_firstdate and photo_firstdatetaken (their upper bound is ``postdate_max``). The parsed
    ranges ``postdate``/``user_date`` (epoch seconds) and ``label`` are what the checks use.
    """

    postdate_min: object = field(default="1990-01-01", compare=False)
    postdate_max: object = field(default="2040-01-01", compare=False)
    user_date_min: object = field(default="1900-01-01", compare=False)
    label_min: float = field(default=0.0, compare=False)
    label_max: float = field(default=30.0, compare=False)
    postdate: tuple[int, int] = field(init=False)
    user_date: tuple[int, int] = field(init=False)
    label: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        hi = to_epoch(self.postdate_max, "postdate_max")
        for key in ("postdate_min", "user_date_min"):
            if to_epoch(getattr(self, key), key) >= hi:
                raise ValueError(f"ingest.{key} must be before postdate_max ({iso(hi)})")
        labels = []
        for key in ("label_min", "label_max"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"ingest.{key}: expected a finite number, got {v!r}")
            labels.append(float(v))
        if labels[0] >= labels[1]:
            raise ValueError(f"ingest.label_min must be below label_max, got {labels[0]} and {labels[1]}")
        object.__setattr__(self, "postdate", (to_epoch(self.postdate_min, "postdate_min"), hi))
        object.__setattr__(self, "user_date", (to_epoch(self.user_date_min, "user_date_min"), hi))
        object.__setattr__(self, "label", tuple(labels))


def _outside(arr: pa.Array, lo, hi) -> np.ndarray:
    """Row indices of non-null values outside [lo, hi]."""
    bad = pc.fill_null(pc.or_(pc.less(arr, lo), pc.greater(arr, hi)), False)
    return np.flatnonzero(bad.to_numpy(zero_copy_only=False))


def _at(values, i: int) -> object:
    return values[i].as_py() if isinstance(values, pa.Array) else values[i]


def _epoch_number(value: object) -> bool:
    """True for an epoch written as a number (not a ``YYYY-MM-DD HH:MM:SS`` string)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    try:
        float(str(value).strip())
    except ValueError:
        return False
    return True


def check_dates(arr: pa.Array, raw, file: str, fld: str, problems: Problems, bounds: tuple[int, int],
                ms_window: tuple[int, int]) -> None:
    """Report parsed epoch seconds outside ``bounds``.

    A number above the range whose value / 1000 lies in ``ms_window`` (the post-date range) is
    named as milliseconds; it is never converted.
    """
    lo, hi = bounds
    span = f"[{iso(lo)}, {iso(hi)}]"
    for i in _outside(arr, lo, hi):
        v, r = arr[int(i)].as_py(), _at(raw, int(i))
        ms = v > hi and ms_window[0] * 1000 <= v <= ms_window[1] * 1000 and _epoch_number(r)
        reason = f"looks like milliseconds (epoch seconds expected in {span})" if ms else f"out of range {span}"
        problems.add(file, int(i), fld, f"{fld.lower()} {reason}", r)


def check_range(arr: pa.Array, raw, file: str, fld: str, problems: Problems, bounds: tuple[float, float]) -> None:
    """Report parsed numbers outside ``bounds`` (both ends inclusive)."""
    lo, hi = bounds
    for i in _outside(arr, lo, hi):
        problems.add(file, int(i), fld, f"{fld.lower()} out of range [{lo:g}, {hi:g}]", _at(raw, int(i)))
