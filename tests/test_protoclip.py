"""Prototype-CLIP head: network modules, the ``ProtoClipRegressor`` estimator and the feature-table builder."""

from __future__ import annotations

import joblib
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from featurestore.embeddings import embedding_table
from models.metrics import spearman
from models.protoclip import ProtoClipConfig, ProtoClipNet, ProtoClipRegressor
from models.protoclip.modules import NEG, Adapter, CrossModalFusion
from models.protoclip.table import ProtoClipFeaturesConfig, fit_protoclip, protoclip_features

FAST = dict(dim=16, heads=2, penultimate=8, batch_size=64, lr=3e-3, max_epochs=25, patience=5, dropout=0.0)


def synthetic(n: int = 900, n_classes: int = 6, seed: int = 0):
    """X = [image (8) | text (10) | class code]; y depends on the image, the text and the class."""
    rng = np.random.default_rng(seed)
    code = rng.integers(0, n_classes, n).astype(float)
    centre = rng.normal(size=(n_classes, 10)) * 2
    img = rng.normal(size=(n, 8)) + centre[code.astype(int), :8]
    txt = rng.normal(size=(n, 10)) + centre[code.astype(int)]
    y = 1.5 * img[:, 0] + np.tanh(txt[:, 1]) + 0.7 * code + rng.normal(scale=0.2, size=n)
    img[rng.random(n) < 0.05, 3] = np.nan  # missing image statistics
    code[:20] = np.nan  # unknown classes
    code[20:30] = -1
    return np.column_stack([img, txt, code]), y


def head(**kw) -> ProtoClipRegressor:
    return ProtoClipRegressor(image_columns=tuple(range(8)), text_columns=tuple(range(8, 18)), class_column=18,
                              **{**FAST, **kw})


# ---------------------------------------------------------------- modules

def test_adapter_mixes_residually():
    x = torch.randn(5, 16)
    torch.testing.assert_close(Adapter(16, 4, 0.0)(x), x)
    a = Adapter(16, 4, 0.3)
    torch.testing.assert_close(a(x), 0.3 * a.mlp(x) + 0.7 * x)


def test_fusion_and_network_shapes_and_masked_classes():
    cfg = ProtoClipConfig(in_dims=(7, 11), n_classes=5, dim=16, heads=4, penultimate=6)
    net = ProtoClipNet(cfg)
    assert net.fusion.type_embed.shape == (4, 16)  # image, text, two prototype summaries
    net.set_prototypes([torch.randn(5, 7), torch.randn(5, 11)], torch.tensor([True, True, False, True, True]))
    h, pred, logits = net([torch.randn(3, 7), torch.randn(3, 11)])
    assert h.shape == (3, 6) and pred.shape == (3,) and logits.shape == (3, 5)
    assert (logits[:, 2] == NEG).all() and (logits[:, [0, 1, 3, 4]].abs() <= 100 + 1e-4).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 3])).backward()
    assert net.encoders[0].proj.weight.grad.abs().sum() > 0  # the proxy trains the encoders via the prototypes
    assert CrossModalFusion(3, cfg)(torch.randn(2, 3, 16)).shape == (2, 16)


def test_network_without_prototypes_uses_class_embeddings():
    cfg = ProtoClipConfig(in_dims=(4,), n_classes=3, dim=8, heads=2, penultimate=4, use_prototypes=False)
    net = ProtoClipNet(cfg)
    assert net.fusion.type_embed.shape == (1, 8) and net.class_embed.shape == (3, 8)
    assert net([torch.randn(2, 4)])[2].shape == (2, 3)
    assert ProtoClipNet(ProtoClipConfig(in_dims=(4,), dim=8, heads=2))([torch.randn(2, 4)])[2] is None
    with pytest.raises(ValueError, match="divisible"):
        ProtoClipConfig(in_dims=(4,), dim=10, heads=4)


# ---------------------------------------------------------------- the estimator

def test_learns_a_synthetic_signal_and_the_class_proxy():
    X, y = synthetic()
    est = head().fit(X[:600], y[:600], X[600:750], y[600:750])
    pred = est.predict(X[750:])
    assert np.mean((pred - y[750:]) ** 2) < 0.25 * np.var(y[750:]) and spearman(y[750:], pred) > 0.85
    assert est.transform(X[750:]).shape == (150, 8) and est.transform(X).dtype == np.float32
    assert est.n_classes_ == 6 and est.n_features_in_ == 19 and 1 <= est.best_iteration_ <= 25
    with torch.no_grad():
        logits = est.net_([b[600:] for b in est._tensors(X)])[2]
    known = np.isfinite(X[600:, 18])
    assert (logits.argmax(1).numpy()[known] == X[600:, 18][known]).mean() > 0.8  # the subcategory proxy


