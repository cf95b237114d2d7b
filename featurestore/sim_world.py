"""The latent world behind the simulated SMPD set: users, posts, times, image parameters, effects.

Everything here is numpy arrays, one entry per user (U,) or per post (P,); nothing is
written. ``simulate.py`` turns the effects into labels and ``sim_writer``/``sim_images``
turn users and posts into files. Effect signs and sizes are documented in ``simulate.py``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, ndtr, ndtri

from featurestore.sim_text import CategoryTree, place_table

T_START = 1420070400  # 2015-01-01 00:00 UTC
T_END = 1462060800    # 2016-05-01 00:00 UTC: 16 months, like the real SMPD span
DAY = 86400
SPAN_DAYS = (T_END - T_START) // DAY
N_STYLES = 12         # visual styles: a dominant hue each (i / 12 of the colour wheel)

# Crawled user statistics (FORMAT.md §10), derived once from real_user_additional.txt (36,530 users):
# share of all-zero rows (failed crawls); per column, over the other rows: share of zeros, mean and sd
# of log1p(value) among the non-zero values, and the Pearson correlation matrix of log1p(values).
STAT_NAMES = ("totalViews", "totalTags", "totalGeotagged", "totalFaves", "totalInGroup", "photoCount",
              "followerCount", "followingCount")
STAT_ALL_ZERO = 0.072
STAT_ZERO = np.array([0.015, 0.026, 0.371, 0.075, 0.091, 0.016, 0.013, 0.036])
STAT_MEAN_NZ = np.array([13.05, 6.62, 5.17, 6.39, 4.22, 6.93, 5.30, 4.75])
STAT_SD_NZ = np.array([2.25, 1.49, 2.55, 2.68, 1.58, 1.83, 1.89, 1.75])
STAT_CORR = np.array([
    [1.00, 0.75, 0.42, 0.42, 0.46, 0.73, 0.65, 0.44],
    [0.75, 1.00, 0.46, 0.35, 0.42, 0.65, 0.45, 0.34],
    [0.42, 0.46, 1.00, 0.28, 0.36, 0.45, 0.34, 0.28],
    [0.42, 0.35, 0.28, 1.00, 0.65, 0.14, 0.74, 0.75],
    [0.46, 0.42, 0.36, 0.65, 1.00, 0.19, 0.72, 0.69],
    [0.73, 0.65, 0.45, 0.14, 0.19, 1.00, 0.28, 0.18],
    [0.65, 0.45, 0.34, 0.74, 0.72, 0.28, 1.00, 0.79],
    [0.44, 0.34, 0.28, 0.75, 0.69, 0.18, 0.79, 1.00]])
# posts per user: 1 + floor(lognormal(mu, sigma)); mean ~8, max in the hundreds (real: 305,613 / ~38k users)
POSTS_MU, POSTS_SIGMA = 1.12, 1.35
# local posting hour weights (evening peak)
HOUR_W = np.array([1.0, .6, .4, .3, .3, .4, .8, 1.5, 2.5, 3.0, 3.3, 3.5, 3.8, 3.7, 3.6, 3.7, 4.0, 4.5, 5.2, 6.0,
                   6.3, 5.8, 4.2, 2.5])


def posts_per_user(rng: np.random.Generator, posts: int) -> np.ndarray:
    """(U,) int post counts summing to ``posts``; long-tailed (a few users with hundreds)."""
    n_est = int(posts / 7.0) + 16
    counts = np.empty(0, dtype=np.int64)
    while counts.sum() < posts:
        more = 1 + np.floor(rng.lognormal(POSTS_MU, POSTS_SIGMA, n_est)).astype(np.int64)
        counts = np.concatenate([counts, more])
    k = int(np.searchsorted(np.cumsum(counts), posts))
    counts = counts[: k + 1].copy()
    counts[-1] -= counts.sum() - posts
    return counts


def crawled_stats(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(U, 8) int64 crawled statistics (STAT_NAMES) and the (U, 8) latent normals behind them.

    Gaussian copula with zero inflation: the latent z has correlation STAT_CORR; a column is 0
    where Phi(z) < its zero share, else log1p(value) = mean_nz + sd_nz * z' (z' the renormalised rest).
    """
    z = rng.standard_normal((n, 8)) @ np.linalg.cholesky(STAT_CORR).T
    u = ndtr(z)
    rest = np.clip((u - STAT_ZERO) / (1 - STAT_ZERO), 1e-9, 1 - 1e-9)
    logv = STAT_MEAN_NZ + STAT_SD_NZ * ndtri(rest)
    vals = np.maximum(1, np.round(np.expm1(np.maximum(logv, np.log(2))))).astype(np.int64)
    vals[u < STAT_ZERO] = 0
    return vals, z


