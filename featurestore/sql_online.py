"""SQL feature-group rows of new posts from only the rows they touch: serving in constant time.

``sql_group_rows`` runs a group's own ``sql/<group>.sql`` (the text the batch build runs, through
``sql_groups.query_group``) over Arrow tables held in memory instead of the whole store. Given the
rows ``ROWS_NEEDED`` names, a post's row equals its batch row; rows of other posts that the
tables happen to hold are computed too and are correct only if their own needs are met.

What a post p (user u, Pathalias a, postdate t) needs, per group:
- ``own``: the row of p itself in each named ingest table (keyed by pid).
- ``earlier``: the rows of every post of u with postdate < t in each named table (by those pids;
  the user windows look strictly back, so later or same-second posts of u may be included).
- ``crawled``: the ``crawled_users`` row of a (none when p has no Pathalias or a was not crawled).
- the group's fitted relations (``FeatureGroup.fitted``, ``data/fitted/<name>.parquet``): whole, or
  cut to p's keys by ``FittedLookup.rows_for`` (the vocabulary rows of p's uid, category,
  subcategory and concept; ``RunningStats.asof``: one ``history_running`` row per level).
Every named table must be given, empty where nothing matches, with its stored schema.

The fitted relations are cut by point lookups, O(log n) per post, never a scan:
- ``RunningStats``: ``history_running`` (sql/fitted_history_running.sql) per (level, key) as
  sorted postdates; ``asof`` returns per post and level the last row with postdate < the post's,
  exactly the row the ASOF joins of sql/features_history.sql pick.
- ``FittedLookup``: every fitted relation of a run, vocabularies indexed by their key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from featurestore.feature_groups import get_group
from featurestore.sql_groups import connect_arrow, query_group

RUNNING = "history_running"


@dataclass(frozen=True)
class RowsNeeded:
    own: tuple[str, ...]            # tables whose row of the post itself is read
    earlier: tuple[str, ...] = ()   # tables whose rows of the user's strictly earlier posts are read
    crawled: bool = False           # crawled_users: the row of the post's Pathalias


ROWS_NEEDED: dict[str, RowsNeeded] = {
    "baseline": RowsNeeded(own=("posts", "users", "additional", "text", "temporal", "categories")),
    "user": RowsNeeded(own=("posts", "users", "additional"), earlier=("posts",)),
    "crawled": RowsNeeded(own=("posts", "additional"), crawled=True),
    "temporal": RowsNeeded(own=("posts", "users", "temporal"), earlier=("posts", "users")),
    "ids": RowsNeeded(own=("posts",)),
    "history": RowsNeeded(own=("posts", "split", "categories"),
                          earlier=("posts", "split", "categories", "labels")),
}


def needed_tables(group: str) -> tuple[str, ...]:
    """Every table ``group``'s query reads (each must be passed to ``sql_group_rows``)."""
    need = ROWS_NEEDED[group]
    names = dict.fromkeys(need.own + need.earlier + (("crawled_users",) if need.crawled else ()))
    return tuple(names)


def sql_group_rows(group: str, tables: dict[str, pa.Table], fitted: dict[str, pa.Table], config: object) -> pa.Table:
    """The feature rows of SQL group ``group`` over in-memory ``tables`` (name -> Arrow table in the
    stored schema) and ``fitted`` relations (name -> table), with ``config`` (the group's config,
    ``get_group(group).make_config(params)``) bound as parameters. Sorted by pid."""
    return sql_groups_rows({group: config}, tables, fitted)[group]


def sql_groups_rows(configs: dict[str, object], tables: dict[str, pa.Table], fitted: dict[str, pa.Table]
                    ) -> dict[str, pa.Table]:
    """``sql_group_rows`` of several groups (group -> config) over one connection: the tables are
    registered once, each group's query runs with its fitted relations."""
    for group in configs:
        spec = get_group(group)
        if spec.sql is None:
            raise ValueError(f"feature group {group} is not a SQL group")
        missing = [n for n in spec.fitted if n not in fitted] + [n for n in needed_tables(group) if n not in tables]
        if missing:
            raise ValueError(f"feature group {group}: missing relations {missing}")
    con = connect_arrow(tables)
    try:
        return {group: query_group(con, get_group(group).sql, config,
                                   {n: fitted[n] for n in get_group(group).fitted})
                for group, config in configs.items()}
    finally:
        con.close()


