"""The SQL feature groups evaluated in process for a few posts: serving without a query planner.

``sql/features_<group>.sql`` is each group's definition, run by the batch build and by the tests.
A DuckDB statement costs 10-60 ms to bind, plan and run however small its inputs are, too much
for the 50 ms budget of ``smpp serve`` with five groups per call. The kernels here compute the
same rows from the same inputs ``featurestore.sql_online.sql_groups_rows`` takes (the posts'
rows, their users' rows, the crawled rows and the fitted relations) in plain Python, one post at
a time; on a request of a few posts they take well under a millisecond per group.

They follow the SQL's arithmetic operation by operation (integer micro-unit label sums, C-style
``//`` and ``%``, DuckDB's half-away-from-zero ``round``, glibc's ``log``/``exp`` through
``math``), so their rows equal the SQL's: tests/test_sql_kernels.py runs every kernel against its
SQL over whole simulated stores edited to hold the hard cases (NULL categories and Pathaliases,
posts sharing a postdate, users without visible labels, several new posts of one user in one
request), and tests/test_predict.py checks replayed posts end to end. A change to a group's SQL
that is not made here too fails those tests. A group without a kernel is served by its SQL.

A user window ``RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING`` over integer postdates is the
prefix of the user's rows sorted by postdate that lies strictly before the post: each window
below is such a prefix (``sql_semantics.UserRows``), found by binary search. DuckDB's scalar
semantics and the input containers are in ``featurestore.sql_semantics``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import pyarrow as pa

from featurestore.sql_online import RUNNING, FittedLookup, level_keys
from featurestore.sql_semantics import (
    DAY, Inputs, Rows, UserRows, by_key, cdiv, cmod, div, double, ln, median, plus1, round9, rows_frame, targets_of,
    timestamp,
)

# --- the groups ----------------------------------------------------------------------------------

def _user_profile(users: Rows, additional: Rows, pid: int, postdate: int) -> dict:
    def u(column: str):
        return users.get(column, pid)
    first, taken = u("photo_firstdate"), u("photo_firstdatetaken")
    return {"photo_count": double(u("photo_count")), "ispro": double(u("ispro")),
            "canbuypro": double(u("canbuypro")), "tz": double(u("tz_offset_minutes")),
            "age": None if first is None else (postdate - first) / 86400.0,
            "taken": None if taken is None else (postdate - taken) / 86400.0,
            "pathalias": float(additional.get("pathalias", pid) is not None),
            "description": float(u("user_description") is not None or u("user_description_vec") is not None),
            "location": float(u("location_description") is not None or u("location_description_vec") is not None)}


def _words(text: str | None) -> float:
    s = (text or "").strip(" ")
    return 0.0 if s == "" else float(len(s.split(" ")))


def baseline_rows(pids, tables: Inputs, fitted: FittedLookup, config) -> pa.Table:
    """sql/features_baseline.sql."""
    posts, users, additional, text, temporal, categories = (
        tables.rows(n) for n in ("posts", "users", "additional", "text", "temporal", "categories"))
    vocab = {n: fitted.codes(f"vocab_{n}") for n in ("category", "subcategory", "concept")}
    targets = targets_of(pids, posts, users, additional, text, temporal, categories)
    postdates, rows = [], []
    for pid in targets:
        t = posts.get("postdate", pid)
        prof = _user_profile(users, additional, pid, t)
        tz = users.get("tz_offset_minutes", pid)
        local = t + (tz or 0) * 60
        title, tags = text.get("title", pid), text.get("alltags", pid)
        media = text.get("mediatype", pid)
        postdates.append(t)
        rows.append({
            "base_user_photo_count": prof["photo_count"], "base_user_ispro": prof["ispro"],
            "base_user_canbuypro": prof["canbuypro"], "base_user_tz_offset_minutes": prof["tz"],
            "base_user_account_age_days": prof["age"], "base_user_days_since_first_taken": prof["taken"],
            "base_user_has_pathalias": prof["pathalias"], "base_user_has_description": prof["description"],
            "base_user_has_location": prof["location"],
            "base_time_tz_known": float(tz is not None),
            "base_time_hour_local": float(cdiv(cmod(local, DAY), 3600)),
            "base_time_weekday_local": float(cmod(cdiv(local, DAY) + 3, 7)),
            "base_time_month_local": float(timestamp(local).month),
            "base_time_days_since_epoch": t / 86400.0,
            **{f"base_cat_{n}_code": vocab[n].get(categories.get(n, pid)) for n in ("category", "subcategory", "concept")},
            "base_text_title_chars": float(len(title or "")), "base_text_title_words": _words(title),
            "base_text_tag_count": _words(tags), "base_text_tags_chars": float(len(tags or "")),
            "base_text_is_video": None if media is None else float(media == "video"),
            "base_geo_has_geo": double(temporal.get("has_geo", pid)),
            "base_geo_accuracy": double(temporal.get("geoaccuracy", pid)),
        })
    return rows_frame(targets, postdates, rows, {f"base_cat_{n}_code": pa.int32() for n in ("category", "subcategory", "concept")})


def _user_windows(posts: Rows, keep: Callable[[int], bool] = lambda p: True) -> dict:
    """uid -> ``UserRows`` of the posts table's rows (those ``keep`` accepts)."""
    pids = [p for p in posts.cols["pid"] if keep(p)]
    return by_key(pids, [posts.get("uid", p) for p in pids], [posts.get("postdate", p) for p in pids])


