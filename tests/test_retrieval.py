"""Retrieval: time-safe neighbours against brute force, persisted-index staleness, HNSW recall,
the engineered embedding's train-only scaler, and leakage-freedom of the sequence features."""

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feature_tables import write_tables

from featurestore.embeddings import (EngineeredEmbeddingConfig, embedding_arrays, embedding_table,
                                     engineered_embeddings)
from featurestore.features_sequence import SequenceConfig, neighbour_features, sequence_tables
from featurestore.table_specs import TableSpec, get_table
from featurestore.retrieval import (METHODS, IndexConfig, StaleIndexError, build_index, load_index, save_index,
                              search_before, time_safe_neighbours)
from featurestore.paths import Paths

# Tables this work adds (the lead registers them in featurestore/table_specs.py); until then the
# tests that write them register them for their own duration only.
_SPECS = {"embed_engineered": "data/embeddings/engineered.parquet",
          "features_sequence": "data/features/sequence.parquet", "sequence_ids": "data/neighbours/sequence_ids.parquet"}


@pytest.fixture
def tables_registered(monkeypatch):
    from featurestore import table_specs as registry

    for name, path in _SPECS.items():
        try:
            get_table(name)
        except KeyError:
            monkeypatch.setitem(registry._TABLES._items, name, TableSpec(name=name, path=path, stage=name))


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(emb, postdate, k, tiebreak=None):
    """Reference: for each row, sort the strictly earlier rows by (-sim, postdate, tiebreak)."""
    n = len(emb)
    tb = np.arange(n) if tiebreak is None else tiebreak
    S = emb.astype(np.float64) @ emb.astype(np.float64).T
    ids = np.full((n, k), -1, np.int64)
    sims = np.full((n, k), np.nan)
    for i in range(n):
        c = np.flatnonzero(postdate < postdate[i])
        o = c[np.lexsort((tb[c], postdate[c], -S[i, c]))][:k]
        ids[i, :len(o)], sims[i, :len(o)] = o, S[i, o]
    return ids, sims


@pytest.mark.parametrize("method", METHODS)
def test_neighbours_strictly_earlier_with_many_ties(method):
    rng = np.random.default_rng(0)
    n, k = 900, 8
    emb = _unit(rng, n, 24)
    postdate = rng.integers(0, 40, n)  # ~22 posts per second: many same-time posts
    postdate[:150] = 7                 # a tie group larger than a block
    ids, sims = time_safe_neighbours(emb, postdate, k, block=64, method=method, tile=100)
    assert ids.shape == (n, k) and ids.dtype == np.int64 and sims.dtype == np.float32
    valid = ids >= 0
    rows = np.repeat(np.arange(n)[:, None], k, axis=1)
    assert not (ids == rows).any()
    assert (postdate[ids[valid]] < postdate[rows[valid]]).all()
    assert np.isnan(sims[~valid]).all() and np.isfinite(sims[valid]).all()
    n_earlier = np.searchsorted(np.sort(postdate), postdate, "left")
    if method in ("exact", "flat"):
        assert (valid.sum(axis=1) == np.minimum(n_earlier, k)).all()
    assert (valid.sum(axis=1) <= np.minimum(n_earlier, k)).all()
    assert (np.diff(np.where(valid, sims, -2.0), axis=1) <= 1e-6).all()  # most similar first


@pytest.mark.parametrize("method", ["exact", "flat"])
def test_exact_methods_equal_brute_force(method):
    rng = np.random.default_rng(1)
    n, k = 700, 6
    emb = _unit(rng, n, 20)
    postdate = rng.integers(0, 120, n)
    pid = rng.permutation(n) * 3 + 11
    ref_ids, ref_sims = brute_force(emb, postdate, k, pid)
    ids, sims = time_safe_neighbours(emb, postdate, k, block=50, method=method, tiebreak=pid, tile=128)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(sims, ref_sims, atol=1e-5)


