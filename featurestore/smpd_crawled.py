"""The unofficial crawled user statistics (``FORMAT.md`` §10): ``user_additional.{txt,csv}``.

Two forms are accepted, told apart by the first line:

* HyFea's ``user_additional.csv``: a header ``Pathalias,totalViews,...,followingCount``, comma
  separated;
* PPCL's ``user_additional.txt``: no header, tab separated, the same nine columns.

Rules, each counted in the report (``rows_read = rows_kept + sum(dropped.values())``):

* one row per Pathalias; a repeated alias keeps its first row (``dropped["duplicate_alias"]``);
* the literal ``None`` alias row and an empty alias carry no user (``dropped["no_alias"]``);
* an all-zero row marks a failed crawl: kept with ``crawl_failed = true`` and null statistics,
  so a failed crawl is never read as a user with zero views;
* a statistic that is not a non-negative integer (int64) is a bad value: ``on_bad_row = error`` stops
  with the file, row (0-based line) and field; ``reject`` drops the row (``dropped["bad_value"]``).

The statistics are a snapshot crawled after the posts were published (they are not point in
time). They contain no label of this data set, but ``totalViews``/``totalFaves`` include the
activity the posts themselves received; the feature group that reads them is opt-in per model
(``feature_groups`` in params.yaml).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from featurestore.smpd_io import decode_text, read_bytes
from featurestore.smpd_layout import SMPDFormatError, bad_value, candidate_files
from featurestore.smpd_values import INT64_MAX, Problems

STAT_COLUMNS = ("totalViews", "totalTags", "totalGeotagged", "totalFaves", "totalInGroup", "photoCount",
                "followerCount", "followingCount")
HEADER = ("Pathalias", *STAT_COLUMNS)
FILE_NAMES = ("user_additional.txt", "user_additional.csv")
TABLE_COLUMNS = {"pathalias": pa.string(), **{c: pa.int64() for c in STAT_COLUMNS}, "crawl_failed": pa.bool_()}
NO_ALIAS = frozenset({"None", ""})


def empty_crawled_table() -> pa.Table:
    """The ``crawled_users`` schema with no rows (no crawled file in the SMPD directory)."""
    return pa.table({c: pa.array([], t) for c, t in TABLE_COLUMNS.items()})


def locate_crawled(root: Path) -> Path | None:
    """The crawled-statistics file in an SMPD directory (same search as the SMPD files), or None.

    Two candidates (say a .txt and a .csv) are an error: which crawl to use is the user's choice.
    """
    found = candidate_files(Path(root))
    hits = [p for name in FILE_NAMES for p in found.get(name, [])]
    if len(hits) > 1:
        raise SMPDFormatError(f"ambiguous crawled user statistics, found {[str(h) for h in hits]}")
    return hits[0] if hits else None


def _split_line(line: str, sep: str) -> list[str]:
    return [f.strip() for f in line.rstrip("\r\n").split(sep)]


def _stat(text: str) -> int | None:
    """A non-negative integer statistic (int64), or None when the text is not one."""
    value = int(text) if text.isascii() and text.isdigit() else None
    return value if value is not None and value <= INT64_MAX else None


def parse_crawled_lines(lines: list[str], name: str, problems: Problems) -> tuple[pa.Table, dict]:
    """``(crawled_users table, report)`` from the lines of a crawled-statistics file.

    Rows are 0-based line numbers of the file (the header, when present, is line 0).
    """
    first = _split_line(lines[0], ",") if lines else []
    header = tuple(first) == HEADER
    sep = "," if header else "\t"
    cols: dict[str, list] = {c: [] for c in TABLE_COLUMNS}
    dropped = {"no_alias": 0, "duplicate_alias": 0, "bad_value": 0, "blank_line": 0}
    seen: set[str] = set()
    failed = 0
    start = 1 if header else 0
    for row in range(start, len(lines)):
        line = lines[row]
        if not line.strip():
            dropped["blank_line"] += 1
            continue
        fields = _split_line(line, sep)
        if len(fields) != len(HEADER):
            raise bad_value(name, row, None, f"expected {len(HEADER)} {'comma' if header else 'tab'}-separated "
                                             f"fields ({', '.join(HEADER)}), found {len(fields)}")
        alias, raw = fields[0], fields[1:]
        values = [_stat(v) for v in raw]
        bad = [(c, v) for c, v, x in zip(STAT_COLUMNS, raw, values) if x is None]
        if bad:
            problems.add(name, row, bad[0][0], "not a non-negative integer", bad[0][1])
            dropped["bad_value"] += 1
            continue
        if alias in NO_ALIAS:
            dropped["no_alias"] += 1
            continue
        if alias in seen:
            dropped["duplicate_alias"] += 1
            continue
        seen.add(alias)
        is_failed = not any(values)
        failed += is_failed
        cols["pathalias"].append(alias)
        for c, x in zip(STAT_COLUMNS, values):
            cols[c].append(None if is_failed else x)
        cols["crawl_failed"].append(is_failed)
    table = pa.table({c: pa.array(v, TABLE_COLUMNS[c]) for c, v in cols.items()}).sort_by("pathalias")
    n_read = len(lines) - start
    report = {"file": name, "form": "csv with header" if header else "tsv without header", "rows_read": n_read,
              "rows_kept": table.num_rows, "failed_crawls": failed, "dropped": dropped}
    assert n_read == table.num_rows + sum(dropped.values()), report
    return table, report


def read_crawled(path: Path, problems: Problems, root: Path | None = None) -> tuple[pa.Table, dict]:
    """Parse a crawled-statistics file; the report names it relative to ``root`` when given."""
    name = str(path.relative_to(root)) if root is not None else path.name
    lines = decode_text(read_bytes(path), name).splitlines()
    table, report = parse_crawled_lines(lines, name, problems)
    return table, report
