"""The point-in-time history SQL against a brute-force Python reference (hypothesis)."""

import math
import statistics

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore.feature_groups import build_group
from feature_tables import write_tables
from featurestore.paths import Paths

DAY = 86400
HALF_LIFE, M = 5.0, 3.0


def _stats(prefix, earlier, t):
    ys = [q["label"] for q in earlier]
    n = len(ys)
    out = {f"{prefix}_count": float(n)}
    if not n:
        return out | {f"{prefix}_{k}": None for k in ("mean", "median", "std", "min", "max", "last", "decayed_mean")}
    w = [2 ** (-(t - q["postdate"]) / (HALF_LIFE * DAY)) for q in earlier]
    last = max(earlier, key=lambda q: (q["postdate"], q["pid"]))["label"]
    return out | {f"{prefix}_mean": statistics.fmean(ys), f"{prefix}_median": statistics.median(ys),
                  f"{prefix}_std": statistics.stdev(ys) if n > 1 else None, f"{prefix}_min": min(ys),
                  f"{prefix}_max": max(ys), f"{prefix}_last": last,
                  f"{prefix}_decayed_mean": sum(a * b for a, b in zip(w, ys)) / sum(w)}


def reference(rows):
    """Brute force: visible (train) labels of strictly earlier posts."""
    out = {}
    for p in rows:
        vis = [q for q in rows if q["split"] == "train" and q["label"] is not None and q["postdate"] < p["postdate"]]
        user = [q for q in vis if q["uid"] == p["uid"]]
        r = _stats("hist_user", user, p["postdate"])
        r |= _stats("hist_user_cat", [q for q in user if q["category"] == p["category"]], p["postdate"])
        prior = statistics.fmean([q["label"] for q in vis]) if vis else None
        for level, keys in (("category", ("category",)), ("subcategory", ("category", "subcategory")),
                            ("concept", ("concept",))):
            grp = [q["label"] for q in vis if all(q[k] == p[k] for k in keys)]
            r[f"hist_{level}_count"] = float(len(grp))
            r[f"hist_{level}_smoothed_mean"] = None if prior is None else (sum(grp) + M * prior) / (len(grp) + M)
        out[p["pid"]] = r
    return out


row = st.fixed_dictionaries({
    "uid": st.sampled_from(["1@N1", "2@N1", "3@N2"]),
    "day": st.integers(0, 12), "sec": st.sampled_from([0, 0, 7, 3600]),
    "category": st.sampled_from(["A", "B"]), "subcategory": st.sampled_from(["x", "y"]),
    "concept": st.sampled_from(["c1", "c2", "c3"]),
    "label": st.one_of(st.none(), st.integers(100, 1656).map(lambda v: v / 100)),
    "split": st.sampled_from(["train", "train", "val", "test"]),
})


def _materialise(raw):
    rows = []
    for i, r in enumerate(raw):
        split = r["split"] if r["label"] is not None else "predict"
        rows.append({"pid": 1000 + 7 * i, "postdate": 1_420_000_000 + r["day"] * DAY + r["sec"], **r, "split": split})
    return rows


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(row, min_size=1, max_size=18))
def test_history_sql_matches_brute_force(tmp_path_factory, raw):
    rows = _materialise(raw)
    root = write_tables(tmp_path_factory.mktemp("h"), rows)
    got = {r["pid"]: r for r in build_group("history", Paths(root=root), {"features_history":
                                                                {"half_life_days": HALF_LIFE, "smoothing": M}}).to_pylist()}
    want = reference(rows)
    assert got.keys() == want.keys()
    for pid, exp in want.items():
        for k, v in exp.items():
            g = got[pid][k]
            if v is None:
                assert g is None or (isinstance(g, float) and math.isnan(g)), (pid, k, g)
            else:
                assert g == pytest.approx(v, rel=1e-9, abs=1e-9), (pid, k, g, v)


