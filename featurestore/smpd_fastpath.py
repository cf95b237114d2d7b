"""Vectorised fast paths for the SMPD value parsers (Arrow compute instead of Python loops).

Each function returns the parsed array when every value is well-formed, or ``None`` when any
value needs the careful per-value parser in ``smpd_values`` (which names the bad row). So the
fast path never changes a result; it only skips the loop on clean data. Arrow compute has a
fixed cost per call that the loop beats on a handful of values (a served request's posts), so
by default (``fast=None``) the parsers take the fast path from ``FAST_MIN_ROWS`` values on;
``fast=True`` forces it (the tests compare both paths on small inputs), ``fast=False`` skips it.
"""

from __future__ import annotations

from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

WS = " \r\n\t"
INT_PATTERN = r"^-?[0-9]{1,18}$"  # <= 18 digits: inside int64; "+5" is left to the careful parser (Arrow rejects it)
FAST_MIN_ROWS = 64
FLOAT_PATTERN = r"^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?$"


def use_fast(fast: bool | None, values) -> bool:
    """Whether a parser takes its fast path: ``fast`` when given, else from ``FAST_MIN_ROWS`` values on."""
    return fast if fast is not None else len(values) >= FAST_MIN_ROWS


def as_list(values) -> list:
    """A column as a Python list (the careful parsers loop over values one by one)."""
    return values.to_pylist() if isinstance(values, pa.Array) else values


def as_arrow(values) -> pa.Array:
    """A column as an Arrow array with the type Arrow infers (may raise for mixed types)."""
    return values if isinstance(values, pa.Array) else pa.array(values)


def as_strings(values) -> pa.Array | None:
    """The column as an Arrow string array, or None when it holds non-strings."""
    if isinstance(values, pa.Array):
        if pa.types.is_string(values.type) or pa.types.is_null(values.type):
            return values.cast(pa.string())
        return None
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None


def missing_mask(arr: pa.Array, markers: frozenset[str]) -> pa.Array:
    """True where a string is null or, stripped of whitespace, one of ``markers``."""
    hit = pc.is_in(pc.utf8_trim(arr, WS), value_set=pa.array(sorted(markers), pa.string()))
    return pc.or_(pc.is_null(arr), pc.fill_null(hit, False))


def _all(mask: pa.Array) -> bool:
    return bool(pc.all(pc.fill_null(mask, False)).as_py()) if len(mask) else True


def _numbers(values: list, markers: frozenset[str], required: bool, pattern: str) -> tuple[pa.Array, pa.Array] | None:
    """(cleaned strings with missing -> null, missing mask), or None when a value is not clean."""
    arr = as_strings(values)
    if arr is None:
        return None
    miss = missing_mask(arr, markers)
    if required and pc.any(miss).as_py():
        return None
    text = pc.if_else(miss, pa.scalar(None, pa.string()), pc.utf8_trim(arr, WS))
    ok = pc.or_(miss, pc.fill_null(pc.match_substring_regex(text, pattern), False))
    return (text, miss) if _all(ok) else None


def fast_int(values: list, markers: frozenset[str], required: bool) -> pa.Array | None:
    """int64 from digit strings, JSON ints or integral JSON floats (``1813.0``)."""
    strings = _numbers(values, markers, required, INT_PATTERN)
    if strings is not None:
        return pc.cast(strings[0], pa.int64())
    try:
        num = as_arrow(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return None
    if pa.types.is_integer(num.type) or pa.types.is_null(num.type):
        out = num.cast(pa.int64())
    elif pa.types.is_floating(num.type):
        num = pc.if_else(pc.is_nan(num), pa.scalar(None, num.type), num)
        fine = pc.and_(pc.equal(pc.floor(num), num), pc.less(pc.abs(num), 2.0**62))
        if not _all(pc.or_kleene(pc.is_null(num), fine)):
            return None
        out = num.cast(pa.int64())
    else:
        return None
    return None if required and out.null_count else out


def fast_float(values: list, markers: frozenset[str], required: bool) -> pa.Array | None:
    """float64 from decimal strings or JSON numbers; None if any value is odd or not finite."""
    strings = _numbers(values, markers, required, FLOAT_PATTERN)
    if strings is not None:
        out = pc.cast(strings[0], pa.float64())
    else:
        try:
            out = as_arrow(values).cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, pa.ArrowNotImplementedError):
            return None
        out = pc.if_else(pc.is_nan(out), pa.scalar(None, pa.float64()), out)
        if required and out.null_count:
            return None
    return out if _all(pc.or_kleene(pc.is_null(out), pc.is_finite(out))) else None


def fast_epoch(values, markers: frozenset[str]) -> pa.Array | None:
    """Epoch seconds from integer strings and/or exact ``YYYY-MM-DD HH:MM:SS`` strings (UTC)."""
    arr = as_strings(values)
    if arr is None:
        return None
    miss = missing_mask(arr, markers)
    text = pc.if_else(miss, pa.scalar(None, pa.string()), pc.utf8_trim(arr, WS))
    digits = pc.fill_null(pc.match_substring_regex(text, INT_PATTERN), False)
    stamp = pc.fill_null(pc.match_substring_regex(text, r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"), False)
    if not _all(pc.or_(miss, pc.or_(digits, stamp))):
        return None
    parsed = pc.strptime(pc.if_else(stamp, text, pa.scalar(None, pa.string())), format="%Y-%m-%d %H:%M:%S",
                         unit="s", error_is_null=True)
    if pc.sum(pc.and_(stamp, pc.is_null(parsed))).as_py():
        return None  # e.g. 2015-02-30: the careful parser names the row
    as_epoch = pc.cast(pc.cast(parsed, pa.timestamp("s")), pa.int64())
    numbers = pc.cast(pc.if_else(digits, text, pa.scalar(None, pa.string())), pa.int64())
    return pc.coalesce(numbers, as_epoch)


def fast_str(values: list, markers: frozenset[str] | None) -> pa.Array | None:
    """Strings as they are, markers (when given) -> null; None when a value is not a string."""
    arr = as_strings(values)
    if arr is None or markers is None:
        return arr
    return pc.if_else(missing_mask(arr, markers), pa.scalar(None, pa.string()), arr)


def fast_match(values: list, pattern: str) -> pa.Array | None:
    """The strings when every one matches ``pattern`` (no nulls), else None."""
    arr = as_strings(values)
    if arr is None or arr.null_count:
        return None
    return arr if _all(pc.match_substring_regex(arr, pattern)) else None


def via_unique(values: list, parse: Callable[[list], object | None]):
    """Parse each distinct value once and map back; ``parse(uniques)`` returns None to give up.

    For low-cardinality columns (timezones, descriptions, dates shared by a user's posts).
    ``parse`` returns an array or a tuple of arrays (or None entries) aligned with the uniques.
    """
    try:
        encoded = pc.dictionary_encode(as_arrow(values))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, OverflowError):
        return None
    parsed = parse(encoded.dictionary.to_pylist())
    if parsed is None:
        return None
    take = lambda a: None if a is None else a.take(encoded.indices)  # noqa: E731  null index -> null
    return tuple(take(a) for a in parsed) if isinstance(parsed, tuple) else take(parsed)