def user_rows(pids, tables: Inputs, fitted: FittedLookup, config) -> pa.Table:
    """sql/features_user.sql."""
    posts, users, additional = (tables.rows(n) for n in ("posts", "users", "additional"))
    windows = _user_windows(posts)
    targets = targets_of(pids, posts, users, additional)
    postdates, rows = [], []
    for pid in targets:
        t = posts.get("postdate", pid)
        w = windows[posts.get("uid", pid)]
        k = w.before(t)
        recent = k - bisect.bisect_left(w.postdate, t - 2592000)
        first = w.postdate[0] if k else None
        prof = _user_profile(users, additional, pid, t)
        desc, loc = users.get("user_description", pid), users.get("location_description", pid)
        postdates.append(t)
        rows.append({
            "user_photo_count": prof["photo_count"], "user_log_photo_count": ln(plus1(users.get("photo_count", pid))),
            "user_ispro": prof["ispro"], "user_canbuypro": prof["canbuypro"], "user_tz_offset_minutes": prof["tz"],
            "user_has_timezone_id": float(users.get("timezone_id", pid) is not None),
            "user_account_age_days": prof["age"], "user_days_since_first_taken": prof["taken"],
            "user_has_pathalias": prof["pathalias"], "user_has_description": prof["description"],
            "user_description_chars": float(len(desc or "")), "user_has_location": prof["location"],
            "user_location_chars": float(len(loc or "")),
            "user_posts_before": float(k), "user_posts_last_30d": float(recent),
            "user_posts_per_day_before": None if k == 0 else k / ((t - first) / 86400.0 + 1),
        })
    return rows_frame(targets, postdates, rows)


def temporal_rows(pids, tables: Inputs, fitted: FittedLookup, config) -> pa.Table:
    """sql/features_temporal.sql."""
    posts, users, temporal = (tables.rows(n) for n in ("posts", "users", "temporal"))
    windows = _user_windows(posts, keep=users.__contains__)
    targets = targets_of(pids, posts, users, temporal)
    postdates, rows = [], []
    for pid in targets:
        t = posts.get("postdate", pid)
        tz, first = users.get("tz_offset_minutes", pid), users.get("photo_firstdate", pid)
        local = t + (tz or 0) * 60
        w = windows[posts.get("uid", pid)]
        k = w.before(t)
        weekday = cmod(cdiv(local, DAY) + 3, 7)
        stamp = timestamp(local)
        postdates.append(t)
        rows.append({
            "time_tz_unknown": float(tz is None), "time_hour_local": cmod(local, DAY) / 3600.0,
            "time_weekday_local": float(weekday), "time_weekend_local": float(weekday >= 5),
            "time_month_local": float(stamp.month), "time_day_of_year": float(stamp.timetuple().tm_yday),
            "time_days_since_epoch": t / 86400.0,
            "time_days_since_first_photo": None if first is None else (t - first) / 86400.0,
            "time_days_since_prev_post": (t - w.postdate[k - 1]) / 86400.0 if k else None,
            "geo_has_geo": double(temporal.get("has_geo", pid)), "geo_accuracy": double(temporal.get("geoaccuracy", pid)),
            "geo_latitude": temporal.get("latitude", pid), "geo_longitude": temporal.get("longitude", pid),
        })
    return rows_frame(targets, postdates, rows)


