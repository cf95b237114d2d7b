"""The SMPD simulator: the project's embedded default data set, in the exact 2022+ release layout.

``simulate_smpd(out_dir, SimConfig(...))`` writes ``train_allmetadata_json/``,
``test_allmetadata_json/``, ``train/<Uid>/<Pid>.jpg``, ``test/<Uid>/<Pid>.jpg`` (about 1% of
listed images deliberately missing, as in the real archives), the unofficial crawled
``user_additional.txt`` (FORMAT.md §10), and an oracle Parquet file beside the directory.

Label model. Each post has a latent score ``z = signal + noise`` with ``var(z) = 1``;
``signal`` is the sum of the planted effects below, ``var(signal) = signal_r2`` (0.78)
and ``noise ~ N(0, 1 - signal_r2)``. The label is ``Q(Phi(z))`` where ``Q`` is the real
SMPD label quantile function (LABEL_Q), then discretised as the real labels are
(``round(log2(max(2, round(2**x))), 2)``: 1.0, 1.58, 2.0, 2.32, ...). Near the median one
latent sd is about 2.4 label units. Planted effects, as sd of their contribution in latent
units before the final rescaling by ``sqrt(0.78 / var(sum))`` (about x1.07):

* user influence, +, sd 0.50: a per-user latent tied to the crawled views/followers/photo
  counts (corr ~0.9 with log views), to ``photo_count``, ``ispro`` (logit +0.9 per sd),
  account age (older with influence) and Pathalias presence (logit +0.5 per sd);
* user identity, sd 0.33: a per-user random effect in no metadata (only a user's other
  labels reveal it);
* category, sd 0.28: nested normal effects of category (1), subcategory (0.8) and concept (1);
* image, sd 0.32: brightness inverted U (``-8 (b - 0.55)^2``), colourfulness + (0.8 per
  unit saturation), blur - (-0.35 per px of box-blur radius at 320 px), composition + (0.6
  when the subject sits on a rule-of-thirds point, Gaussian falloff over 0.08 of the side);
  users differ in their mean brightness, colourfulness, blur and composition skill;
* text, sd 0.25: tag count + saturating (``1 - exp(-n/6)``), a human-written title +0.35,
  a camera-default title (``DSC_0412``) -0.15, +0.03 per title word up to 10;
* time of day, sd 0.15: local posting hour (``cos`` peak at 20:00 in the user's own
  timezone) plus weekend +0.8 and Friday +0.25 (raw units);
* trend, sd 0.08: decays over the span (``exp(-t / 0.2)``, t the fraction of the 16 months):
  early posts score higher, as the real decile means (6.78 -> ~6.4) do;
* geo, +, sd 0.05: geotagged posts (~11%) score ~0.15 latent higher;
* hot, sd 0.22: time-varying popularity bumps per concept (Poisson(0.6) bumps, 8-35 days
  wide) and per visual style (= the image's dominant hue; Poisson(2) bumps, 15-45 days), so
  recent posts with the same concept or look predict a post's label;
* media, sd 0.04: videos (~2%) score lower;
* noise, sd sqrt(0.22) = 0.47.

The trend contribution also carries one constant shift that gives the earliest
``1 - test_fraction`` of posts (the train-like part) mean latent 0, so the train labels
follow the real train marginal (mean 6.41, sd 2.47) and the later test posts score lower.

Oracle: Spearman(expected_label, label) ~ 0.87 (``summary["oracle_src"]``).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import ndtr
from scipy.stats import spearmanr

from featurestore import sim_writer as w
from featurestore.sim_images import write_all_images
from featurestore.sim_text import (CategoryTree, ascii_fold, build_tree, format_offset, make_description,
                                   make_pathaliases, make_tags, make_title, place_table)
from featurestore.sim_world import (assign_pids, assign_split, geotags, make_uids, make_users, post_content,
                                    post_times, raw_effects, thirds_distance)

log = logging.getLogger(__name__)

# The real label marginal: quantiles of all 305,613 real train labels (real_train_labels_time_ordered.csv)
# at LABEL_P. The knot at p=0.0053 (not the real 0.0134) makes 1.3% of labels round to exactly 1.0
# after the log2 discretisation, as in the real file.
LABEL_P = np.array([0, .0053, .02, .03, .05, .075, .1, .15, .2, .25, .3, .35, .4, .45, .5, .55, .6, .65, .7, .75, .8,
                    .85, .9, .93, .95, .97, .98, .99, .995, .999, .9999, 1])
LABEL_Q = np.array([1.0, 1.0, 1.58, 2.0, 2.58, 3.0, 3.32, 3.91, 4.32, 4.7, 5.04, 5.32, 5.61, 5.91, 6.23, 6.54, 6.87,
                    7.2, 7.58, 7.98, 8.43, 8.97, 9.72, 10.26, 10.73, 11.4, 11.86, 12.79, 13.77, 15.25, 16.28, 16.56])
EFFECT_SD = {"user_influence": 0.50, "user_identity": 0.33, "category": 0.28, "image": 0.32, "text": 0.25,
             "time_of_day": 0.15, "trend": 0.08, "geo": 0.05, "hot": 0.22, "media": 0.04}
STREAMS = ("users", "times", "content", "text", "effects", "noise", "split", "ids", "geo", "images")


@dataclass(frozen=True)
class SimConfig:
    """Simulator settings (params.yaml section ``simulate``)."""

    posts: int = 32000            # total posts, train + test
    test_fraction: float = 0.37   # share of posts in the unlabelled test files (real: 180,581 / 486,194)
    seed: int = 42
    images: bool = True           # write JPEGs (False: paths still listed, no files)
    image_size: int = 320         # longest side in px
    workers: int = 2              # processes for JPEG encoding (output does not depend on it)
    signal_r2: float = 0.78       # share of the latent label variance explained by the planted effects
    missing_images: float = 0.01  # share of listed images not written (the real archives miss some)
    crawled_stats: bool = True    # also write OUT/user_additional.txt (unofficial crawled user statistics)
    progress: bool = True         # tqdm bar while writing images

    def __post_init__(self) -> None:
        if self.posts < 1:
            raise ValueError(f"simulate.posts must be >= 1, got {self.posts}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"simulate.test_fraction must be in [0, 1), got {self.test_fraction}")
        if not 0.0 < self.signal_r2 < 1.0:
            raise ValueError(f"simulate.signal_r2 must be in (0, 1), got {self.signal_r2}")
        if not 0.0 <= self.missing_images < 1.0:
            raise ValueError(f"simulate.missing_images must be in [0, 1), got {self.missing_images}")
        if self.image_size < 8 or self.workers < 1:
            raise ValueError("simulate.image_size must be >= 8 and simulate.workers >= 1")

    @classmethod
    def from_dict(cls, d: dict | None) -> "SimConfig":
        """Build from a params mapping; unknown keys raise ValueError naming them."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"params section 'simulate': unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


