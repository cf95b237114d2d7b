"""Atomic file writes: a reader (or a run interrupted by Ctrl-C) never sees a half-written file.

Every writer writes a temporary file in the target's own directory, then ``os.replace`` renames it
over the target (atomic on POSIX within one file system). On any exception, KeyboardInterrupt
included, the temporary file is removed and the old target, if any, is left as it was.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TMP_SUFFIX = ".tmp"


def temp_path(path: Path) -> Path:
    """A fresh hidden name beside ``path``: ``.<name>.<random>.tmp`` (never matched by ``*.parquet`` globs)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")


@contextmanager
def atomic_write(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    ``with atomic_write(out) as tmp: pq.write_table(table, tmp)`` works with any writer that takes
    a path (Parquet, CSV, joblib, LightGBM's ``save_model``, ``Path.write_text``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