CRAWLED_STATS = (("views", "totalViews"), ("tags", "totalTags"), ("geotagged", "totalGeotagged"),
                 ("faves", "totalFaves"), ("in_group", "totalInGroup"), ("photos", "photoCount"),
                 ("followers", "followerCount"), ("following", "followingCount"))
CRAWLED_RATIOS = (("views_per_photo", "totalViews", "photoCount"), ("faves_per_view", "totalFaves", "totalViews"),
                  ("follower_ratio", "followerCount", "followingCount"), ("tags_per_photo", "totalTags", "photoCount"),
                  ("geotagged_per_photo", "totalGeotagged", "photoCount"),
                  ("in_group_per_photo", "totalInGroup", "photoCount"))


def crawled_rows(pids, tables: Inputs, fitted: FittedLookup, config) -> pa.Table:
    """sql/features_crawled.sql."""
    posts, additional = tables.rows("posts"), tables.rows("additional")
    crawled = tables.table("crawled_users").to_pylist()
    by_alias = {r["pathalias"]: r for r in crawled if r["pathalias"] is not None}
    targets = targets_of(pids, posts, additional)
    postdates, rows = [], []
    for pid in targets:
        c = by_alias.get(additional.get("pathalias", pid)) or {}
        one = {col: plus1(c.get(col)) for _, col in CRAWLED_STATS}
        postdates.append(posts.get("postdate", pid))
        rows.append({"crawl_found": float(bool(c)), "crawl_failed": float(bool(c.get("crawl_failed") or False)),
                     **{f"crawl_log_{n}": ln(one[col]) for n, col in CRAWLED_STATS},
                     **{f"crawl_log_{n}": ln(div(one[a], one[b])) for n, a, b in CRAWLED_RATIOS}})
    return rows_frame(targets, postdates, rows)


def ids_rows(pids, tables: Inputs, fitted: FittedLookup, config) -> pa.Table:
    """sql/features_ids.sql."""
    posts = tables.rows("posts")
    codes = fitted.codes("vocab_user")
    targets = targets_of(pids, posts)
    rows = [{"id_user_code": codes.get(posts.get("uid", p))} for p in targets]
    return rows_frame(targets, [posts.get("postdate", p) for p in targets], rows, {"id_user_code": pa.int32()})


def _label_stats(w: UserRows, k: int, prefix: str) -> dict:
    """The label statistics of window ``w[:k]`` (``hist_<prefix>_*``)."""
    n, s, q = (w.n[k - 1], w.s[k - 1], w.q[k - 1]) if k else (0, 0, 0)
    ys = [v for v in w.y[:k] if v is not None]
    return {f"hist_{prefix}_count": float(n), f"hist_{prefix}_mean": float(s) / n / 1e6 if n else None,
            f"hist_{prefix}_median": median(ys),
            f"hist_{prefix}_std": math.sqrt(float(n * q - s * s) / (n * (n - 1))) / 1e6 if n > 1 else None,
            f"hist_{prefix}_min": min(ys) if ys else None, f"hist_{prefix}_max": max(ys) if ys else None,
            f"hist_{prefix}_last": _last(w, k)}


def _last(w: UserRows, k: int) -> float | None:
    """``arg_max(y, postdate * 2^21 + pid)`` over the visible rows of ``w[:k]``."""
    keyed = [(t * 2097152 + p, v) for t, p, v in zip(w.postdate[:k], w.pid[:k], w.y[:k]) if v is not None]
    return max(keyed)[1] if keyed else None


