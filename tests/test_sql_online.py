"""Serving the SQL feature groups in constant time (``featurestore.sql_online``).

A stored post replayed as new, fed only the rows ``ROWS_NEEDED`` names (its own rows, its user's
strictly earlier posts, its Pathalias's crawled row) and the fitted relations cut to its keys
(``FittedLookup.rows_for``: vocabulary rows, ``RunningStats.asof`` rows), gets its batch row bit
for bit, for every SQL group. The simulated store is edited to hold NULL categories and posts
sharing a postdate. The fitted relations are what the stages store; vocabularies see train rows only.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from feature_tables import write_tables

from featurestore.feature_groups import build_group_with_fitted, get_group
from featurestore.paths import Paths
from featurestore.simulate import SimConfig, simulate_smpd
from featurestore.sql_kernels import KERNELS, kernel_rows
from featurestore.sql_online import (
    ROWS_NEEDED,
    FittedLookup,
    RunningStats,
    level_keys,
    needed_tables,
    sql_group_rows,
)
from pipelines import features_baseline, features_history, features_ids, ingest, split

SQL_GROUPS = ["baseline", "user", "crawled", "temporal", "ids", "history"]
STORED = ("posts", "users", "additional", "categories", "text", "temporal", "split", "labels", "crawled_users")
PARAMS = {"features_history": {"half_life_days": 7.0, "smoothing": 5.0}}


def _set(paths: Paths, name: str, column: str, pids, value) -> None:
    """Set ``column`` of the rows of ``pids`` in stored table ``name`` to ``value``."""
    t = pq.read_table(paths.table(name))
    m = pc.is_in(t["pid"], value_set=pa.array(list(pids), pa.int64()))
    i = t.column_names.index(column)
    new = pc.if_else(m, pa.scalar(value, t[column].type), t[column])
    pq.write_table(t.set_column(i, column, new), paths.table(name))


def _equal_dates(paths: Paths, uid: str, other: str) -> None:
    """Give two posts of ``uid`` one postdate, and a post of ``other`` the postdate of a labelled
    train post of ``uid``."""
    posts = pq.read_table(paths.table("posts")).sort_by("postdate")
    train = set(pq.read_table(paths.table("split")).filter(pc.field("label_visible"))["pid"].to_pylist())
    mine = [(p, t) for p, u, t in zip(*(posts[c].to_pylist() for c in ("pid", "uid", "postdate"))) if u == uid]
    theirs = posts.filter(pc.field("uid") == other)["pid"].to_pylist()
    (p1, _), (_, t2) = mine[1], mine[2]
    t_train = next(t for p, t in mine if p in train and p != p1)
    for name in ("posts", "split"):
        _set(paths, name, "postdate", [p1], t2)
        _set(paths, name, "postdate", [theirs[0]], t_train)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(paths, stored tables, batch tables, fitted relations, sampled pids) of an edited simulated store."""
    root = tmp_path_factory.mktemp("online")
    simulate_smpd(root / "smpd", SimConfig(posts=600, seed=3, images=False, progress=False))
    paths = Paths(root=root / "work", smpd=root / "smpd")
    for stage in (ingest, split):
        stage.run(paths, {})
    posts = pq.read_table(paths.table("posts"))
    by_size = sorted((c["counts"], c["values"]) for c in pc.value_counts(posts["uid"]).to_pylist())
    train = pq.read_table(paths.table("split")).filter(pc.field("split") == "train")["pid"]
    trained = set(posts.filter(pc.is_in(posts["pid"], value_set=train))["uid"].to_pylist())
    single = next(u for n, u in by_size if n == 1)
    mid = [u for n, u in by_size if 5 <= n <= 12 and u in trained][:3]
    _equal_dates(paths, mid[0], mid[1])
    pids = pq.read_table(paths.table("posts"))["pid"].to_pylist()
    _set(paths, "categories", "category", pids[::9], None)
    _set(paths, "categories", "subcategory", pids[::7], None)
    _set(paths, "categories", "concept", pids[::5], None)
    stored = {n: pq.read_table(paths.table(n)) for n in STORED}
    built = {g: build_group_with_fitted(g, paths, PARAMS) for g in SQL_GROUPS}
    fitted = {n: r for _, f in built.values() for n, r in f.items()}
    posts = stored["posts"]
    sample = posts.filter(pc.is_in(posts["uid"], value_set=pa.array([single, *mid])))["pid"].to_pylist()
    return paths, stored, {g: t for g, (t, _) in built.items()}, fitted, sample


def _rows(table: pa.Table, pids) -> pa.Table:
    return table.filter(pc.is_in(table["pid"], value_set=pa.array(list(pids), pa.int64())))