def _component(value: str | None) -> str:
    """One key component as the SQL encodes it: ``'<utf-8 bytes>:<value>'``, ``'~'`` for NULL."""
    return "~" if value is None else f"{len(value.encode('utf-8'))}:{value}"


def level_keys(category: str | None, subcategory: str | None, concept: str | None) -> dict[str, str]:
    """The ``history_running`` key of a post at each level (level -> key); the same encoding as
    sql/fitted_history_running.sql and sql/features_history.sql."""
    cat = _component(category)
    return {"all": "", "category": cat, "subcategory": cat + _component(subcategory), "concept": _component(concept)}


class RunningStats:
    """``history_running`` indexed once: rows sorted by (level, key, postdate), and per (level, key)
    the slice of its rows. Memory: the relation plus one dict entry per key."""

    def __init__(self, running: pa.Table):
        self.table = running.sort_by([("level", "ascending"), ("key", "ascending"), ("postdate", "ascending")])
        self._postdate = self.table["postdate"].to_numpy()
        self.n = self.table["n"].to_numpy()  # running count and micro-unit sum of each row
        self.s = self.table["s"].to_numpy()
        group = np.array([f"{lv}\x00{k}" for lv, k in zip(self.table["level"].to_pylist(),
                                                           self.table["key"].to_pylist())], dtype=object)
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else np.zeros(0, np.int64)
        stops = np.r_[starts[1:], len(group)]
        self._spans = {tuple(group[a].split("\x00", 1)): (int(a), int(b)) for a, b in zip(starts, stops)}

    def row_index(self, level: str, key: str, postdate: int) -> int | None:
        """Index in ``self.table`` of the last row of (level, key) with postdate < ``postdate``; None if none."""
        span = self._spans.get((level, key))
        if span is None:
            return None
        start, stop = span
        i = start + int(np.searchsorted(self._postdate[start:stop], postdate, side="left")) - 1
        return i if i >= start else None

    def asof(self, posts: pa.Table) -> pa.Table:
        """The ``history_running`` rows the ASOF joins read for ``posts`` (columns postdate, category,
        subcategory, concept): at most 4 rows per post, deduplicated, in ``self.table`` order."""
        hits = set()
        columns = (posts[c].to_pylist() for c in ("postdate", "category", "subcategory", "concept"))
        for t, cat, sub, con in zip(*columns):
            for level, key in level_keys(cat, sub, con).items():
                i = self.row_index(level, key, t)
                if i is not None:
                    hits.add(i)
        return self.table.take(pa.array(sorted(hits), pa.int64()))


def _vocab_key(vocab: pa.Table) -> str:
    """The key column of a vocabulary relation (``code`` is the value)."""
    return next(c for c in vocab.column_names if c != "code")


class FittedLookup:
    """A run's fitted SQL relations (name -> table, e.g. read from ``data/fitted/<name>.parquet``)
    indexed once; ``rows_for`` cuts each to the rows some posts need."""

    def __init__(self, fitted: dict[str, pa.Table]):
        self.fitted = dict(fitted)
        self.running = RunningStats(fitted[RUNNING]) if RUNNING in fitted else None
        self._index = {name: dict(zip(t[_vocab_key(t)].to_pylist(), range(t.num_rows)))
                       for name, t in fitted.items() if name != RUNNING}
        self._codes = {name: {k: c for k, c in zip(t[_vocab_key(t)].to_pylist(), t["code"].to_pylist()) if k is not None}
                       for name, t in fitted.items() if name != RUNNING}

    def codes(self, name: str) -> dict:
        """Vocabulary ``name`` as value -> code (NULL has no code: the SQL's join never matches it)."""
        return self._codes[name]

    def rows_for(self, posts: pa.Table) -> dict[str, pa.Table]:
        """Per relation, its rows for ``posts`` (the columns the vocabularies are keyed by: uid,
        category, subcategory, concept; and postdate for ``history_running``). Feeding these instead
        of the whole relations gives the posts the same feature rows."""
        out = {}
        for name, index in self._index.items():
            table = self.fitted[name]
            key = _vocab_key(table)
            rows = sorted({index[v] for v in posts[key].to_pylist() if v in index}) if key in posts.column_names else []
            out[name] = table.take(pa.array(rows, pa.int64()))
        if self.running is not None:
            out[RUNNING] = self.running.asof(posts)
        return out