def test_candidates_restrict_the_neighbours_exactly():
    rng = np.random.default_rng(3)
    n, k = 500, 5
    emb = _unit(rng, n, 16)
    postdate = rng.integers(0, 90, n)
    cand = rng.random(n) < 0.4
    S = emb.astype(np.float64) @ emb.astype(np.float64).T
    ids, sims = time_safe_neighbours(emb, postdate, k, block=40, method="exact", tile=64, candidates=cand)
    for i in range(n):
        c = np.flatnonzero(cand & (postdate < postdate[i]))
        ref = c[np.lexsort((c, postdate[c], -S[i, c]))][:k]
        got = ids[i][ids[i] >= 0]
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_allclose(sims[i, :len(ref)], S[i, ref], atol=1e-5)
    only = np.zeros(n, bool)
    only[::50] = True  # searching a few rows gives those rows' full-run answers
    part, _ = time_safe_neighbours(emb, postdate, k, block=40, method="exact", tile=64, candidates=cand, rows=only)
    np.testing.assert_array_equal(part[only], ids[only])
    with pytest.raises(ValueError, match="exact"):
        time_safe_neighbours(emb, postdate, k, method="flat", candidates=cand)


def test_exact_similarities_do_not_depend_on_the_blocking():
    """A float32 GEMM rounds by matrix shape; the exact search's returned similarities do not."""
    rng = np.random.default_rng(4)
    n, k = 800, 6
    emb = _unit(rng, n, 37)
    postdate = rng.integers(0, 200, n)
    ids, sims = time_safe_neighbours(emb, postdate, k, block=800, method="exact")
    only = np.zeros(n, bool)
    only[::97] = True
    for block, tile, rows in ((1, 1024, None), (33, 50, None), (1, 7, only)):
        got_ids, got_sims = time_safe_neighbours(emb, postdate, k, block=block, method="exact", tile=tile, rows=rows)
        keep = np.ones(n, bool) if rows is None else rows
        np.testing.assert_array_equal(got_ids[keep], ids[keep])
        np.testing.assert_array_equal(got_sims[keep], sims[keep])  # bitwise, NaN padding included


def test_tie_rule_on_equal_similarities():
    """Exactly equal similarities: the candidate first in (postdate, tiebreak) order wins."""
    rng = np.random.default_rng(2)
    n, k = 400, 5
    emb = (rng.integers(-1, 2, (n, 8)) * 0.25).astype(np.float32)  # exact products, many equal
    postdate = rng.integers(0, 60, n)
    ref_ids, ref_sims = brute_force(emb, postdate, k)
    ids, sims = time_safe_neighbours(emb, postdate, k, block=32, method="exact", tile=40)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(np.nan_to_num(sims, nan=-9), np.nan_to_num(ref_sims, nan=-9).astype(np.float32))


def test_hnsw_recall_vs_flat():
    rng = np.random.default_rng(3)
    emb, queries = _unit(rng, 4000, 32), _unit(rng, 200, 32)
    _, truth = build_index(emb, "flat").search(queries, 10)
    _, got = build_index(emb, "hnsw", config=IndexConfig(ef_search=128)).search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, got)])
    assert recall >= 0.9, recall


def test_search_before_restricts_to_a_prefix():
    rng = np.random.default_rng(4)
    emb = _unit(rng, 500, 16)
    for kind in ("flat", "hnsw", "ivfflat"):
        index = build_index(emb, kind)
        _, ids = search_before(index, emb[400:410], 5, n_before=120)
        assert ((ids >= 0) & (ids < 120)).all(), kind
    flat = build_index(emb, "flat")  # few queries on a flat index go through BLAS: same answer as faiss
    sims, ids = search_before(flat, emb[:3], 7)
    ref_sims, ref_ids = flat.search(emb[:3], 7)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(sims, ref_sims, atol=1e-6)
    np.testing.assert_array_equal(search_before(flat, emb[:1], 4, n_before=2)[1], [[0, 1, -1, -1]])


