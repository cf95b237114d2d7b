"""The model matrix: feature tables joined on pid, and the float32 matrix in a fixed column order.

The one builder training and prediction share: ``join_features`` refuses a column that two
groups both hold, ``to_matrix`` refuses a frame whose feature columns are not exactly the
expected ones (a missing column, an extra one, or another order all name the columns).
``aligned_matrix`` is the same for tables already row for row (a served request's posts).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

KEY_COLUMNS = ("pid", "postdate")


def _add_names(names: list[str], cols: list[str], taken: list[str]) -> None:
    """Append a group's feature columns ``cols`` to ``names``; a name already there (or in ``taken``) raises."""
    clash = set(cols) & (set(names) | set(taken))
    if clash:
        raise ValueError(f"feature name(s) {sorted(clash)} appear in two feature groups")
    names += cols


def join_features(features: list[pl.DataFrame], rows: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Left-join every feature frame (pid[, postdate], features...) onto ``rows`` (pid, ...) by pid.

    Returns ``(frame in the order of rows, feature names in group order)``; a name in two groups
    raises ValueError.
    """
    frame, names = rows, []
    for f in features:
        cols = [c for c in f.columns if c not in KEY_COLUMNS]
        _add_names(names, cols, rows.columns)
        frame = frame.join(f.select("pid", *cols), on="pid", how="left", maintain_order="left")
    return frame, names


def check_columns(names: list[str], expected: list[str]) -> None:
    """``names`` must be ``expected``, in order; otherwise a ValueError naming what differs."""
    if list(names) == list(expected):
        return
    missing = [c for c in expected if c not in set(names)]
    extra = [c for c in names if c not in set(expected)]
    detail = f"missing {missing[:10]}" if missing else ""
    detail += (", " if detail and extra else "") + (f"unexpected {extra[:10]}" if extra else "")
    raise ValueError(f"feature columns differ from the model's: {detail or 'same columns in another order'}")


def to_matrix(frame: pl.DataFrame, names: list[str]) -> np.ndarray:
    """(N, F) float32 of ``names`` in that order (nulls become NaN)."""
    have = set(frame.columns)
    missing = [c for c in names if c not in have]
    if missing:
        raise ValueError(f"feature columns missing from the frame: {missing[:10]}")
    if not names:
        return np.zeros((frame.height, 0), np.float32)
    series = dict(zip(frame.columns, frame.get_columns()))
    return np.column_stack([series[c].to_numpy() for c in names]).astype(np.float32)


def aligned_matrix(tables: list[pa.Table], expected: list[str]) -> np.ndarray:
    """(N, F) float32 of feature tables that hold the same posts in the same order (equal pid
    columns; a served request's rows): ``join_features`` + ``check_columns`` + ``to_matrix``
    without a join or a frame, with the same checks and the same values (nulls become NaN)."""
    names: list[str] = []
    columns: dict[str, pa.ChunkedArray] = {}
    for t in tables:
        if not t["pid"].equals(tables[0]["pid"]):
            raise ValueError("aligned_matrix: the feature tables hold different posts or another order")
        cols = [c for c in t.column_names if c not in KEY_COLUMNS]
        _add_names(names, cols, ["pid"])
        columns |= {c: t[c] for c in cols}
    check_columns(names, expected)
    if not names:
        return np.zeros((tables[0].num_rows if tables else 0, 0), np.float32)
    return np.column_stack([columns[c].to_numpy() for c in names]).astype(np.float32)
