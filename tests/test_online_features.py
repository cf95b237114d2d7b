"""Serving a new post fits nothing: the text model, the engineered encoder and the neighbour lookup
are loaded / built once from a run's outputs, and a stored post replayed as new gets exactly its
batch rows (text features, embedding, sequence features and neighbour ids)."""

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from featurestore.embeddings import (EngineeredEmbeddingConfig, EngineeredEncoder, embedding_table,
                                     engineered_embeddings, engineered_inputs, l2_normalise, read_embeddings)
from featurestore.features_sequence import SequenceConfig, sequence_tables
from featurestore.features_text import TextModel, text_inputs, text_rows
from featurestore.fitted import load_fitted
from featurestore.paths import Paths
from featurestore.sequence_online import NeighbourLookup
from featurestore.simulate import SimConfig, simulate_smpd
from featurestore.standardise import Standardiser
from pipelines import embed_engineered, features_image_stats, features_text, ingest, split

PARAMS = {"features_image_stats": {"workers": 1, "progress": False}}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Paths:
    root = tmp_path_factory.mktemp("online")
    simulate_smpd(root / "smpd", SimConfig(posts=600, seed=5, image_size=32, workers=1, progress=False))
    paths = Paths(root=root / "work", smpd=root / "smpd")
    for stage in (ingest, split, features_text, features_image_stats, embed_engineered):
        stage.run(paths, PARAMS)
    return paths