def make_users(rng: np.random.Generator, posts: int, tree: CategoryTree) -> dict[str, np.ndarray]:
    """Per-user latent traits and profile fields, each an array of shape (U,) (``stats``: (U, 8))."""
    n_posts = posts_per_user(rng, posts)
    n = len(n_posts)
    stats, z = crawled_stats(rng, n)
    mix = 0.5 * z[:, 0] + 0.3 * z[:, 6] + 0.2 * z[:, 5]
    influence = 0.9 * (mix - mix.mean()) / max(mix.std(), 1e-9) + np.sqrt(1 - 0.81) * rng.standard_normal(n)
    offs, _, _, city_p, _ = place_table()
    age_years = np.clip(np.exp(rng.normal(1.3 + 0.35 * influence, 0.6)), 0.05, 11.0)
    u: dict[str, np.ndarray] = {
        "n_posts": n_posts, "stats": stats, "influence": influence,
        "identity": rng.standard_normal(n),
        "failed_crawl": rng.random(n) < STAT_ALL_ZERO,
        "has_alias": rng.random(n) < expit(0.95 + 0.5 * influence),
        "ispro": (rng.random(n) < expit(-1.6 + 0.9 * influence)).astype(np.float64),
        "photo_count": np.maximum(n_posts, np.round(np.expm1(np.log1p(stats[:, 5]) + rng.normal(0.1, 0.15, n)))),
        "firstdate": (T_START - age_years * 365.25 * DAY).astype(np.int64),
        "city": rng.choice(len(offs), n, p=city_p),
        "main_category": rng.choice(len(tree.categories), n, p=tree.category_p),
        "style": rng.choice(N_STYLES, n, p=_style_popularity()),
        "bright_mu": rng.normal(0.50, 0.08, n), "colour_mu": rng.beta(2.0, 2.0, n),
        "blur_mu": rng.uniform(-0.6, 2.2, n), "comp_skill": rng.beta(2.0, 2.0, n),
        "tag_mu": np.where(rng.random(n) < 0.12, 0.0, rng.lognormal(np.log(7), 0.8, n)),
        "title_w": rng.dirichlet([1.0, 0.6, 1.2, 1.2, 0.7, 0.3], n),
        "geo_p": np.where(rng.random(n) < 0.3, rng.beta(2.0, 3.4, n), 0.0),
        "video_p": np.where(rng.random(n) < 0.1, 0.2, 0.0),
        "insta": rng.random(n) < 0.12,
        "win_mid": rng.random(n),  # activity window (fractions of the span): heavy posters stay longer
        "win_len": rng.beta(1.2, 2.0, n) * (0.3 + 0.7 * np.minimum(1, np.log1p(n_posts) / 5.3)),
    }
    u["firstdatetaken"] = u["firstdate"] - (rng.exponential(1.5, n) * 365.25 * DAY).astype(np.int64)
    u["null_firstdate"] = rng.random(n) < 0.4
    u["null_tz"] = rng.random(n) < 0.3
    u["null_taken"] = rng.random(n) < 0.04
    u["null_count"] = rng.random(n) < 0.015
    u["null_desc"] = rng.random(n) < 0.45
    u["null_loc"] = rng.random(n) < 0.45
    u["favourites"] = _favourite_concepts(rng, u["main_category"], tree)
    return u


def _style_popularity() -> np.ndarray:
    w = 1.0 / np.arange(1, N_STYLES + 1) ** 0.6
    return w / w.sum()