def latent_to_label(z: np.ndarray) -> np.ndarray:
    """Latent N(0, 1) scores (P,) -> SMPD labels (P,): real quantile map, then log2-count rounding."""
    x = np.interp(ndtr(z), LABEL_P, LABEL_Q)
    return np.round(np.log2(np.maximum(2.0, np.round(np.exp2(x)))), 2)


def expected_label(signal: np.ndarray, noise_sd: float, nodes: int = 40) -> np.ndarray:
    """E[latent_to_label(signal + noise)] over noise ~ N(0, noise_sd^2), by Gauss-Hermite quadrature."""
    x, wts = np.polynomial.hermite_e.hermegauss(nodes)
    wts = wts / wts.sum()
    out = np.zeros(len(signal))
    for xi, wi in zip(x, wts):
        out += wi * latent_to_label(signal + noise_sd * xi)
    return out


def scale_effects(raw: dict[str, np.ndarray], signal_r2: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Centre each raw effect, give it its EFFECT_SD, then rescale all so ``var(signal) = signal_r2``."""
    contrib = {}
    for name, sd in EFFECT_SD.items():
        x = np.asarray(raw[name], dtype=np.float64)
        s = x.std()
        contrib[name] = sd * (x - x.mean()) / s if s > 0 else np.zeros_like(x)
    signal = sum(contrib.values())
    k = np.sqrt(signal_r2) / signal.std() if signal.std() > 0 else 1.0
    return {n: c * k for n, c in contrib.items()}, signal * k


def post_texts(rng: np.random.Generator, users: dict, posts: dict, tree: CategoryTree) -> tuple[list[str], list[str]]:
    """(titles, Alltags strings), one per post (P,)."""
    cities = place_table()[2]
    city = users["city"][posts["user"]]
    names = [c[0] for c in cities]
    folded = [ascii_fold(n) for n in names]
    u = rng.random((len(city), 4)).tolist()
    concepts, subs = posts["concept"].tolist(), tree.concept_parent[posts["concept"]].tolist()
    titles = [make_title(k, uu, tree.concepts[c], tree.sub_roots[s], names[ci])
              for k, uu, c, s, ci in zip(posts["title_kind"].tolist(), u, concepts, subs, city.tolist())]
    city_tag = [folded[ci] for ci in city.tolist()]
    tags = make_tags(rng, posts["n_tags"], posts["concept"], tree, city_tag, users["insta"][posts["user"]])
    return titles, tags


def user_literals(rng: np.random.Generator, users: dict, uids: list[str], aliases: list[str],
                  tree: CategoryTree) -> dict[str, list[str]]:
    """Per-user JSON literals (U,) of the 7b user-file columns (pandas style) other than Pid."""
    offs, tzs, cities, _, _ = place_table()
    n = len(uids)
    taken = np.datetime_as_string(users["firstdatetaken"].astype("datetime64[s]"))
    lit: dict[str, list[str]] = {c: [] for c in w.USER_COLUMNS if c != "Pid"}
    for i in range(n):
        c = int(users["city"][i])
        roots = tree.sub_roots[tree.concept_parent[users["favourites"][i, 0]]]
        desc = make_description(rng, cities[c][0], roots, aliases[i] if users["has_alias"][i] else "portfolio")
        null_count = bool(users["null_count"][i])
        lit["Uid"].append(w.pandas_string(uids[i]))
        first = None if users["null_firstdate"][i] else str(users["firstdate"][i])
        lit["photo_firstdate"].append(w.pandas_string(first))
        lit["photo_count"].append(w.pandas_float(None if null_count else float(users["photo_count"][i])))
        lit["ispro"].append(w.pandas_float(None if null_count else float(users["ispro"][i])))
        lit["timezone_offset"].append(w.pandas_string(None if users["null_tz"][i] else format_offset(int(offs[c]))))
        first_taken = None if users["null_taken"][i] else taken[i].replace("T", " ")
        lit["photo_firstdatetaken"].append(w.pandas_string(first_taken))
        lit["timezone_id"].append(w.pandas_string(None if users["null_tz"][i] else tzs[c]))
        lit["user_description"].append(w.pandas_string(None if users["null_desc"][i] else desc))
        loc = f"{cities[c][0]}, {cities[c][1]}"
        lit["location_description"].append(w.pandas_string(None if users["null_loc"][i] else loc))
    return lit


def write_split(root: Path, split: str, rows: np.ndarray, world: dict, user_lit: dict[str, list[str]]) -> list[str]:
    """Write the metadata files of one split for post indices ``rows`` (sorted by Pid); returns image paths."""
    folder = root / f"{split}_allmetadata_json"
    folder.mkdir(parents=True, exist_ok=True)
    d = split_literals(world, rows)
    pid, uid, n = d["pid"], d["uid"], len(rows)
    cols = {
        "category": {"Category": d["cat"], "Concept": d["concept"], "Pid": pid, "Uid": uid, "Subcategory": d["sub"]},
        "text": {"Alltags": d["tags"], "Pid": pid, "Uid": uid, "Mediatype": d["media"], "Title": d["title"]},
        "temporalspatial_information": {"Postdate": d["date"], "Uid": uid, "Pid": pid, "Longitude": d["lon"],
                                        "Geoaccuracy": d["acc"], "Latitude": d["lat"]},
        "additional_information": {"Mediastatus": ['"ready"'] * n, "Pathalias": d["alias"], "Ispublic": ['"1"'] * n,
                                   "Pid": pid, "Uid": uid},
    }
    for name, c in cols.items():
        w.write_record_file(folder / f"{split}_{name}.json", w.RECORD_KEYS[name], c)
    del cols, d
    user_of = world["posts"]["user"][rows].tolist()
    ucols = {k: [v[u] for u in user_of] for k, v in user_lit.items()}
    ucols["Pid"] = [str(p) for p in world["pid"][rows].tolist()]
    w.write_user_file(folder / f"{split}_user_data.json", ucols)
    paths = [f"{split}/{world['uids'][u]}/{p}.jpg" for u, p in zip(user_of, world["pid"][rows].tolist())]
    w.write_lines(folder / f"{split}_img_filepath.txt", paths)
    if split == "train":
        w.write_labels(folder / "train_label.txt", world["label"][rows])
    return paths


def simulate_world(cfg: SimConfig) -> dict:
    """Draw users, posts, texts, effects and labels (no files). Post arrays are (P,), in user order."""
    rngs = dict(zip(STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(len(STREAMS)))))
    tree = build_tree()
    users = make_users(rngs["users"], cfg.posts, tree)
    posts = post_times(rngs["times"], users)
    posts.update(post_content(rngs["content"], users, posts["user"], tree))
    titles, tags = post_texts(rngs["text"], users, posts, tree)
    posts["n_words"] = np.array([len(t.split()) for t in tags])
    posts["title_words"] = np.array([len(t.split()) for t in titles])
    contrib, signal = scale_effects(raw_effects(rngs["effects"], users, posts, tree), cfg.signal_r2)
    early = posts["t_frac"] <= np.quantile(posts["t_frac"], 1.0 - cfg.test_fraction)
    shift = float(signal[early].mean())  # the earliest (train-like) posts get the real label marginal
    contrib["trend"] = contrib["trend"] - shift
    signal = signal - shift
    noise_sd = float(np.sqrt(1.0 - cfg.signal_r2))
    noise = rngs["noise"].normal(0.0, noise_sd, len(signal))
    uids = make_uids(rngs["ids"], len(users["n_posts"]))
    aliases = make_pathaliases(rngs["ids"], len(uids))
    return {"tree": tree, "users": users, "posts": posts, "titles": titles, "tags": tags, "contrib": contrib,
            "signal": signal, "noise": noise, "label": latent_to_label(signal + noise),
            "expected": expected_label(signal, noise_sd),
            "is_test": assign_split(rngs["split"], posts["t_frac"], cfg.test_fraction),
            "pid": assign_pids(rngs["split"], posts["t_frac"]), "uids": uids, "aliases": aliases,
            "geo": geotags(rngs["geo"], posts["geotagged"], users["city"][posts["user"]]),
            "missing": rngs["images"].random(len(signal)) < cfg.missing_images, "rng_desc": rngs["users"]}


def split_literals(world: dict, rows: np.ndarray) -> dict[str, list[str]]:
    """JSON literal columns (R,) of the record files for post indices ``rows``."""
    tree, users, posts = world["tree"], world["users"], world["posts"]
    user, concept = posts["user"][rows], posts["concept"][rows]
    sub = tree.concept_parent[concept]
    has_alias = users["has_alias"][user] & ~posts["alias_dropped"][rows]
    r = rows.tolist()
    pick = lambda col: [col[i] for i in r]  # noqa: E731
    lat, lon, acc = world["geo"]
    return {
        "pid": w.encode_strings([str(p) for p in world["pid"][rows].tolist()]),
        "uid": w.encode_vocab(world["uids"], user),
        "cat": w.encode_vocab(tree.categories, tree.sub_parent[sub]),
        "sub": w.encode_vocab(tree.subcategories, sub), "concept": w.encode_vocab(tree.concepts, concept),
        "tags": w.encode_strings(pick(world["tags"])), "title": w.encode_strings(pick(world["titles"])),
        "media": w.encode_vocab(["photo", "video"], posts["video"][rows].astype(np.int64)),
        "date": w.encode_strings([str(t) for t in posts["postdate"][rows].tolist()]),
        "lat": w.encode_strings(pick(lat)), "lon": w.encode_strings(pick(lon)), "acc": w.encode_strings(pick(acc)),
        "alias": w.encode_vocab(world["aliases"] + ["None"], np.where(has_alias, user, len(world["aliases"]))),
    }


def oracle_table(world: dict, written: np.ndarray) -> pa.Table:
    """One row per post, sorted by Pid: hidden labels, noise-free expectation, effect contributions."""
    posts, order = world["posts"], np.argsort(world["pid"], kind="stable")
    cols = {
        "pid": world["pid"], "split": np.where(world["is_test"], "test", "train"),
        "uid": np.array(world["uids"], dtype=object)[posts["user"]], "postdate": posts["postdate"],
        "label": world["label"], "expected_label": world["expected"],
        "signal": world["signal"], "noise": world["noise"],
        **world["contrib"],
        "img_brightness": posts["brightness"], "img_colourfulness": posts["colourfulness"], "img_blur": posts["blur"],
        "img_thirds_dist": thirds_distance(posts["subject_x"], posts["subject_y"]),
        "style": posts["style"], "image_written": written,
    }
    return pa.table({k: np.asarray(v)[order] for k, v in cols.items()})


def _clean(out: Path) -> None:
    """Remove what an earlier run wrote in ``out`` (stale images must not survive)."""
    for name in ("train", "test", "train_allmetadata_json", "test_allmetadata_json"):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    (out / "user_additional.txt").unlink(missing_ok=True)


def simulate_smpd(out_dir: Path, config: SimConfig, oracle_path: Path | None = None) -> dict:
    """Write a simulated SMPD directory (2022+ layout) and its oracle; return a summary dict.

    ``oracle_path`` defaults to ``<out_dir>.oracle.parquet`` beside the directory. The same
    config gives byte-identical files, whatever ``workers`` is.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    oracle_path = Path(oracle_path) if oracle_path is not None else out.with_name(out.name + ".oracle.parquet")
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)
    world = simulate_world(config)
    users = world["users"]
    user_lit = user_literals(world["rng_desc"], users, world["uids"], world["aliases"], world["tree"])
    order = np.argsort(world["pid"], kind="stable")
    paths = {s: write_split(out, s, order[world["is_test"][order] == (s == "test")], world, user_lit)
             for s in ("train", "test")}
    if config.crawled_stats:
        keep = np.flatnonzero(users["has_alias"])
        stats = np.where(users["failed_crawl"][keep, None], 0, users["stats"][keep])
        w.write_crawled_stats(out / "user_additional.txt", ["None"] + [world["aliases"][i] for i in keep],
                              np.vstack([np.zeros((1, 8), dtype=np.int64), stats]))
    t_meta = time.perf_counter() - t0
    written = np.zeros(len(world["pid"]), dtype=bool)
    if config.images:
        written = _write_images(out, world, paths, order, config)
    oracle_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(oracle_table(world, written), oracle_path)
    return _summary(world, written, oracle_path, t_meta, time.perf_counter() - t0)


