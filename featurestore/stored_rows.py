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
        return _ByUser(table.take(pa.array(order)), starts.astype(np.int64))

    def of_users(self, uids: list[str], exclude_pids: np.ndarray | None = None) -> dict[str, pa.Table]:
        """Each table's rows of the stored posts of ``uids`` (unknown uids: none), without ``exclude_pids``."""
        at = np.searchsorted(self.users, np.asarray(sorted(set(uids)), dtype=str))
        known = [int(a) for a, u in zip(at, sorted(set(uids))) if a < len(self.users) and self.users[a] == u]
        out = {}
        for name, g in self._by_user.items():
            parts = [g.table.slice(g.starts[c], g.starts[c + 1] - g.starts[c]) for c in known]
            t = pa.concat_tables(parts) if parts else g.table.slice(0, 0)
            if exclude_pids is not None and len(exclude_pids) and t.num_rows:
                t = t.filter(pc.invert(pc.is_in(t["pid"], value_set=pa.array(exclude_pids, pa.int64()))))
            out[name] = t
        return out

    def crawled_of(self, pathaliases: list[str | None]) -> pa.Table | None:
        """The crawled rows of ``pathaliases`` (None when the run has no crawled table)."""
        if self.crawled is None:
            return None
        rows = sorted({self._crawled_row[a] for a in pathaliases if a in self._crawled_row})
        return self.crawled.take(pa.array(rows, pa.int64()))