def test_stale_index_is_never_used(tmp_path):
    rng = np.random.default_rng(5)
    emb = _unit(rng, 300, 16)
    pids, dates = np.arange(300) + 1000, np.arange(300)
    path = tmp_path / "idx" / "e.flat.faiss"
    save_index(build_index(emb, "flat"), path, pids, dates, "hash-a")
    loaded = load_index(path, "hash-a")
    np.testing.assert_array_equal(loaded.pids, pids)
    assert loaded.index.ntotal == 300
    with pytest.raises(StaleIndexError):
        load_index(path, "hash-b")
    with pytest.raises(StaleIndexError):
        load_index(tmp_path / "missing.faiss", "hash-a")
    new = _unit(rng, 50, 16)
    rebuilt = load_index(path, "hash-b",
                         rebuild=lambda: (build_index(new, "flat"), pids[:50], dates[:50], IndexConfig()))
    assert rebuilt.index.ntotal == 50 and rebuilt.meta["content_hash"] == "hash-b"
    assert load_index(path, "hash-b").index.ntotal == 50


# ---------------------------------------------------------------- tables: embedding and sequence features

def _rows(n=240, seed=0):
    """Posts over 120 'days' with same-second ties; train/val/test chronological, 'predict' interleaved."""
    rng = np.random.default_rng(seed)
    dates = np.sort(rng.integers(0, 120, n)) * 86_400 + 1_400_000_000
    rows = []
    for i in range(n):
        split = "predict" if i % 7 == 3 else ("train" if i < 0.7 * n else ("val" if i < 0.85 * n else "test"))
        rows.append({"pid": 10 * i + 3, "uid": f"u{rng.integers(0, 12)}", "postdate": int(dates[i]),
                     "category": f"c{i % 3}", "subcategory": f"s{i % 5}", "concept": f"k{i % 9}",
                     "label": None if split == "predict" else float(rng.normal(6, 2)), "split": split})
    return rows


def _write_embedding(paths, rows, dim=12, seed=1):
    emb = _unit(np.random.default_rng(seed), len(rows), dim)
    table = embedding_table(np.array([r["pid"] for r in rows]), np.array([r["postdate"] for r in rows]), emb)
    path = paths.table("embed_engineered")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


@pytest.fixture
def seq_paths(tmp_path, tables_registered):
    rows = _rows()
    paths = Paths(root=tmp_path)
    write_tables(tmp_path, rows)
    _write_embedding(paths, rows)
    return paths, rows


def _relabel(paths, fn):
    t = pq.read_table(paths.table("labels"))
    pq.write_table(t.set_column(1, "label", pa.array(fn(t["pid"].to_numpy(), t["label"].to_numpy()))),
                   paths.table("labels"))


def test_sequence_features_ignore_hidden_and_later_labels(seq_paths):
    paths, rows = seq_paths
    cfg = SequenceConfig(k=6, l=4, block=32, labelled=True)  # both searches
    feats, ids = sequence_tables(paths, cfg)
    assert feats.column_names[:2] == ["pid", "postdate"] and ids.column_names[:2] == ["pid", "postdate"]
    assert feats["pid"].to_pylist() == sorted(r["pid"] for r in rows)
    assert not any(c.startswith("seq_nb_") for c in feats.column_names)  # ids live in sequence_ids only
    assert ids.schema.field("seq_nb_pid_0").type == pa.int64() and ids["seq_nb_pid_0"].null_count > 0
    hidden = {r["pid"] for r in rows if r["split"] in ("val", "test")}
    _relabel(paths, lambda pid, y: np.where(np.isin(pid, list(hidden)), 17.0 - y, y))
    assert sequence_tables(paths, cfg)[0].equals(feats), "a val/test label reached the sequence features"

    cut = sorted(r["postdate"] for r in rows if r["split"] == "train")[80]
    later = {r["pid"] for r in rows if r["postdate"] > cut}
    _relabel(paths, lambda pid, y: np.where(np.isin(pid, list(later)), y + 5.0, y))
    after = sequence_tables(paths, cfg)[0]
    early = pa.array(feats["postdate"].to_numpy() <= cut)
    assert after.filter(early).equals(feats.filter(early)), "an early post saw a later label"
    assert not after.equals(feats)  # later posts do read earlier train labels: a leak would show