def _write_images(out: Path, world: dict, paths: dict[str, list[str]], order: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Render the listed images except the planted missing ones; returns (P,) bool written."""
    is_test = world["is_test"][order]
    rows = np.concatenate([order[~is_test], order[is_test]])
    rel = paths["train"] + paths["test"]
    keep = ~world["missing"][rows]
    todo = rows[keep]
    params = {k: world["posts"][k][todo] for k in ("aspect", "style", "brightness", "colourfulness", "blur",
                                                   "subject_x", "subject_y", "subject_size", "shape", "image_seed")}
    todo_paths = [r for r, k in zip(rel, keep.tolist()) if k]
    write_all_images(out, todo_paths, params, cfg.image_size, cfg.workers, cfg.progress)
    written = np.zeros(len(world["pid"]), dtype=bool)
    written[todo] = True
    return written


def _summary(world: dict, written: np.ndarray, oracle_path: Path, t_meta: float, t_all: float) -> dict:
    label, expected, test = world["label"], world["expected"], world["is_test"]
    src = lambda m: float(spearmanr(label[m], expected[m]).statistic) if m.sum() > 2 else float("nan")  # noqa: E731
    return {"posts": int(len(label)), "train_posts": int((~test).sum()), "test_posts": int(test.sum()),
            "users": int(len(world["uids"])), "images_written": int(written.sum()),
            "label_mean": float(label[~test].mean()) if (~test).any() else float("nan"),
            "label_sd": float(label[~test].std()) if (~test).any() else float("nan"),
            "oracle_src": src(np.ones(len(label), dtype=bool)), "oracle_src_train": src(~test),
            "oracle_src_test": src(test), "oracle_path": str(oracle_path),
            "seconds_metadata": round(t_meta, 2), "seconds_total": round(t_all, 2)}