def _favourite_concepts(rng: np.random.Generator, main_cat: np.ndarray, tree: CategoryTree) -> np.ndarray:
    """(U, 3) concept ids a user posts most: within the main category (or any category, 30%)."""
    cat_of_concept = tree.sub_parent[tree.concept_parent]
    by_cat = [np.flatnonzero(cat_of_concept == c) for c in range(len(tree.categories))]
    fav = np.empty((len(main_cat), 3), dtype=np.int64)
    any_cat = rng.random((len(main_cat), 3)) < 0.3
    r = rng.integers(0, 1 << 30, size=(len(main_cat), 3))
    other = rng.choice(len(tree.categories), size=(len(main_cat), 3), p=tree.category_p)
    for i, c in enumerate(main_cat.tolist()):
        for j in range(3):
            pool = by_cat[other[i, j] if any_cat[i, j] else c]
            fav[i, j] = pool[r[i, j] % len(pool)]
    return fav


def post_times(rng: np.random.Generator, users: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-post user id and UTC/local times; posts come in sessions (albums) of a few minutes.

    Returns ``user`` (P,), ``postdate`` (P,) epoch s UTC, ``local_hour`` (P,) float hours,
    ``local_weekday`` (P,) Monday=0, ``t_frac`` (P,) position in the 16-month span in [0, 1).
    """
    n_posts = users["n_posts"]
    user = np.repeat(np.arange(len(n_posts)), n_posts)
    p = len(user)
    first = np.zeros(p, dtype=bool)
    first[np.concatenate([[0], np.cumsum(n_posts)[:-1]])] = True
    session = np.cumsum(first | (rng.random(p) < 0.45)) - 1
    s_user = user[np.flatnonzero(np.diff(np.concatenate([[-1], session])))]
    lo = np.clip(users["win_mid"] - users["win_len"] / 2, 0, 1)[s_user]
    hi = np.clip(users["win_mid"] + users["win_len"] / 2, 0, 1)[s_user]
    day = np.floor((lo + (hi - lo) * rng.random(len(s_user))) * (SPAN_DAYS - 1)).astype(np.int64)
    hour = rng.choice(24, len(s_user), p=HOUR_W / HOUR_W.sum())
    start = day * DAY + hour * 3600 + rng.integers(0, 3600, len(s_user))
    within = rng.integers(5, 300, p)
    within[first | (np.diff(np.concatenate([[-1], session])) > 0)] = 0
    local = start[session] + _cumsum_by_group(within, session)
    offs = place_table()[0][users["city"][user]]
    utc = np.clip(T_START + local - offs * 60, T_START, T_END - 1)
    local = utc - T_START + offs * 60
    return {"user": user, "postdate": utc, "local_hour": (local % DAY) / 3600.0,
            "local_weekday": ((local + T_START) // DAY + 3) % 7, "t_frac": (utc - T_START) / (T_END - T_START)}


def _cumsum_by_group(x: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``x`` restarting at each new value of the sorted ``group``."""
    c = np.cumsum(x)
    starts = np.flatnonzero(np.diff(np.concatenate([[-1], group])))
    return c - np.repeat(c[starts] - x[starts], np.diff(np.concatenate([starts, [len(x)]])))


def post_content(rng: np.random.Generator, users: dict[str, np.ndarray], user: np.ndarray,
                 tree: CategoryTree) -> dict[str, np.ndarray]:
    """Per-post category, visual style, image parameters, tag/title habits, geotag and media type."""
    p = len(user)
    cat_of_concept = tree.sub_parent[tree.concept_parent]
    by_cat = [np.flatnonzero(cat_of_concept == c) for c in range(len(tree.categories))]
    rand_cat = rng.choice(len(tree.categories), p, p=tree.category_p)
    r = rng.integers(0, 1 << 30, p)
    rand_concept = np.array([by_cat[c][k % len(by_cat[c])] for c, k in zip(rand_cat.tolist(), r.tolist())],
                            dtype=np.int64)
    fav = users["favourites"][user, rng.choice(3, p, p=[0.6, 0.25, 0.15])]
    concept = np.where(rng.random(p) < 0.75, fav, rand_concept)
    concept_style = np.arange(len(tree.concepts)) * 7 % N_STYLES
    pick = rng.random(p)
    style = np.where(pick < 0.5, users["style"][user],
                     np.where(pick < 0.8, concept_style[concept], rng.integers(0, N_STYLES, p)))
    sx, sy = _subject_position(rng, users["comp_skill"][user])
    title_cdf = np.cumsum(users["title_w"][user], axis=1)
    return {
        "concept": concept, "style": style,
        "brightness": np.clip(users["bright_mu"][user] + rng.normal(0, 0.12, p), 0.08, 0.92),
        "colourfulness": np.clip(users["colour_mu"][user] + rng.normal(0, 0.15, p), 0.0, 1.0),
        "blur": np.maximum(0.0, users["blur_mu"][user] + rng.normal(0, 0.7, p)),
        "subject_x": sx, "subject_y": sy, "subject_size": rng.uniform(0.18, 0.38, p),
        "shape": rng.integers(0, 3, p), "aspect": rng.choice(3, p, p=[0.6, 0.25, 0.15]),
        "image_seed": rng.integers(0, 2**63 - 1, p, dtype=np.int64),
        "n_tags": np.minimum(60, rng.poisson(users["tag_mu"][user])),
        "title_kind": (rng.random(p)[:, None] > title_cdf).sum(axis=1).clip(0, 5),
        "geotagged": rng.random(p) < users["geo_p"][user],
        "video": rng.random(p) < users["video_p"][user],
        "alias_dropped": rng.random(p) < 0.04,
    }


def _subject_position(rng: np.random.Generator, skill: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subject centre in [0.12, 0.88]^2: near a rule-of-thirds point with prob ``skill``, else uniform."""
    p = len(skill)
    near = rng.random(p) < skill
    tx = np.where(rng.random(p) < 0.5, 1 / 3, 2 / 3) + rng.normal(0, 0.035, p)
    ty = np.where(rng.random(p) < 0.5, 1 / 3, 2 / 3) + rng.normal(0, 0.035, p)
    x = np.where(near, tx, rng.uniform(0.12, 0.88, p))
    y = np.where(near, ty, rng.uniform(0.12, 0.88, p))
    return np.clip(x, 0.12, 0.88), np.clip(y, 0.12, 0.88)


def thirds_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distance (fraction of the image side) from (x, y) to the nearest rule-of-thirds point."""
    dx = np.minimum(np.abs(x - 1 / 3), np.abs(x - 2 / 3))
    dy = np.minimum(np.abs(y - 1 / 3), np.abs(y - 2 / 3))
    return np.hypot(dx, dy)


def hot_grid(rng: np.random.Generator, n_items: int, rate: float, width_days: tuple[float, float],
             height: tuple[float, float]) -> np.ndarray:
    """(n_items, SPAN_DAYS) time-varying popularity bumps: Poisson(rate) Gaussian bumps per item."""
    days = np.arange(SPAN_DAYS)
    grid = np.zeros((n_items, SPAN_DAYS))
    counts = rng.poisson(rate, n_items)
    for item, k in enumerate(counts.tolist()):
        for _ in range(k):
            c, w, h = rng.uniform(0, SPAN_DAYS), rng.uniform(*width_days), rng.uniform(*height)
            grid[item] += h * np.exp(-0.5 * ((days - c) / w) ** 2)
    return grid


def raw_effects(rng: np.random.Generator, users: dict, posts: dict, tree: CategoryTree) -> dict[str, np.ndarray]:
    """Un-scaled effect components per post (P,), before ``simulate`` rescales each group."""
    u = posts["user"]
    cat = rng.standard_normal(len(tree.categories))
    sub = 0.8 * rng.standard_normal(len(tree.subcategories))
    con = rng.standard_normal(len(tree.concepts))
    c = posts["concept"]
    s = tree.concept_parent[c]
    hour = np.cos(2 * np.pi * (posts["local_hour"] - 20.0) / 24)
    weekday = posts["local_weekday"]
    day = np.minimum((posts["postdate"] - T_START) // DAY, SPAN_DAYS - 1)
    hot_c = hot_grid(rng, len(tree.concepts), 0.6, (8, 35), (0.5, 1.5))
    hot_s = hot_grid(rng, N_STYLES, 2.0, (15, 45), (0.5, 1.2))
    n_words = posts["n_words"]
    kind = posts["title_kind"]
    return {
        "user_influence": users["influence"][u],
        "user_identity": users["identity"][u],
        "category": cat[tree.sub_parent[s]] + sub[s] + con[c],
        "image": (-8.0 * (posts["brightness"] - 0.55) ** 2 + 0.8 * posts["colourfulness"] - 0.35 * posts["blur"]
                  + 0.6 * np.exp(-0.5 * (thirds_distance(posts["subject_x"], posts["subject_y"]) / 0.08) ** 2)),
        "text": (1.0 * (1 - np.exp(-n_words / 6.0)) + 0.35 * (kind >= 2) - 0.15 * (kind == 1)
                 + 0.03 * np.minimum(posts["title_words"], 10)),
        "time_of_day": hour + 0.8 * (weekday >= 5) + 0.25 * (weekday == 4),
        "trend": np.exp(-posts["t_frac"] / 0.2),
        "geo": posts["geotagged"].astype(np.float64),
        "hot": hot_c[c, day] + hot_s[posts["style"], day],
        "media": -posts["video"].astype(np.float64),
    }


def assign_split(rng: np.random.Generator, t_frac: np.ndarray, test_fraction: float) -> np.ndarray:
    """(P,) bool, True for test: the latest posts by a noisy date, so the split is mostly by time."""
    n_test = int(round(test_fraction * len(t_frac)))
    score = t_frac + rng.normal(0, 0.06, len(t_frac))
    is_test = np.zeros(len(t_frac), dtype=bool)
    if n_test:
        is_test[np.argsort(score, kind="stable")[len(t_frac) - n_test:]] = True
    return is_test


def assign_pids(rng: np.random.Generator, t_frac: np.ndarray) -> np.ndarray:
    """(P,) unique int64 Pids in about 775..1118356.

    As in the real data (Spearman(Pid, date) ~ 0.5 in train), 75% of Pids rise with the post date
    (a band from ~150k to ~570k) and 25% are spread uniformly over the whole range.
    """
    p = len(t_frac)
    band = 150_000 + 420_000 * t_frac + rng.normal(0, 15_000, p)
    pid = np.where(rng.random(p) < 0.75, band, rng.uniform(775, 1_118_357, p))
    pid = np.clip(np.round(pid), 775, 1_118_356).astype(np.int64)
    order = np.argsort(pid, kind="stable")
    ranks = np.arange(p)
    fixed = np.maximum.accumulate(pid[order] - ranks) + ranks  # strictly increasing, minimal shifts
    out = np.empty(p, dtype=np.int64)
    out[order] = fixed
    return out


def make_uids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` unique anonymised user ids ``<digits>@N<digits>`` (no zero padding)."""
    out, seen = [], set()
    a = rng.integers(1, 130_000, n + 64)
    b = rng.integers(0, 90, n + 64)
    for x, y in zip(a.tolist(), b.tolist()):
        uid = f"{x}@N{y}"
        if uid not in seen:
            seen.add(uid)
            out.append(uid)
        if len(out) == n:
            return out
    while len(out) < n:  # practically never
        uid = f"{int(rng.integers(130_000, 10**7))}@N{int(rng.integers(0, 90))}"
        if uid not in seen:
            seen.add(uid)
            out.append(uid)
    return out


def geotags(rng: np.random.Generator, geotagged: np.ndarray,
            home_city: np.ndarray) -> tuple[list[str], list[str], list[str]]:
    """(Latitude, Longitude, Geoaccuracy) strings per post; untagged posts get ``"0"``, ``""``, ``"0"``."""
    _, _, cities, city_p, _ = place_table()
    p = len(geotagged)
    travel = rng.random(p) < 0.2
    city = np.where(travel, rng.choice(len(cities), p, p=city_p), home_city)
    lat = np.array([c[2] for c in cities])[city] + rng.normal(0, 0.06, p)
    lon = np.array([c[3] for c in cities])[city] + rng.normal(0, 0.08, p)
    acc = rng.choice([16, 15, 14, 13, 12, 11, 6, 3], p, p=[.55, .1, .08, .07, .05, .08, .04, .03])
    lat_s, lon_s, acc_s = [], [], []
    for g, a, o, c in zip(geotagged.tolist(), lat.tolist(), lon.tolist(), acc.tolist()):
        if g:
            lat_s.append(_coord(a)), lon_s.append(_coord(o)), acc_s.append(str(c))
        else:
            lat_s.append("0"), lon_s.append(""), acc_s.append("0")
    return lat_s, lon_s, acc_s


def _coord(v: float) -> str:
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0.000001" if s in ("0", "-0") else s
