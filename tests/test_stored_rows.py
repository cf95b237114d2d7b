"""``StoredRows.of_users``: a user's stored rows as slices, less the excluded (replayed) pids."""

import numpy as np
import pyarrow as pa

from featurestore.stored_rows import USER_TABLES, StoredRows


def _stored() -> StoredRows:
    pid = [5, 1, 9, 3, 7, 2, 8]
    uid = ["b", "a", "a", None, "b", "a", "c"]
    tables = {name: pa.table({"pid": pa.array(pid, pa.int64()), "v": pa.array([p * 10 for p in pid])})
              for name in USER_TABLES}
    tables["posts"] = pa.table({"pid": pa.array(pid, pa.int64()), "uid": pa.array(uid)})
    tables["labels"] = tables["labels"].filter(pa.array([p != 9 for p in pid]))  # 9: no label
    return StoredRows(tables)


def _pids(t: pa.Table) -> list[int]:
    return t["pid"].to_pylist()


def test_rows_of_users_in_pid_order_without_the_excluded_stored_pids():
    s = _stored()
    got = s.of_users(["a", "b", "zz"])
    assert _pids(got["posts"]) == [1, 2, 9, 5, 7] and _pids(got["labels"]) == [1, 2, 5, 7]
    assert got["text"]["v"].to_pylist() == [10, 20, 90, 50, 70]
    # excluded: stored pids of these users (9 only in the tables that hold it), a stored pid of another
    # user (8) and pids that are not stored (100, 4) change nothing else
    got = s.of_users(["a", "b"], exclude_pids=np.array([9, 100, 8, 4, 5]))
    assert _pids(got["posts"]) == [1, 2, 7] and _pids(got["labels"]) == [1, 2, 7]
    assert got["images"]["v"].to_pylist() == [10, 20, 70]
    assert all(_pids(t) == _pids(s.of_users(["a"])[n]) for n, t in s.of_users(["a"], np.array([100])).items())
    assert _pids(s.of_users([""], np.array([3]))["posts"]) == []  # the no-uid user, its one post out
    assert _pids(s.of_users([""])["posts"]) == [3]
    assert s.of_users(["nobody"])["posts"].num_rows == 0 and s.of_users([])["labels"].num_rows == 0
