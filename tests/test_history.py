"""The point-in-time history SQL against a brute-force Python reference (hypothesis)."""

import math
import statistics

import pyarrow.parquet as pq
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