def _decayed(w: UserRows, k: int, t0: int, half_life_days: float) -> float | None:
    """``round(sum(wt * y) / sum(wt), 9)`` over ``w[:k]``, wt = 2^((t_i - t0) / half-life)."""
    num = den = None
    for t, y in zip(w.postdate[:k], w.y[:k]):
        if y is None:
            continue
        wt = math.exp(math.log(2) * (t - t0) / (half_life_days * 86400.0))
        num, den = (wt * y, wt) if num is None else (num + wt * y, den + wt)
    return None if num is None else round9(num / den)


def history_rows(pids, tables: Inputs, fitted: FittedLookup, config) -> pa.Table:
    """sql/features_history.sql (the running category statistics from ``fitted``'s index of
    ``history_running``, as its ASOF joins read them)."""
    posts, split, categories, labels = (tables.rows(n) for n in ("posts", "split", "categories", "labels"))
    base = [p for p in posts.cols["pid"] if p in split and p in categories]
    uid = [posts.get("uid", p) for p in base]
    date = [posts.get("postdate", p) for p in base]
    y = [labels.get("label", p) if split.get("label_visible", p) and p in labels else None for p in base]
    by_user = by_key(base, uid, date, y)
    by_user_cat = by_key(base, list(zip(uid, (categories.get("category", p) for p in base))), date, y)
    t0 = {}
    for u, t in zip(uid, date):
        t0[u] = min(t0.get(u, t), t)
    running = fitted.running
    m = config.smoothing
    targets = [p for p in targets_of(pids, posts, split, categories)]
    postdates, rows = [], []
    for pid in targets:
        t, u, cat = posts.get("postdate", pid), posts.get("uid", pid), categories.get("category", pid)
        wu, wc = by_user[u], by_user_cat[(u, cat)]
        ku, kc = wu.before(t), wc.before(t)
        row = _label_stats(wu, ku, "user")
        row["hist_user_decayed_mean"] = _decayed(wu, ku, t0[u], config.half_life_days)
        row |= _label_stats(wc, kc, "user_cat")
        row["hist_user_cat_decayed_mean"] = _decayed(wc, kc, t0[u], config.half_life_days)
        counts = {}
        for level, key in level_keys(cat, categories.get("subcategory", pid), categories.get("concept", pid)).items():
            i = running.row_index(level, key, t) if running is not None else None
            counts[level] = (0, 0) if i is None else (int(running.n[i]), int(running.s[i]))
        n_all, s_all = counts["all"]
        for level, name in (("category", "category"), ("subcategory", "subcategory"), ("concept", "concept")):
            n, s = counts[level]
            prior = None if n_all == 0 else m * float(s_all) / 1e6 / n_all
            row[f"hist_{name}_count"] = float(n)
            row[f"hist_{name}_smoothed_mean"] = None if prior is None else (float(s) / 1e6 + prior) / (n + m)
        postdates.append(t)
        rows.append(row)
    return rows_frame(targets, postdates, rows)


KERNELS: dict[str, Callable] = {"baseline": baseline_rows, "user": user_rows, "temporal": temporal_rows,
                                "crawled": crawled_rows, "ids": ids_rows, "history": history_rows}


def kernel_rows(group: str, pids, tables: dict[str, pa.Table], fitted: FittedLookup, config) -> pa.Table:
    """SQL group ``group``'s rows of ``pids`` (those its SQL gives a row), sorted by pid, from the
    tables ``sql_online.needed_tables(group)`` names and the run's indexed fitted relations."""
    return kernels_rows({group: config}, pids, tables, fitted)[group]


def kernels_rows(configs: dict[str, object], pids, tables: dict[str, pa.Table], fitted: FittedLookup
                 ) -> dict[str, pa.Table]:
    """``kernel_rows`` of several groups (group -> config) over the same tables, read once."""
    inputs = Inputs(tables)
    return {group: KERNELS[group](list(pids), inputs, fitted, config) for group, config in configs.items()}


__all__ = ["KERNELS", "RUNNING", "kernel_rows", "kernels_rows"]
