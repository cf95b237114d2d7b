"""The stored posts' rows held in memory, grouped by user: what a new post's point-in-time features
read without scanning the store.

A new post's SQL feature rows depend only on its own records, the rows of its user's stored posts
(the user windows of ``features_user``, ``features_temporal``, ``features_history``), the crawled
row of its Pathalias and small fitted relations (``featurestore.sql_online``). ``StoredRows``
loads the per-post tables once, orders each by (user, pid) and keeps one offset array per table,
so ``of_users`` is a handful of zero-copy slices: its cost grows with the users' post counts,
not with the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# the tables keyed by pid that a post's features may read (labels: labelled posts only)
USER_TABLES = ("posts", "users", "additional", "categories", "text", "temporal", "images", "split", "labels")


@dataclass(frozen=True)
class _ByUser:
    table: pa.Table      # rows ordered by (user code, pid)
    starts: np.ndarray   # (U + 1,) int64: user code u's rows are [starts[u], starts[u + 1])
    pids: np.ndarray     # (rows,) int64: the table's pid column

    def rows_of(self, code: int, exclude: np.ndarray | None) -> list[pa.Table]:
        """User ``code``'s rows as zero-copy slices, without the pids in ``exclude``."""
        s, e = int(self.starts[code]), int(self.starts[code + 1])
        cut = s + np.flatnonzero(np.isin(self.pids[s:e], exclude)) if exclude is not None else ()
        bounds = [s, *(b for c in cut for b in (c, c + 1)), e]  # the rows between excluded ones
        return [self.table.slice(a, b - a) for a, b in zip(bounds[::2], bounds[1::2]) if b > a]


class StoredRows:
    """Per-pid tables of a run (``USER_TABLES``) and ``crawled_users``, indexed by user once."""

    def __init__(self, tables: dict[str, pa.Table], crawled: pa.Table | None = None) -> None:
        posts = tables["posts"]
        uids = posts["uid"].to_numpy(zero_copy_only=False).astype(object)
        uids = np.where(pc.is_null(posts["uid"]).to_numpy(zero_copy_only=False), "", uids).astype(str)
        self.users, code = np.unique(uids, return_inverse=True)  # (U,) sorted uids; (N,) each post's code
        pid = posts["pid"].to_numpy()
        by_pid = np.argsort(pid, kind="stable")
        self.pids_sorted, self._code_of_sorted = pid[by_pid], code[by_pid]
        self._by_user = {name: self._group(t) for name, t in tables.items()}
        self.max_pid = int(pid.max()) if len(pid) else 0
        self.crawled = crawled
        if crawled is not None and crawled.num_rows:
            alias = crawled["pathalias"].to_pylist()
            self._crawled_row = {a: i for i, a in enumerate(alias) if a is not None}
        else:
            self._crawled_row = {}

    @classmethod
    def load(cls, paths) -> StoredRows:
        """The run's stored tables under ``paths.root`` (``featurestore.paths.Paths``)."""
        tables = {name: pq.read_table(paths.table(name)) for name in USER_TABLES}
        crawled = paths.table("crawled_users")
        return cls(tables, pq.read_table(crawled) if crawled.is_file() else None)

    def _codes(self, pids: np.ndarray) -> np.ndarray:
        """User code of each pid (every pid must be a stored post's)."""
        at = np.searchsorted(self.pids_sorted, pids)
        if len(pids) and (at.max() >= len(self.pids_sorted) or (self.pids_sorted[at] != pids).any()):
            raise ValueError("stored tables: a pid without a row in posts")
        return self._code_of_sorted[at]

    def _group(self, table: pa.Table) -> _ByUser:
        code = self._codes(table["pid"].to_numpy())
        order = np.lexsort((table["pid"].to_numpy(), code))
        starts = np.searchsorted(code[order], np.arange(len(self.users) + 1))
        table = table.take(pa.array(order))
        return _ByUser(table, starts.astype(np.int64), table["pid"].to_numpy())

    def of_users(self, uids: list[str], exclude_pids: np.ndarray | None = None) -> dict[str, pa.Table]:
        """Each table's rows of the stored posts of ``uids`` (unknown uids: none), without ``exclude_pids``."""
        at = np.searchsorted(self.users, np.asarray(sorted(set(uids)), dtype=str))
        known = [int(a) for a, u in zip(at, sorted(set(uids))) if a < len(self.users) and self.users[a] == u]
        exclude = None
        if exclude_pids is not None and len(exclude_pids):  # only stored pids can be excluded: a new post's is not
            stored = np.asarray(exclude_pids, np.int64)
            at = np.minimum(np.searchsorted(self.pids_sorted, stored), max(len(self.pids_sorted) - 1, 0))
            stored = np.unique(stored[self.pids_sorted[at] == stored]) if len(self.pids_sorted) else stored[:0]
            exclude = stored if len(stored) else None
        out = {}
        for name, g in self._by_user.items():
            parts = [part for c in known for part in g.rows_of(c, exclude)]
            out[name] = (parts[0] if len(parts) == 1 else pa.concat_tables(parts)) if parts else g.table.slice(0, 0)
        return out

    def crawled_of(self, pathaliases: list[str | None]) -> pa.Table | None:
        """The crawled rows of ``pathaliases`` (None when the run has no crawled table)."""
        if self.crawled is None:
            return None
        rows = sorted({self._crawled_row[a] for a in pathaliases if a in self._crawled_row})
        return self.crawled.take(pa.array(rows, pa.int64()))