def test_same_second_posts_do_not_see_each_other(tmp_path):
    rows = _materialise([
        {"uid": "1@N1", "day": 0, "sec": 0, "category": "A", "subcategory": "x", "concept": "c1", "label": 5.0, "split": "train"},
        {"uid": "1@N1", "day": 0, "sec": 0, "category": "A", "subcategory": "x", "concept": "c1", "label": 9.0, "split": "train"},
        {"uid": "1@N1", "day": 1, "sec": 0, "category": "A", "subcategory": "x", "concept": "c1", "label": 2.0, "split": "val"},
    ])
    t = {r["pid"]: r for r in build_group("history", Paths(root=write_tables(tmp_path, rows)), {}).to_pylist()}
    assert t[1000]["hist_user_count"] == 0 and t[1007]["hist_user_count"] == 0
    assert t[1014]["hist_user_count"] == 2 and t[1014]["hist_user_mean"] == 7.0
    assert t[1014]["hist_user_last"] == 9.0  # equal dates: the larger pid counts as later


def test_bad_history_params(tmp_path):
    with pytest.raises(ValueError, match="half_life"):
        build_group("history", Paths(root=tmp_path), {"features_history": {"half_life_days": 0}})
    with pytest.raises(ValueError, match="unknown"):
        build_group("history", Paths(root=tmp_path), {"features_history": {"halflife": 3}})


# The query before `history_running` (windows over the whole table, t0 = the table's first postdate),
# kept as the reference the ASOF joins must reproduce exactly.
OLD_HISTORY_SQL = """
WITH base AS (
    SELECT p.pid, p.uid, p.postdate, c.category, c.subcategory, c.concept,
           CASE WHEN s.label_visible THEN l.label END                       AS y,
           CASE WHEN s.label_visible THEN CAST(round(l.label * 1000000) AS HUGEINT) END AS yi,  -- micro-units
           p.postdate * 2097152 + p.pid                                     AS order_key  -- latest earlier post, ties by pid
    FROM posts p
    JOIN split s USING (pid)
    JOIN categories c USING (pid)
    LEFT JOIN labels l USING (pid)
),
weighted AS (
    -- 2^((t_i - t0) / half-life): the decay 2^(-(t - t_i) / half-life) up to a factor that cancels in the ratio
    SELECT b.*,
           CASE WHEN b.y IS NOT NULL THEN
               exp(ln(2) * (b.postdate - m.t0) / ($half_life_days * 86400.0)) END AS wt
    FROM base b, (SELECT min(postdate) AS t0 FROM base) m
),
agg AS (
    SELECT pid, postdate,
        count(yi) OVER u AS n_u, sum(yi) OVER u AS s_u, sum(yi * yi) OVER u AS q_u,
        median(y) OVER u                                     AS hist_user_median,
        min(y) OVER u                                        AS hist_user_min,
        max(y) OVER u                                        AS hist_user_max,
        arg_max(y, CASE WHEN y IS NOT NULL THEN order_key END) OVER u AS hist_user_last,
        round(sum(wt * y) OVER u / sum(wt) OVER u, 9)        AS hist_user_decayed_mean,
        count(yi) OVER uc AS n_uc, sum(yi) OVER uc AS s_uc, sum(yi * yi) OVER uc AS q_uc,
        median(y) OVER uc                                    AS hist_user_cat_median,
        min(y) OVER uc                                       AS hist_user_cat_min,
        max(y) OVER uc                                       AS hist_user_cat_max,
        arg_max(y, CASE WHEN y IS NOT NULL THEN order_key END) OVER uc AS hist_user_cat_last,
        round(sum(wt * y) OVER uc / sum(wt) OVER uc, 9)      AS hist_user_cat_decayed_mean,
        count(yi) OVER g  AS n_all, coalesce(sum(yi) OVER g, 0)  AS s_all,
        count(yi) OVER ca AS n_cat, coalesce(sum(yi) OVER ca, 0) AS s_cat,
        count(yi) OVER sc AS n_sub, coalesce(sum(yi) OVER sc, 0) AS s_sub,
        count(yi) OVER co AS n_con, coalesce(sum(yi) OVER co, 0) AS s_con
    FROM weighted
    WINDOW
        u  AS (PARTITION BY uid ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        uc AS (PARTITION BY uid, category ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        g  AS (ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        ca AS (PARTITION BY category ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        sc AS (PARTITION BY category, subcategory ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
        co AS (PARTITION BY concept ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT
    pid, postdate,
    n_u::DOUBLE                                               AS hist_user_count,
    s_u::DOUBLE / n_u / 1e6                                   AS hist_user_mean,
    hist_user_median::DOUBLE                                  AS hist_user_median,
    CASE WHEN n_u > 1 THEN sqrt((n_u * q_u - s_u * s_u)::DOUBLE / (n_u * (n_u - 1))) / 1e6 END AS hist_user_std,
    hist_user_min, hist_user_max, hist_user_last, hist_user_decayed_mean,
    n_uc::DOUBLE                                              AS hist_user_cat_count,
    s_uc::DOUBLE / n_uc / 1e6                                 AS hist_user_cat_mean,
    hist_user_cat_median::DOUBLE                              AS hist_user_cat_median,
    CASE WHEN n_uc > 1 THEN sqrt((n_uc * q_uc - s_uc * s_uc)::DOUBLE / (n_uc * (n_uc - 1))) / 1e6 END AS hist_user_cat_std,
    hist_user_cat_min, hist_user_cat_max, hist_user_cat_last, hist_user_cat_decayed_mean,
    n_cat::DOUBLE AS hist_category_count,
    (s_cat::DOUBLE / 1e6 + $smoothing * s_all::DOUBLE / 1e6 / nullif(n_all, 0)) / (n_cat + $smoothing) AS hist_category_smoothed_mean,
    n_sub::DOUBLE AS hist_subcategory_count,
    (s_sub::DOUBLE / 1e6 + $smoothing * s_all::DOUBLE / 1e6 / nullif(n_all, 0)) / (n_sub + $smoothing) AS hist_subcategory_smoothed_mean,
    n_con::DOUBLE AS hist_concept_count,
    (s_con::DOUBLE / 1e6 + $smoothing * s_all::DOUBLE / 1e6 / nullif(n_all, 0)) / (n_con + $smoothing) AS hist_concept_smoothed_mean
FROM agg
ORDER BY pid
"""
OLD_T0 = "FROM base b, (SELECT min(postdate) AS t0 FROM base) m"
USER_T0 = "FROM base b, (SELECT uid, min(postdate) AS t0 FROM base GROUP BY uid) m WHERE m.uid = b.uid"
DECAYED = ("hist_user_decayed_mean", "hist_user_cat_decayed_mean")