def _needed(stored: dict, group: str, pid: int) -> dict[str, pa.Table]:
    """Exactly the stored rows ``ROWS_NEEDED[group]`` names for post ``pid``."""
    need = ROWS_NEEDED[group]
    post = _rows(stored["posts"], [pid])
    uid, t = post["uid"][0].as_py(), post["postdate"][0].as_py()
    earlier = stored["posts"].filter((pc.field("uid") == uid) & (pc.field("postdate") < t))["pid"].to_pylist()
    out = {}
    for name in needed_tables(group):
        if name == "crawled_users":
            alias = _rows(stored["additional"], [pid])["pathalias"][0].as_py()
            out[name] = stored[name].filter(pc.field("pathalias") == alias) if alias else stored[name].slice(0, 0)
        else:
            pids = ([pid] if name in need.own else []) + (earlier if name in need.earlier else [])
            out[name] = _rows(stored[name], pids)
    return out


def _keys(stored: dict, pid: int) -> pa.Table:
    """The post's uid, postdate, category, subcategory, concept: what the fitted lookups key on."""
    return _rows(stored["posts"], [pid]).select(["pid", "uid", "postdate"]).join(
        _rows(stored["categories"], [pid]), "pid")


@pytest.mark.parametrize("group", SQL_GROUPS)
def test_a_post_from_its_rows_alone_equals_its_batch_row(store, group):
    paths, stored, batch, fitted, sample = store
    lookup = FittedLookup(fitted)
    config = get_group(group).make_config(PARAMS)
    for pid in sample:
        cut = lookup.rows_for(_keys(stored, pid))
        got = _rows(sql_group_rows(group, _needed(stored, group, pid), cut, config), [pid])
        want = _rows(batch[group], [pid])
        assert want.num_rows == 1 and got.equals(want), (group, pid, got.to_pylist(), want.to_pylist())


def test_the_sample_covers_the_hard_cases(store):
    paths, stored, batch, fitted, sample = store
    posts = _rows(stored["posts"], sample)
    counts = pc.value_counts(posts["uid"]).to_pylist()
    assert min(c["counts"] for c in counts) == 1 and len(counts) == 4
    assert len(set(posts["postdate"].to_pylist())) < posts.num_rows  # a user's posts share a postdate
    cats = _rows(stored["categories"], sample)
    assert all(cats[c].null_count for c in ("category", "subcategory", "concept"))
    running = fitted["history_running"]
    assert "~" in running.filter(pc.field("level") == "category")["key"].to_pylist()  # a NULL key with labels


def test_asof_rows_are_the_last_strictly_earlier_ones(store):
    paths, stored, batch, fitted, sample = store
    running = RunningStats(fitted["history_running"])
    full = fitted["history_running"]
    for pid in sample[:8]:
        keys = _keys(stored, pid)
        t = keys["postdate"][0].as_py()
        got = running.asof(keys)
        levels = level_keys(*(keys[c][0].as_py() for c in ("category", "subcategory", "concept")))
        want = []
        for level, key in levels.items():
            rows = full.filter((pc.field("level") == level) & (pc.field("key") == key) & (pc.field("postdate") < t))
            if rows.num_rows:
                want.append(rows.sort_by("postdate").slice(rows.num_rows - 1).to_pylist()[0])
        order = lambda r: (r["level"], r["key"])  # noqa: E731
        assert sorted(got.to_pylist(), key=order) == sorted(want, key=order)


def test_running_relation_is_inclusive_and_keeps_nulls(tmp_path):
    cols = ("pid", "uid", "postdate", "category", "subcategory", "concept", "label", "split")
    rows = [dict(zip(cols, r)) for r in [(1, "a", 100, None, "x", "é", 2.0, "train"),
                                         (2, "b", 100, None, None, "é", 4.0, "train"),
                                         (3, "a", 200, "A", "x", None, 1.5, "val"),
                                         (4, "b", 300, "A", None, None, None, "predict")]]
    _, fitted = build_group_with_fitted("history", Paths(root=write_tables(tmp_path, rows)), {})
    got = {(r["level"], r["key"], r["postdate"]): (r["n"], r["s"]) for r in fitted["history_running"].to_pylist()}
    assert got == {("all", "", 100): (2, 6_000_000), ("category", "~", 100): (2, 6_000_000),
                   ("subcategory", "~1:x", 100): (1, 2_000_000), ("subcategory", "~~", 100): (1, 4_000_000),
                   ("concept", "2:é", 100): (2, 6_000_000)}


def test_vocabularies_depend_on_train_rows_only(store):
    paths, stored, batch, fitted, sample = store
    s = stored["split"]
    hidden = s.filter(pc.field("split") != "train")["pid"].to_pylist()[:20]
    train = s.filter(pc.field("split") == "train")["pid"].to_pylist()[:1]
    try:
        _set(paths, "categories", "category", hidden, "neverseen")
        _set(paths, "categories", "concept", hidden, "neverseen")
        _, after = build_group_with_fitted("baseline", paths, PARAMS)
        for name, table in after.items():
            assert table.equals(fitted[name]), name
        _set(paths, "categories", "category", train, "neverseen")
        _, changed = build_group_with_fitted("baseline", paths, PARAMS)
        assert "neverseen" in changed["vocab_category"]["category"].to_pylist()
    finally:
        pq.write_table(stored["categories"], paths.table("categories"))