def test_sequence_features_match_hand_computation(seq_paths):
    paths, rows = seq_paths
    feats, ids = sequence_tables(paths, SequenceConfig(k=5, l=5, block=16))
    f, i = pl.from_arrow(feats), pl.from_arrow(ids)
    by_pid = {r["pid"]: r for r in rows}
    row = i.row(len(i) - 1, named=True)  # a late post: five neighbours exist
    nbs = [(row[f"seq_nb_pid_{j}"], row[f"seq_nb_sim_{j}"]) for j in range(5)]
    assert all(by_pid[p]["postdate"] < row["postdate"] for p, _ in nbs)
    vis = [(by_pid[p]["label"], s) for p, s in nbs if by_pid[p]["split"] == "train"]
    got = f.filter(pl.col("pid") == row["pid"]).row(0, named=True)
    assert got["seq_label_count"] == len(vis) and got["seq_n_found"] == 5
    if vis:
        w = np.clip([s for _, s in vis], 0, None) + 1e-6
        assert got["seq_label_wmean"] == pytest.approx(np.dot(w, [y for y, _ in vis]) / w.sum(), rel=1e-5)
        assert got["seq_label_max"] == pytest.approx(max(y for y, _ in vis))
    assert got["seq_sim_mean"] == pytest.approx(np.mean([s for _, s in nbs]), rel=1e-5)
    assert got["seq_gap_top1_days"] == pytest.approx((row["postdate"] - by_pid[nbs[0][0]]["postdate"]) / 86_400)


def test_labelled_neighbours_always_carry_labels(seq_paths):
    paths, rows = seq_paths
    feats = pl.from_arrow(sequence_tables(paths, SequenceConfig(k=5, l=3, block=16, labelled=True))[0])
    by_pid = {r["pid"]: r for r in rows}
    n_train_before = np.array([sum(1 for q in rows if q["split"] == "train" and q["postdate"] < by_pid[p]["postdate"])
                               for p in feats["pid"]])
    # every post has min(k, earlier train posts) labelled neighbours; the first search runs out for test posts
    np.testing.assert_array_equal(feats["seq_lab_n_found"].to_numpy(), np.minimum(n_train_before, 5))
    late = feats.filter(pl.col("pid").is_in([r["pid"] for r in rows if r["split"] == "test"]))
    assert (late["seq_lab_n_found"] == 5).all() and (late["seq_label_count"] < 5).any()
    assert "seq_lab_label_count" not in feats.columns
    plain = sequence_tables(paths, SequenceConfig(k=5, l=3, block=16))[0]  # the default
    assert not any(c.startswith("seq_lab_") for c in plain.column_names)
    with pytest.raises(ValueError, match="labelled"):
        sequence_tables(paths, SequenceConfig(k=5, l=3, index="flat", labelled=True))


def test_neighbour_features_without_neighbours():
    ids = np.full((2, 3), -1, np.int64)
    out = neighbour_features(ids, np.full((2, 3), np.nan, np.float32), np.array([5, 9]), np.array([0, -1]),
                             np.array([1.0, np.nan]))
    assert out["seq_n_found"].tolist() == [0.0, 0.0] and out["seq_label_count"].tolist() == [0.0, 0.0]
    assert np.isnan(out["seq_label_wmean"]).all() and np.isnan(out["seq_same_user_share"]).all()


def _write_sources(paths, rows, seed=0):
    rng = np.random.default_rng(seed)
    pid = np.array([r["pid"] for r in rows])
    dates = np.array([r["postdate"] for r in rows])
    text = {"pid": pid, "postdate": dates, "text_title_chars": rng.random(len(rows))}
    text |= {f"text_svd_{j}": rng.normal(0, 0.1, len(rows)) for j in range(4)}
    img = {"pid": pid, "postdate": dates, "img_brightness": rng.random(len(rows)),
           "img_width": rng.random(len(rows)) * 900}
    img["img_brightness"][::5] = np.nan  # missing images
    for name, cols in (("features_text", text), ("features_image_stats", img)):
        path = paths.table(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(cols), path)