@pytest.fixture
def no_fitting(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("serving called a fit")

    for cls, names in ((TfidfVectorizer, ("fit", "fit_transform")), (TruncatedSVD, ("fit", "fit_transform")),
                       (Standardiser, ("fit",))):
        for name in names:
            monkeypatch.setattr(cls, name, refuse)


def _split(paths: Paths) -> pl.DataFrame:
    return pl.read_parquet(paths.table("split")).sort("pid")


def _new_text_inputs(paths: Paths, pids: list[int]) -> pl.DataFrame:
    """What new posts bring for the text group: their rows of ingest's text and posts tables."""
    keep = pc.field("pid").isin(list(pids))
    return text_inputs(pq.read_table(paths.table("text"), filters=keep), pq.read_table(paths.table("posts"), filters=keep))


def _rows_of(table: pa.Table, pids) -> pa.Table:
    return table.filter(pc.is_in(table["pid"], value_set=pa.array(list(pids), pa.int64()))).sort_by("pid")


# ---------------------------------------------------------------- text

def test_text_rows_from_the_loaded_model_equal_the_table(store, no_fitting):
    model = load_fitted(store.fitted("text_model.joblib"), TextModel)
    table = pq.read_table(store.table("features_text"))
    pids = _split(store)["pid"].to_list()[::37]
    group = text_rows(_new_text_inputs(store, pids), model)
    assert group.equals(_rows_of(table, pids))
    for pid in pids[:4]:  # a post alone gets its row of the whole table
        assert text_rows(_new_text_inputs(store, [pid]).to_arrow(), model).equals(_rows_of(table, [pid]))


def test_topics_are_scikit_learns_tfidf_then_svd(store):
    """``TextModel.topics`` does scikit-learn's TF-IDF and SVD transforms operation by operation (without
    their input validation): bit-equal on the stored texts, one at a time and together, and on documents
    that are empty, unicode, or hold only words outside the vocabulary."""
    model = load_fitted(store.fitted("text_model.joblib"), TextModel)
    text = pq.read_table(store.table("text"))
    docs = [f"{t or ''} {a or ''}" for t, a in zip(text["title"].to_pylist(), text["alltags"].to_pylist())]
    docs += ["", "   ", "zzqx unseenword", "Ünïcödé café naïve 東京 tokyo", docs[0] * 3]
    want = model.svd.transform(model.tfidf.transform(docs)).astype(np.float32).astype(np.float64)
    np.testing.assert_array_equal(model.topics(docs), want)
    np.testing.assert_array_equal(np.vstack([model.topics([d]) for d in docs[-40:]]), want[-40:])
    assert (want[-5:-2] == 0).all() and np.abs(want).sum() > 0


def test_fitted_files_are_checked_on_load(store):
    with pytest.raises(TypeError, match="TextModel"):
        load_fitted(store.fitted("engineered_encoder.joblib"), TextModel)
    with pytest.raises(FileNotFoundError, match="no fitted"):
        load_fitted(store.fitted("missing.joblib"), TextModel)


# ---------------------------------------------------------------- engineered embedding

def _encoder_inputs(paths: Paths, pids, cfg=EngineeredEmbeddingConfig()) -> pl.DataFrame:
    """The encoder's inputs of posts ``pids`` from their text rows, image statistics and categories."""
    keep = pl.col("pid").is_in(list(pids))
    keys = pl.read_parquet(paths.table("posts"), columns=["pid", "postdate"]).filter(keep)
    text = pl.from_arrow(text_rows(_new_text_inputs(paths, list(pids)),
                                   load_fitted(paths.fitted("text_model.joblib"), TextModel)))
    image = pl.read_parquet(paths.table("features_image_stats")).filter(keep)
    cats = pl.read_parquet(paths.table("categories")).filter(keep)
    return engineered_inputs(keys, text, image, cats, cfg)


def test_reloaded_encoder_gives_the_stored_embeddings(store, no_fitting):
    encoder = load_fitted(store.fitted("engineered_encoder.joblib"), EngineeredEncoder)
    pid, _, emb = read_embeddings(store.table("embed_engineered"))
    assert encoder.dim_ == emb.shape[1]
    pick = np.arange(0, len(pid), 23)
    got = encoder.transform(_encoder_inputs(store, pid[pick]))
    np.testing.assert_array_equal(got, emb[pick])
    for i in pick[:5]:
        np.testing.assert_array_equal(encoder.transform(_encoder_inputs(store, [pid[i]])), emb[[i]])


def _old_engineered_embeddings(paths: Paths, cfg: EngineeredEmbeddingConfig) -> pa.Table:
    """The implementation before the encoder, verbatim but for names: the reference output."""
    frame = pl.read_parquet(paths.table("split"), columns=["pid", "postdate", "split"]).sort("pid")
    for table, prefix, weight in ((cfg.text_table, cfg.text_prefix, cfg.text_weight),
                                  (cfg.image_table, cfg.image_prefix, cfg.image_weight)):
        if weight > 0:
            src = pl.read_parquet(paths.table(table))
            frame = frame.join(src.select("pid", *[c for c in src.columns if c.startswith(prefix)]), on="pid",
                               how="left")
    if cfg.category_weight > 0:
        frame = frame.join(pl.read_parquet(paths.table("categories"), columns=["pid", *cfg.category_levels]),
                           on="pid", how="left")
    frame = frame.sort("pid")
    train = (frame["split"] == "train").to_numpy()

    def one_hot(values):
        vocab = sorted({v for v in values.filter(pl.Series(train)).to_list() if v is not None})
        code = {v: i for i, v in enumerate(vocab)}
        out = np.zeros((len(values), max(len(vocab), 1)))
        idx = np.array([code.get(v, -1) for v in values.to_list()], dtype=np.int64)
        out[np.flatnonzero(idx >= 0), idx[idx >= 0]] = 1.0
        return out

    blocks = []
    for prefix, weight in ((cfg.text_prefix, cfg.text_weight), (cfg.image_prefix, cfg.image_weight)):
        if weight > 0:
            x = frame.select(pl.col([c for c in frame.columns if c.startswith(prefix)]).cast(pl.Float64)).to_numpy()
            z = Standardiser(cfg.clip).fit(x[train]).transform(x)
            blocks.append(z * (weight / np.sqrt(z.shape[1])))
    if cfg.category_weight > 0:
        onehot = np.hstack([one_hot(frame[level]) for level in cfg.category_levels])
        blocks.append(onehot * (cfg.category_weight / np.sqrt(len(cfg.category_levels))))
    emb = l2_normalise(np.hstack(blocks)).astype(np.float32)
    return embedding_table(frame["pid"].to_numpy(), frame["postdate"].to_numpy(), emb)


def _bits(table: pa.Table) -> np.ndarray:
    return np.frombuffer(table["embedding"].combine_chunks().flatten().to_numpy().tobytes(), np.uint32)


@pytest.mark.parametrize("cfg", [EngineeredEmbeddingConfig(),
                                 EngineeredEmbeddingConfig(image_weight=0.0, category_levels=("concept",)),
                                 EngineeredEmbeddingConfig(text_weight=0.5, category_weight=0.0, clip=2.0)])
def test_encoder_output_is_byte_identical_to_the_previous_code(store, cfg):
    new, old = engineered_embeddings(store, cfg), _old_engineered_embeddings(store, cfg)
    assert new.equals(old)
    np.testing.assert_array_equal(_bits(new), _bits(old))  # bitwise, not approx


def test_encoder_transform_is_row_wise(store):
    cfg = EngineeredEmbeddingConfig()
    frame = _encoder_inputs(store, _split(store)["pid"].to_list())
    train = frame.join(_split(store).select("pid", "split"), on="pid")["split"] == "train"
    encoder = EngineeredEncoder(cfg).fit(frame, train.to_numpy())
    assert encoder.fit(frame, train.to_numpy()) is encoder
    full = encoder.transform(frame)
    for i in (0, 5, len(frame) - 1):
        np.testing.assert_array_equal(encoder.transform(frame[i:i + 1]), full[i:i + 1])


# ---------------------------------------------------------------- sequence features

def _lookup_inputs(paths: Paths, pids) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """pid, postdate, uid, embedding of stored posts, as a new post would bring them."""
    pid, postdate, emb = read_embeddings(paths.table("embed_engineered"))
    at = np.searchsorted(pid, pids)
    uid = dict(pl.read_parquet(paths.table("posts"), columns=["pid", "uid"]).iter_rows())
    return pid[at], postdate[at], np.array([uid[p] for p in pid[at]], object), emb[at]


def _assert_rows_equal(got: tuple[pa.Table, pa.Table], batch: tuple[pa.Table, pa.Table], pids) -> None:
    feats, ids = (t.sort_by("pid") for t in got)
    want_f, want_i = (_rows_of(t, pids) for t in batch)
    assert feats.schema.equals(want_f.schema) and ids.schema.equals(want_i.schema)
    assert ids.equals(want_i), "other neighbours than the batch's"
    for name in feats.column_names:
        a, b = feats[name].to_numpy(zero_copy_only=False), want_f[name].to_numpy(zero_copy_only=False)
        np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize(("labelled", "rank"), [(False, 64), (True, 64), (False, 2), (True, 5)])
def test_lookup_rows_equal_the_batch_for_replayed_posts(store, labelled, rank):
    """Any rank of the candidate pass (2, 5: most of a row's norm left in the residual bound) gives the
    batch's neighbours."""
    cfg = SequenceConfig(k=8, l=4, block=64, labelled=labelled)
    batch = sequence_tables(store, cfg)
    lookup = NeighbourLookup.load(store, cfg, projection_rank=rank)
    split_ = _split(store)
    first = split_.sort(["postdate", "pid"])["pid"][0]  # no earlier post at all
    for pid in [first, *split_["pid"].to_list()[3::61]]:
        _assert_rows_equal(lookup.rows(*_lookup_inputs(store, [pid])), batch, [pid])
    # two new posts in one call, the earlier a neighbour of the later: the later one sees it among the
    # candidates (unlabelled, as a new post is; so both are taken where labels are hidden)
    hidden = set(split_.filter(~pl.col("label_visible"))["pid"].to_list())
    ids = pl.from_arrow(batch[1]).filter(pl.col("pid").is_in(list(hidden)) & pl.col("seq_nb_pid_0").is_in(list(hidden)))
    later, earlier = ids["pid"][0], ids["seq_nb_pid_0"][0]
    got = lookup.rows(*_lookup_inputs(store, [later, earlier]))
    assert got[0]["pid"].to_pylist() == [later, earlier]  # input order
    _assert_rows_equal(got, batch, [later, earlier])
    group = sorted(hidden)[::9][:12]
    _assert_rows_equal(lookup.rows(*_lookup_inputs(store, group)), batch, group)


def test_a_new_post_is_searched_against_stored_and_new_posts(store):
    lookup = NeighbourLookup.load(store, SequenceConfig(k=5, l=3))
    pid, postdate, uid, emb = _lookup_inputs(store, _split(store)["pid"].to_list()[10:12])
    late = postdate.max() + 10**6  # later than every stored post
    twins = np.vstack([emb[0], emb[0]])  # two new posts with a stored post's embedding
    feats, ids = lookup.rows(np.array([-1, -2]), np.array([late, late + 1]), uid, twins)
    first, second = ids.to_pylist()
    assert first["seq_nb_pid_0"] == pid[0] and first["seq_nb_sim_0"] == pytest.approx(1.0, abs=1e-6)
    # equal similarity 1: the stored post, earlier, before the other new post
    assert (second["seq_nb_pid_0"], second["seq_nb_pid_1"]) == (pid[0], -1)
    assert second["seq_nb_sim_0"] == second["seq_nb_sim_1"]
    assert feats["seq_n_found"].to_pylist() == [5.0, 5.0]
    empty_f, empty_i = lookup.rows(np.zeros(0), np.zeros(0), np.zeros(0, object), np.zeros((0, emb.shape[1])))
    assert empty_f.num_rows == 0 and empty_f.schema.equals(feats.schema) and empty_i.schema.equals(ids.schema)
    with pytest.raises(ValueError, match="distinct"):
        lookup.rows(np.array([7, 7]), np.array([late, late]), uid, twins)


def test_serving_fits_nothing(store, no_fitting):
    lookup = NeighbourLookup.load(store, SequenceConfig(k=4, l=2))
    pids = _split(store)["pid"].to_list()[100:103]
    encoder = load_fitted(store.fitted("engineered_encoder.joblib"), EngineeredEncoder)
    emb = encoder.transform(_encoder_inputs(store, pids).to_arrow())  # arrow or polars
    pid, postdate, uid, _ = _lookup_inputs(store, pids)
    feats, _ = lookup.rows(pid, postdate, uid, emb)
    assert feats.num_rows == 3


def test_lookup_needs_the_exact_index(store):
    with pytest.raises(ValueError, match="features_sequence.index"):
        NeighbourLookup.load(store, SequenceConfig(index="hnsw"))
