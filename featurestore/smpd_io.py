"""Low-level readers shared by the SMPD parsers: JSON and text files, record columns, checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.smpd_layout import SMPDFormatError, bad_value
from featurestore.smpd_values import Problems


def read_json(path: Path) -> object:
    """Parse a JSON file; a syntax error names the file and the byte position."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SMPDFormatError(f"{path}: file not found") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise SMPDFormatError(f"{path.name}: broken JSON: {e}") from None


def read_lines(path: Path) -> list[str]:
    """Lines of a text file without line ends; a single trailing empty line is not a row."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def record_columns(data: object, name: str, keys: tuple[str, ...]) -> dict[str, pa.Array | list]:
    """A JSON array of objects -> {key: column}; an absent key reads as null.

    Columns are Arrow arrays when Arrow can type every key consistently (the normal case:
    built in C++), else Python lists; the value parsers accept both.
    """
    if not isinstance(data, list):
        raise bad_value(name, None, None, f"expected a JSON array of records, got {type(data).__name__}")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise bad_value(name, i, None, f"expected a JSON object, got {type(rec).__name__}")
    try:
        struct = pa.array(data) if data else None
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        struct = None
    if struct is not None and pa.types.is_struct(struct.type):
        present = {struct.type.field(i).name for i in range(struct.type.num_fields)}
        return {k: struct.field(k) if k in present else pa.nulls(len(data)) for k in keys}
    return {k: [rec.get(k) for rec in data] for k in keys}


def check_same(values: pa.Array, ref: pa.Array, name: str, fld: str, ref_name: str, problems: Problems) -> None:
    """Report rows where ``values`` differs from the reference column of the same split."""
    differ = pc.fill_null(pc.not_equal(values, ref), True)
    for i in np.flatnonzero(differ.to_numpy(zero_copy_only=False)):
        problems.add(name, int(i), fld, f"does not match {ref_name} ({ref[int(i)].as_py()!r})", values[int(i)].as_py())


def check_rows(n: int, expected: int, name: str, ref_name: str) -> None:
    if n != expected:
        raise SMPDFormatError(
            f"{name}: misaligned, {n} rows but {ref_name} has {expected}; files of a split must be row-aligned"
        )