def test_stages_write_the_fitted_relations(store):
    paths, stored, batch, fitted, sample = store
    for stage, names in ((features_baseline, ("vocab_category", "vocab_subcategory", "vocab_concept")),
                         (features_ids, ("vocab_user",)), (features_history, ("history_running",))):
        stage.run(paths, PARAMS)
        for name in names:
            assert pq.read_table(paths.fitted(f"{name}.parquet")).equals(fitted[name]), name
    codes = pq.read_table(paths.fitted("vocab_category.parquet"))["code"].to_numpy()
    assert np.array_equal(codes, np.arange(len(codes)))


# --- the in-process kernels (featurestore.sql_kernels) equal the SQL --------------------------

def _assert_same_rows(got: pa.Table, want: pa.Table, tol: float = 1e-9) -> None:
    """Same columns, types, pids and NULLs; floats within ``tol``, everything else equal."""
    assert got.schema.names == want.schema.names and got.schema.types == want.schema.types, (got.schema, want.schema)
    assert got["pid"].to_pylist() == want["pid"].to_pylist()
    for name in want.column_names:
        g, w = got[name].to_pylist(), want[name].to_pylist()
        for pid, a, b in zip(want["pid"].to_pylist(), g, w):
            if isinstance(b, float) and b is not None and a is not None:
                same = (np.isnan(a) and np.isnan(b)) or a == b or abs(a - b) <= tol * max(1.0, abs(b))
            else:
                same = a == b
            assert same, (name, pid, a, b)


@pytest.mark.parametrize("group", SQL_GROUPS)
def test_kernel_rows_of_the_whole_store_equal_the_batch_table(store, group):
    paths, stored, batch, fitted, sample = store
    tables = {n: stored[n] for n in needed_tables(group)}
    got = kernel_rows(group, stored["posts"]["pid"].to_pylist(), tables, FittedLookup(fitted),
                      get_group(group).make_config(PARAMS))
    assert got.num_rows == batch[group].num_rows
    _assert_same_rows(got, batch[group])


@pytest.mark.parametrize("group", SQL_GROUPS)
def test_kernel_row_of_a_post_from_its_rows_alone_equals_its_batch_row(store, group):
    paths, stored, batch, fitted, sample = store
    lookup = FittedLookup(fitted)
    config = get_group(group).make_config(PARAMS)
    for pid in sample:
        got = kernel_rows(group, [pid], _needed(stored, group, pid), lookup, config)
        _assert_same_rows(got, _rows(batch[group], [pid]))


def test_kernels_agree_with_the_sql_on_several_new_posts_of_one_user(store):
    """New posts of one user in one request see each other (strictly earlier ones count in the user
    windows), and a new post may share a second with a stored one: kernels and SQL on the same inputs."""
    paths, stored, batch, fitted, sample = store
    posts = stored["posts"]
    uid = _rows(posts, sample[-1:])["uid"][0].as_py()
    mine = posts.filter(pc.field("uid") == uid).sort_by("postdate")
    last = mine["postdate"][-1].as_py()
    new_pids = [10_000_000 + i for i in range(3)]
    dates = [last + 3600, last + 3600, mine["postdate"][0].as_py()]  # two in one second; one as early as the first
    src = mine["pid"][0].as_py()
    tables = {}
    for name, table in stored.items():
        if name == "crawled_users":
            tables[name] = table
            continue
        rows = _rows(table, mine["pid"].to_pylist())
        if name == "labels":
            tables[name] = rows
            continue
        template = _rows(table, [src])
        extra = []
        for pid, t in zip(new_pids, dates):
            row = template.set_column(0, "pid", pa.array([pid], pa.int64()))
            if "postdate" in row.column_names:
                row = row.set_column(row.column_names.index("postdate"), "postdate", pa.array([t], pa.int64()))
            if name == "split":
                row = row.set_column(row.column_names.index("label_visible"), "label_visible", pa.array([False]))
            extra.append(row)
        tables[name] = pa.concat_tables([rows, *extra])
    lookup = FittedLookup(fitted)
    for group in SQL_GROUPS:
        config = get_group(group).make_config(PARAMS)
        need = {n: tables[n] for n in needed_tables(group)}
        want = _rows(sql_group_rows(group, need, fitted, config), new_pids)
        got = kernel_rows(group, new_pids, need, lookup, config)
        assert want.num_rows == 3
        _assert_same_rows(got, want)
    user = _rows(sql_group_rows("user", {n: tables[n] for n in needed_tables("user")}, fitted,
                                get_group("user").make_config(PARAMS)), new_pids)
    # the stored posts and the third new post count; the other post of the same second does not
    assert user["user_posts_before"].to_pylist()[:2] == [float(mine.num_rows + 1)] * 2


def test_every_sql_group_has_a_kernel():
    from featurestore.feature_groups import list_groups
    sql_groups = {g.name for g in list_groups() if g.sql}
    assert sql_groups == set(KERNELS) == set(SQL_GROUPS)