def test_same_seed_same_model_and_state_restored():
    X, y = synthetic()
    threads, rng_state = torch.get_num_threads(), torch.get_rng_state()
    a = head(num_threads=1).fit(X[:600], y[:600], X[600:750], y[600:750])
    b = head(num_threads=1).fit(X[:600], y[:600], X[600:750], y[600:750])
    assert a.predict(X).tobytes() == b.predict(X).tobytes() and a.transform(X).tobytes() == b.transform(X).tobytes()
    c = head(seed=7).fit(X[:600], y[:600], X[600:750], y[600:750])
    assert not np.array_equal(a.predict(X), c.predict(X))
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), rng_state)


def test_joblib_round_trip(tmp_path):
    X, y = synthetic(n=300)
    est = head(max_epochs=3).fit(X, y)
    joblib.dump(est, tmp_path / "m.joblib")
    back = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    np.testing.assert_array_equal(back.transform(X), est.transform(X))


def test_early_stopping_and_fixed_epochs():
    X, y = synthetic()
    noise = np.random.default_rng(1).normal(size=150)  # val labels unrelated to X: stop early
    est = head(max_epochs=60).fit(X[:600], y[:600], X[600:750], noise)
    assert est.best_iteration_ == int(np.argmin(est.val_mse_)) + 1
    assert len(est.history_) == est.best_iteration_ + est.patience < 60
    assert np.mean((est.predict(X[600:750]) - noise) ** 2) == pytest.approx(min(est.val_mse_), rel=1e-9)
    fixed = head().fit(X[:600], y[:600], X[600:750], y[600:750], num_boost_round=4)
    assert fixed.best_iteration_ == 4 and len(fixed.history_) == 4


def test_prototypes_and_scalers_come_from_train_rows_only():
    X, y = synthetic()
    a = head(max_epochs=2).fit(X[:600], y[:600], X[600:750], y[600:750])
    X_val = X[600:750] * 50.0
    X_val[:, 18] = 0
    b = head(max_epochs=2).fit(X[:600], y[:600], X_val, y[600:750] + 3.0)
    for name in ("0", "1"):
        assert a.prototypes_[name].vectors.tobytes() == b.prototypes_[name].vectors.tobytes()
        members = np.concatenate(a.prototypes_[name].members)
        assert members.max() < 600 and np.isfinite(X[members, 18]).all() and (X[members, 18] >= 0).all()
    for sa, sb in zip(a.stats_, b.stats_):
        assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert all(len(m) <= 256 for m in a.prototypes_["0"].members)


def test_loss_based_sample_selection():
    X, y = synthetic(n=400)
    est = head(sample_selection=True, select_after=2, max_epochs=5).fit(X, y)
    assert [h["rows"] for h in est.history_] == [400, 400, 308, 308, 308]  # ceil(0.77 * 400)
    off = head(max_epochs=3).fit(X, y)
    assert [h["rows"] for h in off.history_] == [400] * 3
    with pytest.raises(ValueError, match="select_fraction"):
        head(select_fraction=0.0).fit(X, y)


def test_from_feature_names_and_layout_errors():
    names = ["img_a", "base_x", "emb_minilm_0", "img_b", "base_cat_subcategory_code", "emb_text_1", "emb_image_0"]
    est = ProtoClipRegressor.from_feature_names(names, dim=16)
    assert est.image_columns == (0, 3, 6) and est.text_columns == (2, 5) and est.class_column == 4
    assert est.dim == 16
    with pytest.raises(ValueError, match=r"text \(emb_minilm_\* or emb_text_\*\), class"):
        ProtoClipRegressor.from_feature_names(["img_a", "base_x"])
    X, y = synthetic(n=100)
    with pytest.raises(ValueError, match="disjoint"):
        ProtoClipRegressor(image_columns=(0, 1), text_columns=(1, 2), max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="disjoint"):
        ProtoClipRegressor(image_columns=(0, 18), class_column=18, max_epochs=1).fit(X, y)


def test_without_class_column_or_prototypes():
    X, y = synthetic(n=300)
    plain = ProtoClipRegressor(**{**FAST, "max_epochs": 3}).fit(X[:, :18], y)
    assert plain.n_classes_ == 0 and plain.prototypes_ is None and plain.predict(X[:, :18]).shape == (300,)
    no_proto = head(use_prototypes=False, max_epochs=3).fit(X, y)
    assert no_proto.prototypes_ is None and no_proto.net_.class_embed.shape == (6, 16)