def test_embedding_scaler_fitted_on_train_only(tmp_path, tables_registered):
    rows = _rows(seed=3)
    paths = Paths(root=tmp_path)
    write_tables(tmp_path, rows)
    _write_sources(paths, rows)
    cfg = EngineeredEmbeddingConfig()
    before = engineered_embeddings(paths, cfg)
    pid, dates, emb = embedding_arrays(before)
    assert before.schema.field("embedding").type == pa.list_(pa.float32(), 4 + 2 + 3 + 5)
    assert pid.tolist() == sorted(pid.tolist()) and np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)

    train = np.array([r["split"] == "train" for r in sorted(rows, key=lambda r: r["pid"])])
    for name in ("features_text", "features_image_stats"):  # every input of non-train rows changes
        t = pl.read_parquet(paths.table(name))
        cols = [c for c in t.columns if c not in ("pid", "postdate")]
        t = t.with_columns([pl.when(pl.Series(~train)).then(pl.col(c) * 7 + 3).otherwise(pl.col(c)).alias(c)
                            for c in cols])
        t.write_parquet(paths.table(name))
    cats = pl.read_parquet(paths.table("categories"))
    cats.with_columns(category=pl.when(pl.Series(~train)).then(pl.lit("unseen")).otherwise("category")) \
        .write_parquet(paths.table("categories"))
    _, _, after = embedding_arrays(engineered_embeddings(paths, cfg))
    np.testing.assert_array_equal(after[train], emb[train])
    assert not np.allclose(after[~train], emb[~train])


def test_stages_and_similar_posts(seq_paths, tmp_path):
    from PIL import Image

    from featurestore.features_sequence import SequenceConfig, stored_neighbours
    from pipelines.analysis.similar import similar_html, similar_posts
    from pipelines import embed_engineered, features_sequence

    paths, rows = seq_paths
    _write_sources(paths, rows)
    assert embed_engineered.run(paths, {"embed_engineered": {"category_weight": 1.0}})["dim"] == 4 + 2 + 3 + 5
    res = features_sequence.run(paths, {"features_sequence": {"k": 4, "l": 2}})
    assert res["rows"] == len(rows) and pq.read_table(paths.table("sequence_ids")).num_columns == 2 + 4
    smpd = tmp_path / "smpd"
    (smpd / "img").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 40, 40)).save(smpd / "img" / "a.jpg")
    images = pa.table({"pid": [r["pid"] for r in rows], "path": ["img/a.jpg"] * len(rows)})
    pq.write_table(images, paths.table("images"))
    query = rows[-1]["pid"]
    df = similar_posts(paths.root, query, k=5)
    assert df["rank"].to_list() == list(range(6)) and df["pid"][0] == query and query not in df["pid"][1:].to_list()
    assert df["similarity"][1:].is_sorted(descending=True)
    early = similar_posts(paths.root, query, k=5, before_only=True)
    qdate = rows[-1]["postdate"]
    dates = {r["pid"]: r["postdate"] for r in rows}
    assert all(dates[p] < qdate for p in early["pid"][1:].to_list())
    for kind in ("ivfflat", "hnsw"):  # persisted beside the flat one, reconstructing the query vector
        approx = similar_posts(paths.root, query, k=3, config=IndexConfig(kind=kind, nprobe=6))
        assert approx["pid"][0] == query and len(approx) == 4
    found = stored_neighbours(paths, [query, -5], 2)  # what the error report shows: the sequence features' own
    two = similar_posts(paths.root, query, k=2, before_only=True, sequence=SequenceConfig(k=4, l=2))
    assert [p for p, _ in found[query]] == two["pid"][1:].to_list() == early["pid"][1:3].to_list()
    assert found[-5] == []
    page = similar_html(df, smpd, tmp_path / "out" / "similar.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 6