row_with_nulls = st.fixed_dictionaries({
    "uid": st.sampled_from(["1@N1", "2@N1", "3@N2"]),
    "day": st.integers(0, 6), "sec": st.sampled_from([0, 0, 7]),
    "category": st.sampled_from(["A", "B", None]), "subcategory": st.sampled_from(["x", None]),
    "concept": st.sampled_from(["c1", "c2", None, "~", "1:c1"]),
    "label": st.one_of(st.none(), st.integers(100, 1656).map(lambda v: v / 100)),
    "split": st.sampled_from(["train", "train", "val", "test"]),
})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(row_with_nulls, min_size=1, max_size=24))
def test_running_relation_equals_the_old_windows(tmp_path_factory, raw):
    """NULL category / subcategory / concept values and equal postdates included. With the old
    query's t0 made per user (item 3), every column is identical; with its global t0 the decayed
    means agree to their 1e-9 rounding."""
    from featurestore.catalog import open_tables

    root = write_tables(tmp_path_factory.mktemp("r"), _materialise(raw))
    params = {"half_life_days": HALF_LIFE, "smoothing": M}
    new = build_group("history", Paths(root=root), {"features_history": params})
    con = open_tables(root)
    try:
        assert OLD_T0 in OLD_HISTORY_SQL
        per_user = con.sql(OLD_HISTORY_SQL.replace(OLD_T0, USER_T0), params=params).to_arrow_table()
        old = con.sql(OLD_HISTORY_SQL, params=params).to_arrow_table()
    finally:
        con.close()
    assert new.equals(per_user)
    assert new.drop_columns(list(DECAYED)).equals(old.drop_columns(list(DECAYED)))
    for col in DECAYED:
        for a, b in zip(new[col].to_pylist(), old[col].to_pylist()):
            assert (a is None and b is None) or a == pytest.approx(b, abs=2e-9)