# ---------------------------------------------------------------- the feature table

def make_root(root, n: int = 360, seed: int = 0):
    """The five inputs of ``protoclip_inputs`` for n posts (60% train, 15% val, 15% test, 10% predict)."""
    rng = np.random.default_rng(seed)
    pid = rng.permutation(np.arange(1000, 1000 + n)).astype(np.int64)
    postdate = 1_500_000_000 + np.arange(n, dtype=np.int64) * 60
    split = np.select([np.arange(n) < 0.6 * n, np.arange(n) < 0.75 * n, np.arange(n) < 0.9 * n],
                      ["train", "val", "test"], "predict")
    code = rng.integers(0, 5, n)
    img = rng.normal(size=(n, 4)) + code[:, None]
    emb = rng.normal(size=(n, 12)).astype(np.float32)
    label = img[:, 0] + emb[:, 0] + rng.normal(scale=0.3, size=n) + 5
    has = split != "predict"
    files = {
        "data/split.parquet": pa.table({"pid": pid, "postdate": postdate, "split": split}),
        "data/tables/labels.parquet": pa.table({"pid": pid[has], "label": label[has]}),
        "data/features/baseline.parquet": pa.table({"pid": pid, "postdate": postdate,
                                                    "base_cat_subcategory_code": code.astype(np.int64)}),
        "data/features/image_stats.parquet": pa.table({"pid": pid, "postdate": postdate,
                                                       **{f"img_{j}": img[:, j] for j in range(4)}}),
        "data/embeddings/minilm.parquet": embedding_table(pid, postdate, emb),
    }
    for path, table in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / path)
    return root


TABLE_CFG = dict(estimator={**FAST, "max_epochs": 4})


def test_table_covers_every_post_deterministically(tmp_path):
    root = make_root(tmp_path)
    table, est, info = fit_protoclip(root, ProtoClipFeaturesConfig(**TABLE_CFG, include_prediction=True))
    assert table.column_names == ["pid", "postdate", *[f"pclip_{i}" for i in range(8)], "pclip_pred"]
    assert table.num_rows == 360 and table.schema.field("pclip_0").type == pa.float32()
    pid = table["pid"].to_numpy()
    assert (np.diff(pid) > 0).all() and info["n_train"] == 216 and info["n_classes"] == 5
    assert protoclip_features(root, ProtoClipFeaturesConfig(**TABLE_CFG, include_prediction=True)).equals(table)
    frame = pl.from_arrow(table)
    assert frame.drop_nulls().height == 360 and est.n_features_in_ == 4 + 12 + 1


@pytest.mark.parametrize("early_stopping, hidden", [("val", ("test",)), ("train_tail", ("val", "test"))])
def test_table_ignores_labels_it_may_not_see(tmp_path, early_stopping, hidden):
    cfg = ProtoClipFeaturesConfig(**TABLE_CFG, early_stopping=early_stopping)
    root = make_root(tmp_path)
    before = protoclip_features(root, cfg)
    split = pl.read_parquet(root / "data/split.parquet")
    labels = pl.read_parquet(root / "data/tables/labels.parquet").join(split, on="pid")
    changed = labels.with_columns(pl.when(pl.col("split").is_in(hidden)).then(pl.col("label") * -3 + 40)
                                  .otherwise(pl.col("label")).alias("label"))
    changed.select("pid", "label").write_parquet(root / "data/tables/labels.parquet")
    assert protoclip_features(root, cfg).equals(before)


def test_crossfit_replaces_train_rows_only(tmp_path):
    root = make_root(tmp_path)
    plain = pl.from_arrow(protoclip_features(root, ProtoClipFeaturesConfig(**TABLE_CFG)))
    cross = pl.from_arrow(protoclip_features(root, ProtoClipFeaturesConfig(**TABLE_CFG, crossfit_folds=2)))
    split = pl.read_parquet(root / "data/split.parquet").sort("pid")  # the table is sorted by pid
    assert split["pid"].equals(plain["pid"])
    train = (split["split"] == "train").to_numpy()
    a, b = plain.drop("pid", "postdate").to_numpy(), cross.drop("pid", "postdate").to_numpy()
    np.testing.assert_array_equal(a[~train], b[~train])
    assert not np.allclose(a[train], b[train])
    with pytest.raises(ValueError, match="crossfit_folds"):
        ProtoClipFeaturesConfig(crossfit_folds=1)
    with pytest.raises(ValueError, match="unknown estimator option"):
        ProtoClipFeaturesConfig(estimator={"no_such": 1})
