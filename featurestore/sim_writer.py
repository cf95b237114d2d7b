"""Byte-exact writers for the 2022+ SMPD release format (FORMAT.md), fast enough for 486k posts.

* record files (category, text, temporal-spatial, additional): one line, a single JSON array
  of objects whose values are all strings, ``json.dumps`` default separators, ASCII, no
  trailing newline; keys in the real file order (RECORD_KEYS);
* user file: the 7b columnar form as ``pandas.DataFrame.to_json()`` writes it (orient
  "columns", compact separators, ``/`` escaped as ``\\/``, stringified 0-based row keys,
  integral floats as ``1813.0``, missing as ``null``);
* label file: one ``%.2f`` float per line; image list: one relative path per line; both
  with a trailing newline;
* ``user_additional.txt``: the unofficial crawled user statistics (FORMAT.md §10, PPCL
  form): tab-separated, no header, ``Pathalias`` then 8 integers.

Strings are escaped with the json module's own C encoder, so the output equals
``json.dumps(records)`` byte for byte (tests check this) while skipping dict building.
"""

from __future__ import annotations

from json.encoder import encode_basestring_ascii as _enc
from pathlib import Path
from typing import Sequence

import numpy as np

RECORD_KEYS: dict[str, tuple[str, ...]] = {
    "category": ("Category", "Concept", "Pid", "Uid", "Subcategory"),
    "text": ("Alltags", "Pid", "Uid", "Mediatype", "Title"),
    "temporalspatial_information": ("Postdate", "Uid", "Pid", "Longitude", "Geoaccuracy", "Latitude"),
    "additional_information": ("Mediastatus", "Pathalias", "Ispublic", "Pid", "Uid"),
}
USER_COLUMNS = ("Uid", "Pid", "photo_firstdate", "photo_count", "ispro", "timezone_offset", "photo_firstdatetaken",
                "timezone_id", "user_description", "location_description")


def encode_strings(values: Sequence[str]) -> list[str]:
    """JSON string literals (ASCII, quoted) for a sequence of str."""
    return list(map(_enc, values))


def encode_vocab(vocab: Sequence[str], index: np.ndarray) -> list[str]:
    """JSON literals of ``vocab[index[i]]``, encoding each distinct vocabulary entry once."""
    enc = encode_strings(vocab)
    return [enc[i] for i in np.asarray(index).tolist()]


def records_json(keys: Sequence[str], columns: dict[str, list[str]]) -> str:
    """``json.dumps(list_of_records)`` from pre-encoded JSON literal columns (key -> (N,) literals)."""
    template = "{{" + ", ".join(f"{_enc(k)}: {{}}" for k in keys) + "}}"
    rows = map(template.format, *(columns[k] for k in keys))
    return "[" + ", ".join(rows) + "]"


def write_record_file(path: Path, keys: Sequence[str], columns: dict[str, list[str]]) -> None:
    """One-line JSON array file with no trailing newline (FORMAT.md §1)."""
    path.write_text(records_json(keys, columns), encoding="ascii")


def pandas_string(value: str | None) -> str:
    """A string (or null) literal as pandas ``to_json`` writes it: ASCII, ``/`` escaped."""
    return "null" if value is None else _enc(value).replace("/", "\\/")


def pandas_float(value: float | None) -> str:
    """An integral float (or null) as pandas ``to_json`` writes it: ``1813.0``."""
    if value is None or value != value:
        return "null"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value)}.0"
    return repr(float(value))


def columnar_json(columns: dict[str, list[str]], order: Sequence[str]) -> str:
    """Pandas "columns" orientation from pre-encoded literal columns (name -> (N,) literals)."""
    n = len(columns[order[0]])
    keys = [f'"{i}":' for i in range(n)]
    parts = []
    for name in order:
        body = ",".join(map(str.__add__, keys, columns[name]))
        parts.append(f"{_enc(name)}:{{{body}}}")
    return "{" + ",".join(parts) + "}"


def write_user_file(path: Path, columns: dict[str, list[str]]) -> None:
    """The 7b columnar ``*_user_data.json`` (no trailing newline, as pandas writes it)."""
    path.write_text(columnar_json(columns, USER_COLUMNS), encoding="ascii")


def write_lines(path: Path, lines: Sequence[str]) -> None:
    """Text file, one entry per line, ``\\n`` endings, trailing newline (empty file for no lines)."""
    path.write_text("".join(f"{x}\n" for x in lines), encoding="ascii")


def write_labels(path: Path, labels: np.ndarray) -> None:
    """``train_label.txt``: one ``%.2f`` popularity score per line."""
    write_lines(path, [f"{x:.2f}" for x in np.asarray(labels, dtype=np.float64).tolist()])


def write_crawled_stats(path: Path, aliases: Sequence[str], stats: np.ndarray) -> None:
    """``user_additional.txt``: ``alias\\t8 ints`` per user (rows in the given order)."""
    lines = ["\t".join([a] + [str(v) for v in row]) for a, row in zip(aliases, np.asarray(stats).tolist())]
    write_lines(path, lines)
