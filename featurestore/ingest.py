"""SMPD ingest: official files (either release) -> typed Arrow tables + an ingest report.

Files of a split are row-aligned (FORMAT.md §1): row *i* of every file is the same post.
We join by position, and wherever a file carries Pid/Uid (record files, the columnar user
file, path-form image lists) we check that they agree with ``*_category.json``.

Policy for bad rows (``IngestConfig.on_bad_row``):
* ``"error"`` (default): the first bad value raises ``SMPDFormatError`` naming file, row, field;
* ``"reject"``: the row is dropped from every table of its split and counted in the report
  with its reason. Structural problems (missing file, broken JSON, row counts that differ)
  always raise: there is no row to reject.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.atomic import atomic_write
from featurestore.smpd_crawled import empty_crawled_table, locate_crawled, read_crawled
from featurestore.smpd_layout import SplitFiles, SMPDFormatError, locate_smpd
from featurestore.smpd_io import check_rows, check_same, read_json, read_lines, record_columns
from featurestore.smpd_users import _as_text, load_user_columns, read_user_file
from featurestore.smpd_values import (
    UID_RE, Bounds, Problems, check_dates, check_range, parse_float, parse_int, parse_pid, parse_str, parse_uid,
)

log = logging.getLogger(__name__)
PARALLEL_MIN_BYTES = 32 << 20  # below this, starting worker processes costs more than it saves
TABLES = ("posts", "labels", "categories", "text", "temporal", "additional", "users", "images")
PER_POST = tuple(t for t in TABLES if t != "labels")  # one row per kept post each
OUTPUT_TABLES = (*TABLES, "crawled_users")  # + one row per crawled Pathalias (FORMAT.md 10; empty without the file)


@dataclass(frozen=True)
class IngestConfig:
    """Ingest options. ``image_root``: where image paths are resolved (default: the SMPD dir)."""

    on_bad_row: str = "error"
    check_images: bool = True
    image_root: str | None = None
    workers: int = 2  # processes reading the JSON files in parallel (1: in this process)
    # plausible values, inclusive (smpd_values.Bounds): dates as ISO date (UTC) or epoch seconds
    postdate_min: str | int = Bounds.postdate_min
    postdate_max: str | int = Bounds.postdate_max
    user_date_min: str | int = Bounds.user_date_min  # photo_firstdate, photo_firstdatetaken
    label_min: float = Bounds.label_min
    label_max: float = Bounds.label_max

    def __post_init__(self) -> None:
        if self.on_bad_row not in ("error", "reject"):
            raise ValueError(f"ingest.on_bad_row must be 'error' or 'reject', got {self.on_bad_row!r}")
        self.bounds()  # a bad bound is an error now, not at the first file

    def bounds(self) -> Bounds:
        return Bounds(postdate_min=self.postdate_min, postdate_max=self.postdate_max, user_date_min=self.user_date_min,
                      label_min=self.label_min, label_max=self.label_max)


def parse_image_list(lines: list[str], name: str, pid: pa.Array, uid: pa.Array, split: str,
                     problems: Problems) -> dict[str, pa.Array]:
    """Image list as paths ``<split>/<Uid>/<Pid>.jpg`` (checked against Pid/Uid) or Flickr URLs."""
    entries = pc.utf8_trim_whitespace(pa.array(lines, pa.string()))
    is_url = pc.fill_null(pc.starts_with(entries, "http://"), False)
    is_url = pc.or_(is_url, pc.fill_null(pc.starts_with(entries, "https://"), False))
    n = len(lines)
    expected = pc.binary_join_element_wise(pa.array([split] * n, pa.string()), uid, pc.cast(pid, pa.string()), "/")
    expected = pc.binary_join_element_wise(expected, pa.array([".jpg"] * n, pa.string()), "")
    # the usual case is checked at C speed; other spellings (another folder or extension) row by row
    unusual = pc.invert(pc.or_(is_url, pc.fill_null(pc.equal(entries, expected), False)))
    for i in np.flatnonzero(unusual.to_numpy(zero_copy_only=False)):
        entry, u, p = lines[i].strip(), uid[int(i)].as_py(), pid[int(i)].as_py()
        parts = entry.split("/")
        if entry and image_path("", entry) is None:  # "../../x/<Uid>/<Pid>.jpg", "/x/<Uid>/<Pid>.jpg": read outside
            problems.add(name, int(i), "path", "outside the image root (absolute or '..' past it)", entry)
        elif len(parts) < 2 or parts[-2] != u or parts[-1].rsplit(".", 1)[0] != str(p):
            problems.add(name, int(i), "path", f"does not match Uid/Pid {u}/{p}", entry)
    paths = pc.if_else(is_url, expected, entries)  # URL rows: where the image archives unpack
    return {"path": paths, "url": pc.if_else(is_url, entries, pa.scalar(None, pa.string()))}


RECORD_KEYS = {"category": ("Pid", "Uid", "Category", "Subcategory", "Concept"),
               "text": ("Pid", "Uid", "Title", "Alltags", "Mediatype"),
               "temporal": ("Pid", "Uid", "Postdate", "Latitude", "Longitude", "Geoaccuracy"),
               "additional": ("Pid", "Uid", "Pathalias", "Ispublic", "Mediastatus")}


def load_file(path: Path, kind: str):
    """Read one JSON file into columns (runs in a worker process when ingest has workers)."""
    if kind == "user":
        return load_user_columns(path)
    return record_columns(read_json(path), path.name, RECORD_KEYS[kind])


def _category(files: SplitFiles, problems: Problems, raw: dict) -> dict[str, pa.Array]:
    name = files["category"].name
    cols = raw["category"]
    return {
        "pid": parse_pid(cols["Pid"], name, problems),
        "uid": parse_uid(cols["Uid"], name, problems),
        "category": parse_str(cols["Category"], name, "Category", problems),
        "subcategory": parse_str(cols["Subcategory"], name, "Subcategory", problems),
        "concept": parse_str(cols["Concept"], name, "Concept", problems),
    }


def _keyed_file(files: SplitFiles, kind: str, raw: dict, ref: dict, problems: Problems) -> tuple[str, dict]:
    """A loaded record file: check its length and its Pid/Uid against the category file."""
    path = files[kind]
    cols = raw[kind]
    check_rows(len(cols["Pid"]), len(ref["pid"]), path.name, files["category"].name)
    check_same(parse_pid(cols["Pid"], path.name, problems), ref["pid"], path.name, "Pid", files["category"].name, problems)
    check_same(_as_text(cols["Uid"]), ref["uid"],
               path.name, "Uid", files["category"].name, problems)
    return path.name, cols


def parse_split(files: SplitFiles, problems: Problems, raw: dict | None = None,
                bounds: Bounds = Bounds()) -> dict[str, dict[str, pa.Array]]:
    """Parse all files of one split into column dicts keyed by table name (rows not yet filtered).

    ``raw``: kind -> columns already loaded by ``load_file`` (loaded here when absent); it may hold
    ``image_list``'s lines too (else the file is read).
    ``bounds``: plausible post dates, user dates and labels; a value outside is a problem.
    """
    raw = raw if raw is not None else {k: load_file(files[k], k) for k in (*RECORD_KEYS, "user")}
    ref = _category(files, problems, raw)
    n = len(ref["pid"])
    name, t = _keyed_file(files, "text", raw, ref, problems)
    text = {"title": parse_str(t["Title"], name, "Title", problems, missing_to_null=False),
            "alltags": parse_str(t["Alltags"], name, "Alltags", problems, missing_to_null=False),
            "mediatype": parse_str(t["Mediatype"], name, "Mediatype", problems)}
    name, s = _keyed_file(files, "temporal", raw, ref, problems)
    temporal = {"postdate": parse_int(s["Postdate"], name, "Postdate", problems, required=True),
                "latitude": parse_float(s["Latitude"], name, "Latitude", problems),
                "longitude": parse_float(s["Longitude"], name, "Longitude", problems),
                "geoaccuracy": parse_int(s["Geoaccuracy"], name, "Geoaccuracy", problems)}
    check_dates(temporal["postdate"], s["Postdate"], name, "Postdate", problems, bounds.postdate, bounds.postdate)
    has_geo = pc.and_(pc.fill_null(pc.greater(temporal["geoaccuracy"], 0), False), pc.is_valid(temporal["longitude"]))
    temporal["latitude"] = pc.if_else(has_geo, temporal["latitude"], None)
    temporal["longitude"] = pc.if_else(has_geo, temporal["longitude"], None)
    temporal["has_geo"] = has_geo
    name, a = _keyed_file(files, "additional", raw, ref, problems)
    additional = {"pathalias": parse_str(a["Pathalias"], name, "Pathalias", problems),
                  "ispublic": parse_int(a["Ispublic"], name, "Ispublic", problems),
                  "mediastatus": parse_str(a["Mediastatus"], name, "Mediastatus", problems)}
    users = read_user_file(files["user"], ref, problems, loaded=raw["user"], bounds=bounds)
    check_rows(len(users["uid"]), n, files["user"].name, files["category"].name)
    lines = raw["image_list"] if "image_list" in raw else read_lines(files["image_list"])
    check_rows(len(lines), n, files["image_list"].name, files["category"].name)
    images = parse_image_list(lines, files["image_list"].name, ref["pid"], ref["uid"], files.split, problems)
    out = {"categories": {"pid": ref["pid"], **{k: ref[k] for k in ("category", "subcategory", "concept")}},
           "text": text, "temporal": temporal, "additional": additional, "users": users, "images": images,
           "posts": {"pid": ref["pid"], "uid": ref["uid"], "postdate": temporal["postdate"]}}
    if "label" in files.paths:
        labels = read_lines(files["label"])
        check_rows(len(labels), n, files["label"].name, files["category"].name)
        first = [ln.strip().split(" ")[0] for ln in labels]  # allow trailing whitespace / extra fields
        out["labels"] = {"label": parse_float(first, files["label"].name, "label", problems, required=True)}
        check_range(out["labels"]["label"], first, files["label"].name, "label", problems, bounds.label)
    return out


def flag_duplicates(pid: pa.Array, name: str, problems: Problems, seen: set[int]) -> None:
    """Report a Pid seen earlier in this split or in an earlier split; the first occurrence is kept."""
    values = pid.to_numpy(zero_copy_only=False)
    _, first = np.unique(values, return_index=True)
    dup = np.ones(len(values), dtype=bool)
    dup[first] = False
    dup |= np.isin(values, np.fromiter(seen, dtype=np.int64, count=len(seen)))
    for i in np.flatnonzero(dup):
        problems.add(name, int(i), "Pid", "duplicate Pid", int(values[i]))


def load_all(located: dict[str, SplitFiles], workers: int) -> dict[str, dict]:
    """Load every JSON file of every split: split -> kind -> columns, with ``workers`` processes.

    Parsing JSON is CPU-bound and holds the GIL, so files are read in separate processes and
    come back as Arrow arrays (cheap to pickle). The biggest files are submitted first.
    """
    jobs = [(split, kind, files[kind]) for split, files in located.items() for kind in (*RECORD_KEYS, "user")]
    jobs.sort(key=lambda j: -j[2].stat().st_size)
    out: dict[str, dict] = {split: {} for split in located}
    if workers <= 1 or sum(j[2].stat().st_size for j in jobs) < PARALLEL_MIN_BYTES:
        for split, kind, path in jobs:
            out[split][kind] = load_file(path, kind)
        return out
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {(split, kind): pool.submit(load_file, path, kind) for split, kind, path in jobs}
        for (split, kind), fut in futures.items():
            out[split][kind] = fut.result()
    return out


def _kept_mask(n: int, problems: Problems) -> np.ndarray:
    keep = np.ones(n, dtype=bool)
    if problems.rows:
        keep[np.fromiter(problems.rows, dtype=np.int64)] = False
    return keep


def rejected_rows(category: dict, problems: Problems) -> list[dict]:
    """Each rejected row of a split: 0-based file row, first reason, and the Pid and Uid as the
    category file (the split's reference) gives them; ``None`` where that value does not parse.

    Lets later stages account for rejected posts by Pid (a rejected test post still needs a
    submission score); a row whose Pid does not parse is known by its row number only.
    ``file``/``field``: where the row's first problem was seen (None past the examples' cap).
    """
    first: dict[int, dict] = {}
    for e in problems.examples:
        first.setdefault(e["row"], e)
    rows = sorted(problems.rows)
    at = lambda col, i: col[i].as_py() if isinstance(col, pa.Array) else col[i]  # noqa: E731
    bad_pid = Problems(policy="reject")
    pids = parse_pid([at(category["Pid"], r) for r in rows], "", bad_pid).to_pylist()
    out = []
    for j, row in enumerate(rows):
        uid, where = at(category["Uid"], row), first.get(row, {})
        out.append({"row": row, "pid": None if j in bad_pid.rows else pids[j],
                    "uid": uid if isinstance(uid, str) and UID_RE.match(uid) else None,
                    "reason": problems.rows[row], "file": where.get("file"), "field": where.get("field")})
    return out


def image_path(root: str, entry: str | None) -> str | None:
    """``root/entry`` for an image-list path that stays inside ``root``; None for a null, empty,
    absolute or escaping (``..`` past the root) entry, which must never be opened.

    The check is lexical and the normalised path is what is returned (so ``a/../b`` opens
    ``root/b``, not a symlinked ``a``'s parent); symlinks the data owner placed inside the root
    are followed, so an image folder may be a link to another disk.
    """
    if not entry or "\x00" in entry or os.path.isabs(entry):
        return None
    norm = os.path.normpath(entry)
    if norm == os.pardir or norm.startswith(os.pardir + os.sep):
        return None
    return os.path.join(root, norm)


def _image_exists(paths: pa.Array, root: Path) -> pa.Array:
    base = str(root)
    return pa.array([(f := image_path(base, p)) is not None and os.path.isfile(f) for p in paths.to_pylist()],
                    pa.bool_())


def split_tables(files: SplitFiles, problems: Problems, raw: dict | None, seen: set[int],
                 bounds: Bounds = Bounds()) -> tuple[dict[str, pa.Table], np.ndarray]:
    """The tables of one split (bad rows dropped under the reject policy) and the kept-row mask.

    ``seen``: Pids of earlier splits (a repeat is a duplicate); updated with this split's Pids.
    """
    cols = parse_split(files, problems, raw, bounds)
    flag_duplicates(pc.fill_null(cols["posts"]["pid"], -1), files["category"].name, problems, seen)
    n = len(cols["posts"]["pid"])
    keep = _kept_mask(n, problems)
    seen.update(cols["posts"]["pid"].to_numpy(zero_copy_only=False)[keep].astype(np.int64).tolist())
    cols["posts"].update(split=pa.array(np.full(n, files.split)), row=pa.array(np.arange(n, dtype=np.int32)),
                         labelled=pa.array(np.full(n, "labels" in cols)))
    mask = pa.array(keep)
    tables = {name: pa.table(c if "pid" in c else {"pid": cols["posts"]["pid"], **c}).filter(mask)
              for name, c in cols.items()}
    return tables, keep


def ingest_smpd(smpd_dir: Path, config: IngestConfig = IngestConfig()) -> tuple[dict[str, pa.Table], dict]:
    """Parse an SMPD directory into tables (sorted by pid) and a report that accounts for every row.

    Returns ``(tables, report)``; ``tables`` has the keys in ``OUTPUT_TABLES``.
    """
    smpd_dir = Path(smpd_dir)
    located = locate_smpd(smpd_dir)
    raw = load_all(located, config.workers)
    parts: dict[str, list[pa.Table]] = {t: [] for t in TABLES}
    report: dict = {"smpd_dir": str(smpd_dir), "policy": config.on_bad_row, "files": {}, "splits": {}, "rejections": []}
    seen: set[int] = set()
    for split, files in located.items():
        problems = Problems(policy=config.on_bad_row)
        split_parts, keep = split_tables(files, problems, raw[split], seen, config.bounds())
        for table, t in split_parts.items():
            parts[table].append(t)
        n, kept = len(keep), int(keep.sum())
        for path in files.paths.values():
            report["files"][path.name] = {"split": split, "path": str(path.relative_to(smpd_dir)),
                                          "rows_read": n, "rows_kept": kept, "rows_rejected": n - kept}
        user_form = split_parts["users"]["user_form"][0].as_py() if kept else None
        report["splits"][split] = {"release": files.release, "user_form": user_form,
                                   "rows_read": n, "rows_kept": kept, "rows_rejected": n - kept,
                                   "rejected_by_reason": dict(sorted(problems.reasons.items())),
                                   "rejected_rows": rejected_rows(raw[split]["category"], problems)}
        report["rejections"] += [dict(e, split=split) for e in problems.examples]
    tables = {t: pa.concat_tables(p, promote_options="default").sort_by("pid") for t, p in parts.items() if p}
    if "labels" not in tables or tables["labels"].num_rows == 0:
        raise SMPDFormatError(f"{smpd_dir}: no labelled posts")
    root = Path(config.image_root) if config.image_root else smpd_dir
    exists = _image_exists(tables["images"]["path"], root) if config.check_images else pa.nulls(tables["images"].num_rows, pa.bool_())
    tables["images"] = tables["images"].append_column("exists", exists)
    _finish_report(report, tables, config)
    tables["crawled_users"], report["crawled_users"] = ingest_crawled(smpd_dir, config, report["rejections"])
    return tables, report


def ingest_crawled(smpd_dir: Path, config: IngestConfig, rejections: list[dict]) -> tuple[pa.Table, dict]:
    """The optional crawled user statistics (one row per Pathalias) and their own row accounting."""
    path = locate_crawled(smpd_dir)
    if path is None:
        return empty_crawled_table(), {"file": None, "rows_read": 0, "rows_kept": 0}
    problems = Problems(policy=config.on_bad_row)
    table, report = read_crawled(path, problems, smpd_dir)
    rejections += [dict(e, split="crawled_users") for e in problems.examples]
    return table, report


def _finish_report(report: dict, tables: dict[str, pa.Table], config: IngestConfig) -> None:
    """Totals and the invariant: rows read = rows kept + rows rejected, kept = rows in every table."""
    splits = report["splits"].values()
    report["posts_read"] = sum(s["rows_read"] for s in splits)
    report["posts_kept"] = sum(s["rows_kept"] for s in splits)
    report["posts_rejected"] = sum(s["rows_rejected"] for s in splits)
    report["tables"] = {name: t.num_rows for name, t in tables.items()}
    ex = tables["images"]["exists"]
    present = int(pc.sum(ex).as_py() or 0) if config.check_images else None
    report["images"] = {"listed": tables["images"].num_rows, "checked": config.check_images, "present": present,
                        "missing": None if present is None else tables["images"].num_rows - present}
    bad = {k: v for k, v in report["tables"].items() if k in PER_POST and v != report["posts_kept"]}
    assert not bad and report["posts_read"] == report["posts_kept"] + report["posts_rejected"], report


def write_tables(tables: dict[str, pa.Table], out_dir: Path) -> dict[str, Path]:
    """Write each table as ``<out_dir>/<name>.parquet`` (zstd, deterministic bytes)."""
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, table in tables.items():
        path = out_dir / f"{name}.parquet"
        with atomic_write(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        written[name] = path
    return written
