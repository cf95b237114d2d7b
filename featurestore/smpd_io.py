"""Low-level readers shared by the SMPD parsers: JSON and text files, record columns, checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.smpd_layout import SMPDFormatError, bad_value
from featurestore.smpd_values import Problems


def read_bytes(path: Path) -> bytes:
    """The bytes of an SMPD file; a missing file is an SMPDFormatError naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SMPDFormatError(f"{path}: file not found") from None


def utf8_error(data: bytes, name: str) -> SMPDFormatError | None:
    """The first byte of ``data`` that is not UTF-8, as an error naming its 1-based line and byte offset."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return SMPDFormatError(f"{name}: line {line}: invalid UTF-8 byte 0x{data[e.start]:02x} at byte offset {e.start}")
    return None


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text of a file's bytes; a bad byte raises naming the file, line and byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise utf8_error(data, name) from None


def read_json(path: Path) -> object:
    """Parse a JSON file; a syntax error names the file and the byte position, a bad byte its line and offset."""
    data = read_bytes(path)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        # orjson reports any invalid UTF-8 at "char 0": find the byte ourselves (only on this error path)
        raise utf8_error(data, path.name) or SMPDFormatError(f"{path.name}: broken JSON: {e}") from None


def read_lines(path: Path) -> list[str]:
    """Lines of a text file without line ends; a single trailing empty line is not a row.

    Line ends as in Python's text mode: ``\n``, ``\r\n`` and a lone ``\r``.
    """
    text = decode_text(read_bytes(path), path.name).replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


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
